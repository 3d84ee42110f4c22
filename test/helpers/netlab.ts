import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { QF_MAIN, sleep } from '../../src/cli/processes.js'
import { CONTROL_FILE, initIdentity } from '../../src/node/config.js'
import { addNamespace, deleteNamespace, killProcessesIn, run } from './lab-namespaces.js'
import type { ChildProcess } from 'node:child_process'

/**
 * A real bottleneck between two hosts, as root: network namespaces `a` and `b` joined by a
 * veth pair (or through a router's namespace), and the way from a to b shaped with `tc tbf`
 * (a rate and a bounded queue). Traffic from a to b crosses the bottleneck; b to a does not.
 * Everything is deleted by `close`, also after a failure.
 */
export interface LinkSpec {
  rateMbit: number
  /** The tbf queue (its `limit`), bytes. */
  queueBytes: number
  /**
   * The bottleneck sits on a bridge in a third namespace between a and b, as a home router's
   * uplink does, instead of on a's own veth. On a's own device TCP small queues bound what a
   * socket may have in its host's qdisc, so TCP from a holds only part of a deep queue and
   * does not overflow it; past a router it fills it as across the internet.
   */
  router?: boolean
  /**
   * The congestion control of TCP flows from a (the anchor beside qf), e.g. `cubic`, Linux's
   * default and the common one, which fills a queue until it overflows; by default the
   * machine's own (`bbr` on some, which keeps a queue short).
   */
  tcp?: string
}

export const HOST_A = '10.77.0.1'
export const HOST_B = '10.77.0.2'
/** The tbf bucket: a little more than one datagram, so bursts meet the queue, not the bucket. */
const BURST_BYTES = 4_000

export interface QdiscStats {
  /** Bytes and packets the qdisc let through (layer 2: IP and UDP headers and the Ethernet header included). */
  bytes: number
  packets: number
  drops: number
  /** Bytes offered to the bottleneck: those let through and those dropped (at the mean packet size). */
  offeredBytes: number
}

/** Processes run inside namespaces: started, waited for, and all killed at the end. */
export class LabProcesses {
  private readonly children = new Set<ChildProcess>()

  constructor (protected readonly namespaces: string[] = []) {}

  /** A namespace whose leftover processes `kill` also ends. */
  adopt (ns: string): void {
    this.namespaces.push(ns)
  }

  /** Runs a command inside a namespace to completion; its stdout. */
  exec (ns: string, argv: string[]): string {
    return run(['ip', 'netns', 'exec', ns, ...argv])
  }

  /**
   * Starts a long-running command inside a namespace; it is killed by `kill`, and by the
   * kernel if this process dies first (`setpriv --pdeathsig`, kept across `ip netns exec`'s
   * exec): a run killed before its `finally` otherwise leaves daemons busy in a namespace
   * no one deletes, and they slow every run after it.
   */
  spawn (ns: string, argv: string[], options: { stdout?: number | 'pipe' | 'ignore', stderr?: number | 'pipe' | 'ignore' } = {}): ChildProcess {
    const child = spawn('setpriv', ['--pdeathsig', 'KILL', 'ip', 'netns', 'exec', ns, ...argv], { stdio: ['ignore', options.stdout ?? 'ignore', options.stderr ?? 'ignore'] })
    this.children.add(child)
    child.on('exit', () => this.children.delete(child))
    return child
  }

  /** `qf …` inside a namespace. */
  qf (ns: string, ...argv: string[]): string {
    return this.exec(ns, [process.execPath, QF_MAIN, ...argv]).trim()
  }

  /** `qf …` inside a namespace, not blocking the tests' event loop: its stdout, or a rejection saying what it printed. */
  async qfAsync (ns: string, ...argv: string[]): Promise<string> {
    const child = this.spawn(ns, [process.execPath, QF_MAIN, ...argv], { stdout: 'pipe', stderr: 'pipe' })
    let output = ''
    let errors = ''
    child.stdout!.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr!.on('data', (d: Buffer) => { errors += d.toString() })
    const code = await new Promise<number | null>(resolve => child.on('exit', resolve))
    if (code !== 0) throw new Error(`qf ${argv.join(' ')} in ${ns} failed: ${errors.trim()}`)
    return output.trim()
  }

