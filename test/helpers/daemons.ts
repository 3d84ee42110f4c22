import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { daemonClient } from '../../src/cli/client.js'
import { freeUdpPort, qf, sleep, startDaemonProcess, stopDaemonProcess } from '../../src/cli/processes.js'
import type { DaemonProcess } from '../../src/cli/processes.js'
import { isSettled } from '../../src/node/progress.js'
import type { Progress } from '../../src/node/progress.js'

export interface Member {
  name: string
  dir: string
  daemon: DaemonProcess
  log: string
  api: ReturnType<typeof daemonClient>
  /** The addresses its daemon announces (HOST:PORT). */
  announce: string[]
}

export interface ProcessNetwork {
  root: string
  members: Member[]
  restart (member: Member): Promise<void>
  close (): Promise<void>
}

/**
 * `names[0]` creates a network, the others join with its invite; each is its own `qf daemon`
 * process. `announce` says what each announces, given its UDP port (default: loopback).
 */
export async function startProcessNetwork (names: string[], options: {
  announce?: (name: string, udpPort: number) => Promise<string[]> | string[]
  /** Called with each member's data directory (made empty) before anything is put in it. */
  prepare?: (name: string, dir: string) => void
} = {}): Promise<ProcessNetwork> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-proc-'))
  const members: Member[] = []
  const net: ProcessNetwork = {
    root,
    members,
    async restart (member) {
      member.daemon = await startDaemonProcess(member.dir, member.log, member.daemon.port, member.announce)
      member.api = daemonClient(member.dir)
    },
    async close () {
      await Promise.all(members.map(async m => await stopDaemonProcess(m.daemon)))
      fs.rmSync(root, { recursive: true, force: true })
    }
  }
  try {
    for (const name of names) {
      const dir = path.join(root, name)
      if (options.prepare !== undefined) {
        fs.mkdirSync(dir, { recursive: true })
        options.prepare(name, dir)
      }
      qf('init', '--dir', dir, '--name', name)
      const log = path.join(root, `${name}.log`)
      const port = await freeUdpPort()
      const announce = await options.announce?.(name, port) ?? [`127.0.0.1:${port}`]
      const daemon = await startDaemonProcess(dir, log, port, announce)
      members.push({ name, dir, daemon, log, api: daemonClient(dir), announce })
    }
    qf('network', 'create', 'test', '--dir', members[0]!.dir)
    const link = qf('invite', '--dir', members[0]!.dir)
    for (const m of members.slice(1)) qf('join', link, '--dir', m.dir)
    return net
  } catch (err) {
    await net.close()
    throw err
  }
}

export async function waitFor<T> (what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 30_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe().catch(() => null)
    if (value !== null && value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(everyMs)
  }
}

export async function status (member: Member, fileId: string): Promise<Progress> {
  return await member.api.call<Progress>('GET', `/api/files/${fileId}/status`)
}

/** The file's progress once its download settled (ended, and saved if a save was asked for). */
export async function settled (member: Member, fileId: string, timeoutMs = 600_000): Promise<Progress> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const progress = await member.api.call<Progress>('GET', `/api/files/${fileId}/status?wait=1000`)
    if (isSettled(progress)) return progress
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${fileId} to settle (${progress.state})`)
  }
}
