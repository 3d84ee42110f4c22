import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import crypto from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { QF_MAIN, sleep } from '../../src/cli/processes.js'
import { Natlab } from './natlab.js'
import { labStatus, qdiscStats, startLabDaemon } from './netlab.js'
import type { Middlebox, NatMember } from './natlab.js'
import type { LabDaemon } from './netlab.js'
import type { ChildProcess } from 'node:child_process'

const ROUTE_WATCH = path.join(path.dirname(fileURLToPath(import.meta.url)), 'route-watch.js')

export interface RouteChange { atMs: number, peer: string, name: string | null, route: string, via: string | null }

/** Follows one member's view of its peers' routes (a watcher inside its namespace). */
class RouteLog {
  readonly changes: RouteChange[] = []
  constructor (child: ChildProcess) {
    let pending = ''
    child.stdout!.on('data', (d: Buffer) => {
      pending += d.toString()
      let cut
      while ((cut = pending.indexOf('\n')) >= 0) {
        try { this.changes.push(JSON.parse(pending.slice(0, cut)) as RouteChange) } catch {}
        pending = pending.slice(cut + 1)
      }
    })
  }

  /** When this member first knew `name`, and when it first reached it (directly or relayed). */
  reach (name: string): { knownAtMs: number | null, reachedAtMs: number | null, route: string | null, via: string | null } {
    const about = this.changes.filter(c => c.name === name)
    const reached = about.find(c => c.route !== 'unreachable')
    const last = about.at(-1)
    return { knownAtMs: about[0]?.atMs ?? null, reachedAtMs: reached?.atMs ?? null, route: last?.route ?? null, via: last?.via ?? null }
  }
}

export interface PairOptions {
  bob: Middlebox
  carol: Middlebox
  fileBytes: number
  /** Extra arguments for alice's daemon (`--no-relay`, relay caps). */
  aliceArgs?: string[]
  /** Shape alice's uplink (the relay's) to this rate, Mbit/s, with a 512 KB queue. */
  relayUplinkMbit?: number
  /** Give up on the download after this long. */
  timeoutMs?: number
}

export interface PairResult {
  /** How bob reaches carol, and carol bob, at the end ('direct', 'relayed', 'unreachable'). */
  bobSees: { route: string | null, via: string | null }
  carolSees: { route: string | null, via: string | null }
  /** From bob first knowing carol to reaching her, ms (null: never). */
  msToReach: number | null
  /** The route bob first reached carol by. */
  firstRoute: string | null
  /** The file arrived whole and equal to carol's. */
  verified: boolean
  /** The download's last state and its wait reason, if any. */
  lastState: string
  waiting: string | null
  /** Seconds the download took, from `qf get` to complete. */
  seconds: number
  /** Bytes alice relayed, and what her shaped uplink passed. */
  relayedBytes: number
  uplinkBytes: number | null
}

/**
 * One cell of the NAT matrix: alice on the public segment, bob and carol each behind a
 * middlebox of its own. Nobody announces an address by hand. carol shares a file, bob
 * downloads it; how each reached the other, how long it took, and whether the file is whole.
 */
export async function natPair (options: PairOptions): Promise<PairResult> {
  const T0 = Date.now(); const mark = (what: string): void => { if (process.env.QF_NAT_TIMES !== undefined) console.error(what, Date.now() - T0) }
  const lab = Natlab.create()
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-nat-'))
  try {
    const aliceAt = lab.addPublic('alice')
    const bobAt = lab.addBehind('bob', options.bob)
    const carolAt = lab.addBehind('carol', options.carol)
    if (options.relayUplinkMbit !== undefined) lab.shapeUplink(aliceAt, options.relayUplinkMbit, 512 * 1024)
    const start = async (member: NatMember, args: string[] = []): Promise<LabDaemon> => await startLabDaemon(lab.procs, root, member.name, member.ns, null, 7300, args)
    mark('lab')
    const [alice, bob, carol] = await Promise.all([start(aliceAt, options.aliceArgs), start(bobAt), start(carolAt)])
    const watch = (daemon: LabDaemon): RouteLog => new RouteLog(lab.procs.spawn(daemon.ns, [process.execPath, ROUTE_WATCH, daemon.dir], { stdout: 'pipe' }))
    mark('daemons')
    const bobLog = watch(bob)
    const carolLog = watch(carol)
    lab.procs.qf(alice.ns, 'network', 'create', 'nat', '--dir', alice.dir)
    const invite = lab.procs.qf(alice.ns, 'invite', '--dir', alice.dir)
    await Promise.all([bob, carol].map(async member => await lab.procs.qfAsync(member.ns, 'join', invite, '--dir', member.dir)))
    mark('joined')
    const source = path.join(root, 'shared.bin')
    fs.writeFileSync(source, crypto.randomBytes(options.fileBytes))
    const fileId = lab.procs.qf(carol.ns, 'share', source, '--dir', carol.dir)
    mark('shared')
    const out = path.join(root, 'got.bin')
    const started = Date.now()
    const get = lab.procs.spawn(bob.ns, [process.execPath, QF_MAIN, 'get', fileId, '--dir', bob.dir, '--json', '--out', out], { stdout: 'pipe' })
    let lastState = ''
    let waiting: string | null = null
    let finishedAt = 0
    let pending = ''
    get.stdout!.on('data', (d: Buffer) => {
      pending += d.toString()
      let cut
      while ((cut = pending.indexOf('\n')) >= 0) {
        try {
          const progress = JSON.parse(pending.slice(0, cut)) as { state: string, reason: string | null }
          lastState = progress.state
          waiting = progress.reason ?? waiting
          if (lastState === 'complete' && finishedAt === 0) finishedAt = Date.now()
        } catch {}
        pending = pending.slice(cut + 1)
      }
    })
    let giveUp: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>(resolve => get.on('exit', () => resolve())),
      new Promise<void>(resolve => { giveUp = setTimeout(resolve, options.timeoutMs ?? 60_000) })
    ])
    clearTimeout(giveUp)
    mark('got')
    await sleep(100)
    const verified = fs.existsSync(out) && fs.readFileSync(out).equals(fs.readFileSync(source))
    const bobReach = bobLog.reach('carol')
    const carolReach = carolLog.reach('bob')
    const relayed = Number(labStatus(lab.procs, alice).transit?.relayedBytes ?? 0)
    return {
      bobSees: { route: bobReach.route, via: bobReach.via },
      carolSees: { route: carolReach.route, via: carolReach.via },
      msToReach: bobReach.knownAtMs === null || bobReach.reachedAtMs === null ? null : bobReach.reachedAtMs - bobReach.knownAtMs,
      firstRoute: bobLog.changes.find(c => c.name === 'carol' && c.route !== 'unreachable')?.route ?? null,
      verified,
      lastState,
      waiting,
      seconds: ((finishedAt || Date.now()) - started) / 1000,
      relayedBytes: relayed,
      uplinkBytes: options.relayUplinkMbit === undefined ? null : qdiscStats(aliceAt.ns, 'eth0').bytes
    }
  } finally {
    lab.close()
    fs.rmSync(root, { recursive: true, force: true })
  }
}