  /** Kills what was started here and anything else left running in the namespaces. */
  kill (): void {
    for (const child of this.children) child.kill('SIGKILL')
    for (const ns of this.namespaces) killProcessesIn(ns)
  }
}

export class Netlab extends LabProcesses {
  readonly nsA: string
  readonly nsB: string
  private readonly nsRouter: string | null
  private readonly vethA: string
  private readonly vethB: string
  /** Where the tbf sits: a's veth, or the router's port toward b. */
  private readonly bottleneck: { ns: string, dev: string }
  private closed = false

  private constructor (readonly spec: LinkSpec, private readonly tag: string) {
    super()
    this.nsA = `qfa${tag}`
    this.nsB = `qfb${tag}`
    this.nsRouter = spec.router === true ? `qfr${tag}` : null
    for (const ns of [this.nsA, this.nsB, this.nsRouter]) if (ns !== null) this.adopt(ns)
    this.vethA = `qfva${tag}`
    this.vethB = `qfvb${tag}`
    this.bottleneck = this.nsRouter === null ? { ns: this.nsA, dev: this.vethA } : { ns: this.nsRouter, dev: `qfrb${tag}` }
  }

  /** Whether this process may build namespaces (it must be root, with `ip` and `tc` installed). */
  static available (): string | null {
    if (process.getuid?.() !== 0) return 'network namespaces need root'
    try { run(['ip', '-V']); run(['tc', '-V']) } catch { return 'iproute2 (ip, tc) is not installed' }
    try { run(['setpriv', '--version']) } catch { return 'util-linux (setpriv) is not installed' }
    return null
  }

  static create (spec: LinkSpec): Netlab {
    const lab = new Netlab(spec, `${process.pid % 100000}${Math.floor(Math.random() * 1000)}`)
    try {
      lab.build()
    } catch (err) {
      lab.close()
      throw err
    }
    return lab
  }

  private build (): void {
    addNamespace(this.nsA)
    addNamespace(this.nsB)
    if (this.nsRouter === null) {
      run(['ip', 'link', 'add', this.vethA, 'netns', this.nsA, 'type', 'veth', 'peer', 'name', this.vethB, 'netns', this.nsB])
    } else {
      // a and b on one bridge in the router's namespace: the same addresses, one hop between.
      const ns = this.nsRouter
      const bridge = `qfbr${this.tag}`
      // The port toward b is the bottleneck.
      const ports = [`qfra${this.tag}`, this.bottleneck.dev]
      addNamespace(ns)
      run(['ip', 'link', 'add', this.vethA, 'netns', this.nsA, 'type', 'veth', 'peer', 'name', ports[0]!, 'netns', ns])
      run(['ip', 'link', 'add', this.vethB, 'netns', this.nsB, 'type', 'veth', 'peer', 'name', ports[1]!, 'netns', ns])
      run(['ip', '-n', ns, 'link', 'add', bridge, 'type', 'bridge'])
      for (const dev of ports) {
        run(['ip', '-n', ns, 'link', 'set', dev, 'master', bridge])
        run(['ip', '-n', ns, 'link', 'set', dev, 'up'])
      }
      run(['ip', '-n', ns, 'link', 'set', bridge, 'up'])
    }
    for (const [ns, dev, host] of [[this.nsA, this.vethA, HOST_A], [this.nsB, this.vethB, HOST_B]] as const) {
      run(['ip', '-n', ns, 'addr', 'add', `${host}/24`, 'dev', dev])
      run(['ip', '-n', ns, 'link', 'set', dev, 'up'])
      run(['ip', '-n', ns, 'link', 'set', 'lo', 'up'])
    }
    this.shape(this.spec)
    if (this.spec.tcp !== undefined) useCongestionControl(this.nsA, this.spec.tcp)
  }

  /** (Re)shapes the way from a to b. */
  shape (spec: LinkSpec): void {
    run(['tc', '-n', this.bottleneck.ns, 'qdisc', 'replace', 'dev', this.bottleneck.dev, 'root', 'tbf',
      'rate', `${spec.rateMbit}mbit`, 'burst', String(BURST_BYTES), 'limit', String(spec.queueBytes)])
  }

  /** What a's bottleneck has passed and dropped so far. */
  stats (): QdiscStats {
    return qdiscStats(this.bottleneck.ns, this.bottleneck.dev)
  }

