import fs from 'node:fs'
import path from 'node:path'
import dgram from 'node:dgram'
import { spawn, execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { daemonClient } from './client.js'
import type { ChildProcess } from 'node:child_process'

/** Running `qf` as child processes: used by the demo, the process tests and the benchmark. */
export const QF_MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js')

export const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

/** Runs `qf …` to completion and returns its trimmed stdout (throws on a non-zero exit). */
export function qf (...argv: string[]): string {
  return execFileSync(process.execPath, [QF_MAIN, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
}

export async function freeUdpPort (): Promise<number> {
  const socket = dgram.createSocket('udp4')
  await new Promise<void>(resolve => socket.bind(0, '127.0.0.1', resolve))
  const { port } = socket.address()
  await new Promise<void>(resolve => socket.close(() => resolve()))
  return port
}

export interface DaemonProcess {
  child: ChildProcess
  dir: string
  port: number
  /** Resolves with the exit code once the process ended. */
  exited: Promise<number | null>
}

/**
 * Starts `qf daemon` for `dir` on loopback and waits until its control API answers. It
 * announces `announce` (HOST:PORT each), by default its own loopback address; `user` runs
 * it as another user (the caller must be root).
 */
export async function startDaemonProcess (dir: string, logFile: string, port?: number, announce?: string[], user?: { uid: number, gid: number }): Promise<DaemonProcess> {
  const udpPort = port ?? await freeUdpPort()
  const log = fs.openSync(logFile, 'a')
  const announced = (announce ?? [`127.0.0.1:${udpPort}`]).flatMap(a => ['--announce', a])
  const child = spawn(process.execPath, [QF_MAIN, 'daemon', '--dir', dir, '--port', String(udpPort), ...announced], { stdio: ['ignore', log, log], ...user })
  fs.closeSync(log)
  const exited = new Promise<number | null>(resolve => child.on('exit', code => resolve(code)))
  for (let i = 0; i < 150; i++) {
    if (child.exitCode !== null) break
    try {
      await daemonClient(dir).call('GET', '/api/status')
      return { child, dir, port: udpPort, exited }
    } catch { await sleep(100) }
  }
  child.kill('SIGKILL')
  throw new Error(`the daemon for ${dir} did not start; see ${logFile}`)
}

/** SIGTERM, and wait for the exit. */
export async function stopDaemonProcess (daemon: DaemonProcess): Promise<number | null> {
  if (daemon.child.exitCode === null) daemon.child.kill('SIGTERM')
  return await daemon.exited
}
