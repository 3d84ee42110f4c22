import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'

/**
 * Network namespaces the labs build, each marked with the process that built it: a run killed
 * before its `finally` leaves its namespaces behind (their processes die with it, see
 * LabProcesses.spawn), and the first lab a later run builds deletes every namespace whose
 * builder is gone. Marks live in /run, as the namespaces do (`ip netns` keeps them in
 * /run/netns), so a reboot clears both.
 */
const OWNERS_DIR = '/run/qf-labs'

let swept = false

/** Runs a command as the labs do (`ip`, `tc`, `nft`…): its stdout; `input` goes to its stdin. Throws if it fails. */
export function run (argv: string[], input?: string): string {
  return execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', input, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
}

/** Whether process `pid` runs: a zombie, killed but not yet reaped by its parent, does not. */
export function running (pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z'
  } catch {
    return false
  }
}

/** Builds namespace `ns`, marked as this process's. The first call also deletes those left by runs that died. */
export function addNamespace (ns: string): void {
  if (!swept) {
    swept = true
    sweepOrphans()
  }
  fs.mkdirSync(OWNERS_DIR, { recursive: true })
  // Marked first: a run killed between the two leaves a mark without a namespace, which the
  // sweep passes over, never a namespace without a mark.
  // (Renamed into place whole: another run's sweep never reads a mark half written.)
  const mark = path.join(OWNERS_DIR, ns)
  fs.writeFileSync(`${mark}.${process.pid}.tmp`, String(process.pid))
  fs.renameSync(`${mark}.${process.pid}.tmp`, mark)
  run(['ip', 'netns', 'add', ns])
}

/** Kills every process running in `ns`; quiet if it is gone. */
export function killProcessesIn (ns: string): void {
  try {
    for (const pid of run(['ip', 'netns', 'pids', ns]).split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(pid), 'SIGKILL') } catch {}
    }
  } catch {}
}

/** Deletes `ns` and its mark; quiet if it is already gone. (Its processes are killed first, by whoever knows them.) */
export function deleteNamespace (ns: string): void {
  try { run(['ip', 'netns', 'del', ns]) } catch {}
  fs.rmSync(path.join(OWNERS_DIR, ns), { force: true })
}

/** Deletes every marked namespace whose builder is no longer running. */
function sweepOrphans (): void {
  let marks: string[]
  try { marks = fs.readdirSync(OWNERS_DIR) } catch { return }
  for (const ns of marks) {
    let owner: number
    // (Gone meanwhile: its run deleted it.)
    try { owner = Number(fs.readFileSync(path.join(OWNERS_DIR, ns), 'utf8')) } catch { continue }
    if (!Number.isInteger(owner) || owner <= 0 || running(owner)) continue
    killProcessesIn(ns)
    deleteNamespace(ns)
  }
}