  close (): void {
    if (this.closed) return
    this.closed = true
    this.kill()
    for (const ns of this.namespaces) deleteNamespace(ns)
  }
}

const CONGESTION_CONTROL = '/proc/sys/net/ipv4/tcp_congestion_control'
const ALLOWED_CONGESTION_CONTROL = '/proc/sys/net/ipv4/tcp_allowed_congestion_control'

/**
 * Sets TCP's congestion control inside `ns`. A namespace may choose only among the algorithms
 * the machine allows (`reno` and the default, usually), so the one asked for is added to that
 * list first: a change to the machine, but one that only widens a choice.
 */
function useCongestionControl (ns: string, algorithm: string): void {
  const allowed = fs.readFileSync(ALLOWED_CONGESTION_CONTROL, 'utf8').trim().split(/\s+/)
  if (!allowed.includes(algorithm)) fs.writeFileSync(ALLOWED_CONGESTION_CONTROL, [...allowed, algorithm].join(' '))
  // /proc/sys/net shows the namespace of the process that reads it.
  run(['ip', 'netns', 'exec', ns, 'sh', '-c', `echo ${algorithm} > ${CONGESTION_CONTROL}`])
}

/** The machine's own TCP congestion control, which a namespace starts with. */
export function defaultCongestionControl (): string {
  return fs.readFileSync(CONGESTION_CONTROL, 'utf8').trim()
}

/** What a tbf qdisc has passed and dropped so far. */
export function qdiscStats (ns: string, dev: string): QdiscStats {
  const json = JSON.parse(run(['tc', '-n', ns, '-s', '-j', 'qdisc', 'show', 'dev', dev])) as Array<{ kind: string, bytes: number, packets: number, drops: number }>
  const tbf = json.find(q => q.kind === 'tbf')
  if (tbf === undefined) throw new Error('no tbf qdisc on the link')
  const meanPacket = tbf.packets === 0 ? 0 : tbf.bytes / tbf.packets
  return { bytes: tbf.bytes, packets: tbf.packets, drops: tbf.drops, offeredBytes: tbf.bytes + tbf.drops * meanPacket }
}

export interface LabDaemon {
  name: string
  ns: string
  dir: string
  log: string
  child: ChildProcess
}

/**
 * Starts `qf daemon` for a fresh identity inside `ns` on `port`, announced at `host:port`
 * (null: it announces what it finds itself); waits until it answers.
 */
export async function startLabDaemon (lab: LabProcesses, root: string, name: string, ns: string, host: string | null, port: number, extra: string[] = []): Promise<LabDaemon> {
  const dir = path.join(root, name)
  const log = path.join(root, `${name}.log`)
  initIdentity(dir, name)
  const out = fs.openSync(log, 'a')
  const child = lab.spawn(ns, [process.execPath, QF_MAIN, 'daemon', '--dir', dir, '--port', String(port), ...(host === null ? [] : ['--announce', `${host}:${port}`]), '--quiet', ...extra], { stdout: out, stderr: out })
  fs.closeSync(out)
  // The daemon writes its control file once its API answers.
  for (let i = 0; i < 300 && child.exitCode === null; i++) {
    if (fs.existsSync(path.join(dir, CONTROL_FILE))) return { name, ns, dir, log, child }
    await sleep(50)
  }
  throw new Error(`the daemon ${name} did not start in ${ns}; see ${log}`)
}

/** alice in a, bob in b, in one network. */
export async function startLabPair (lab: Netlab, extra: string[] = []): Promise<{ root: string, alice: LabDaemon, bob: LabDaemon }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-lab-'))
  const alice = await startLabDaemon(lab, root, 'alice', lab.nsA, HOST_A, 7101, extra)
  const bob = await startLabDaemon(lab, root, 'bob', lab.nsB, HOST_B, 7102, extra)
  lab.qf(lab.nsA, 'network', 'create', 'lab', '--dir', alice.dir)
  lab.qf(lab.nsB, 'join', lab.qf(lab.nsA, 'invite', '--dir', alice.dir), '--dir', bob.dir)
  return { root, alice, bob }
}

export function labStatus (lab: LabProcesses, daemon: LabDaemon): any {
  return JSON.parse(lab.qf(daemon.ns, 'status', '--dir', daemon.dir, '--json'))
}

/**
 * Waits until `daemon` lists the file (it came by sync from a peer), polling `qf files` without
 * blocking the event loop; gives up quietly after about `timeoutMs` (what follows then fails
 * with its own message).
 */
export async function untilListed (lab: LabProcesses, daemon: LabDaemon, fileId: string, timeoutMs: number): Promise<void> {
  for (let i = 0; i < timeoutMs / 100; i++) {
    const files = JSON.parse(await lab.qfAsync(daemon.ns, 'files', '--dir', daemon.dir, '--json')) as Array<{ fileId: string }>
    if (files.some(f => f.fileId === fileId)) return
    await sleep(100)
  }
}

const TCP_FLOW = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tcp-flow.js')
/** The port of the TCP flow beside qf; a second flow beside it takes the next. */
export const TCP_FLOW_PORT = 7200

/**
 * A bulk TCP flow from a to b for `seconds`: the bytes b received in each second. Started
 * beside a transfer, it shows what qf leaves to others.
 */
export async function tcpFlow (lab: Netlab, seconds: number, port = TCP_FLOW_PORT): Promise<number[]> {
  const server = lab.spawn(lab.nsB, [process.execPath, TCP_FLOW, 'receive', HOST_B, String(port), String(seconds)], { stdout: 'pipe' })
  let output = ''
  server.stdout!.on('data', (d: Buffer) => { output += d.toString() })
  const done = new Promise<void>(resolve => server.on('exit', () => resolve()))
  await sleep(300)
  lab.spawn(lab.nsA, [process.execPath, TCP_FLOW, 'send', HOST_B, String(port), String(seconds + 2)])
  await done
  return output.trim().split('\n').filter(Boolean).map(Number)
}

/** What the kernel shows of the TCP flow's sending socket (`ss -tin` in a): its window, packets, and its smoothed round trip, ms. */
export interface TcpSocketSample {
  windowPackets: number
  rttMs: number
  /** What that window carries over that round trip, Mbit/s: all a flow whose window bounds it can send. */
  windowOverRttMbit: number
}

/**
 * Samples the TCP flow's sending socket every `everyMs` until stopped; the samples so far.
 * A flow whose window bounds it (BBR, sizing its window by a round trip measured with the
 * queue empty) keeps its window over the round trip: these show why it keeps what it does.
 */
export function sampleTcpSocket (lab: Netlab, everyMs = 500): { stop: () => TcpSocketSample[] } {
  const samples: TcpSocketSample[] = []
  let stopped = false
  const timer = setInterval(() => {
    const child = lab.spawn(lab.nsA, ['ss', '-tin', 'state', 'established', `( dport = :${TCP_FLOW_PORT} )`], { stdout: 'pipe' })
    let output = ''
    child.stdout!.on('data', (d: Buffer) => { output += d.toString() })
    child.on('exit', () => {
      const window = /\bcwnd:(\d+)/.exec(output)
      const rtt = /\brtt:([\d.]+)\//.exec(output)
      const segment = /\bmss:(\d+)/.exec(output)
      if (!stopped && window !== null && rtt !== null && segment !== null) {
        const windowPackets = Number(window[1])
        const rttMs = Number(rtt[1])
        samples.push({ windowPackets, rttMs, windowOverRttMbit: windowPackets * Number(segment[1]) * 8 / (rttMs * 1000) })
      }
    })
  }, everyMs)
  return {
    stop: () => {
      stopped = true
      clearInterval(timer)
      return samples
    }
  }
}

/** Round trips a to b and back (the reply crosses the bottleneck), one every 100 ms for `seconds`. */
export async function pingTimes (lab: Netlab, seconds: number): Promise<number[]> {
  const child = lab.spawn(lab.nsB, ['ping', '-n', '-i', '0.1', '-w', String(seconds), HOST_A], { stdout: 'pipe' })
  let output = ''
  child.stdout!.on('data', (d: Buffer) => { output += d.toString() })
  await new Promise<void>(resolve => child.on('exit', () => resolve()))
  return [...output.matchAll(/time=([\d.]+) ms/g)].map(m => Number(m[1]))
}

export function median (values: number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}
