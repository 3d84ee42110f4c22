import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import crypto from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { QF_MAIN, sleep } from '../../src/cli/processes.js'
import { Natlab } from './natlab.js'
import { labStatus, qdiscStats, startLabDaemon, untilListed } from './netlab.js'
import type { Middlebox, NatMember } from './natlab.js'
import type { LabDaemon } from './netlab.js'
import type { ChildProcess } from 'node:child_process'

const ROUTE_WATCH = path.join(path.dirname(fileURLToPath(import.meta.url)), 'route-watch.js')

export interface RouteChange { atMs: number, peer: string, name: string | null, route: string, via: string | null }

/** Follows one member's view of its peers' routes (a watcher inside its namespace). */
export class RouteLog {
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

  /** When this member first knew `name`, when it first reached it (directly or relayed), and how it reaches it now. */
  reach (name: string): { knownAtMs: number | null, reachedAtMs: number | null, firstRoute: string | null, route: string | null, via: string | null } {
    const about = this.changes.filter(c => c.name === name)
    const reached = about.find(c => c.route !== 'unreachable')
    const last = about.at(-1)
    return { knownAtMs: about[0]?.atMs ?? null, reachedAtMs: reached?.atMs ?? null, firstRoute: reached?.route ?? null, route: last?.route ?? null, via: last?.via ?? null }
  }

  /** Waits until this member reaches `name` by `route` (any route when not given); false after `timeoutMs`. */
  async until (name: string, route: string | null, timeoutMs: number): Promise<boolean> {
    for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(50)) {
      const now = this.reach(name)
      if (route === null ? now.reachedAtMs !== null : now.route === route) return true
    }
    return false
  }
}

export interface TrioOptions {
  bob: Middlebox
  carol: Middlebox
  /** Extra arguments for alice's daemon (`--no-relay`, relay caps). */
  aliceArgs?: string[]
  /** Shape alice's uplink (the relay's) to this rate, Mbit/s, with a 512 KB queue. */
  relayUplinkMbit?: number
  /** Cut the direct path between bob and carol from the start (`cutBetween`). */
  cut?: boolean
}

export interface Download {
  /** The file arrived whole and equal to carol's. */
  verified: boolean
  /** The download's last state and its last wait reason, if any. */
  lastState: string
  waiting: string | null
  /** Seconds from `qf get` to complete (or to giving up). */
  seconds: number
}

/**
 * alice on the public segment, bob and carol each behind a middlebox of its own, in one
 * network; nobody announces an address by hand. Each member's view of the routes is followed.
 */
export class NatTrio {
  private constructor (
    readonly lab: Natlab, readonly root: string, readonly at: { alice: NatMember, bob: NatMember, carol: NatMember },
    readonly alice: LabDaemon, readonly bob: LabDaemon, readonly carol: LabDaemon, readonly bobLog: RouteLog, readonly carolLog: RouteLog
  ) {}

  static async start (options: TrioOptions): Promise<NatTrio> {
    const lab = Natlab.create()
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-nat-'))
    try {
      const at = { alice: lab.addPublic('alice'), bob: lab.addBehind('bob', options.bob), carol: lab.addBehind('carol', options.carol) }
      if (options.relayUplinkMbit !== undefined) lab.shapeUplink(at.alice, options.relayUplinkMbit, 512 * 1024)
      if (options.cut === true) lab.cutBetween(at.bob, at.carol, true)
      const start = async (member: NatMember, args: string[] = []): Promise<LabDaemon> => await startLabDaemon(lab.procs, root, member.name, member.ns, null, 7300, args)
      const [alice, bob, carol] = await Promise.all([start(at.alice, options.aliceArgs), start(at.bob), start(at.carol)])
      const watch = (daemon: LabDaemon): RouteLog => new RouteLog(lab.procs.spawn(daemon.ns, [process.execPath, ROUTE_WATCH, daemon.dir], { stdout: 'pipe' }))
      const trio = new NatTrio(lab, root, at, alice, bob, carol, watch(bob), watch(carol))
      lab.procs.qf(alice.ns, 'network', 'create', 'nat', '--dir', alice.dir)
      const invite = lab.procs.qf(alice.ns, 'invite', '--dir', alice.dir)
      await Promise.all([bob, carol].map(async member => await lab.procs.qfAsync(member.ns, 'join', invite, '--dir', member.dir)))
      return trio
    } catch (err) {
      lab.close()
      fs.rmSync(root, { recursive: true, force: true })
      throw err
    }
  }

  /** carol shares a file of random bytes; its id and where it lies. */
  share (bytes: number): { fileId: string, source: string } {
    const source = path.join(this.root, 'shared.bin')
    fs.writeFileSync(source, crypto.randomBytes(bytes))
    return { fileId: this.lab.procs.qf(this.carol.ns, 'share', source, '--dir', this.carol.dir), source }
  }

  /** bob downloads carol's file with `qf get` once he knows of it, following its progress. */
  async download (file: { fileId: string, source: string }, timeoutMs: number): Promise<Download> {
    const out = path.join(this.root, 'got.bin')
    // The file reaches bob through whoever he is connected to (alice at least); `qf get` wants a file he knows.
    await untilListed(this.lab.procs, this.bob, file.fileId, 15_000)
    const started = Date.now()
    const get = this.lab.procs.spawn(this.bob.ns, [process.execPath, QF_MAIN, 'get', file.fileId, '--dir', this.bob.dir, '--json', '--out', out], { stdout: 'pipe' })
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
      new Promise<void>(resolve => { giveUp = setTimeout(resolve, timeoutMs) })
    ])
    clearTimeout(giveUp)
    const verified = fs.existsSync(out) && fs.readFileSync(out).equals(fs.readFileSync(file.source))
    return { verified, lastState, waiting, seconds: ((finishedAt || Date.now()) - started) / 1000 }
  }

  /**
   * What bob and carol counted, for a cell that failed: bob's download, the connects each
   * accepted from the others, and the slices carol sent and dropped unsent.
   */
  diagnosis (): string {
    const bob = labStatus(this.lab.procs, this.bob)
    const carol = labStatus(this.lab.procs, this.carol)
    const download = (bob.downloads as Array<{ slicesReceived: number, slicesTotal: number, state: string }>)[0]
    return `bob holds ${download?.slicesReceived ?? 0}/${download?.slicesTotal ?? '?'} slices (${download?.state ?? 'no download'}); ` +
      `connects accepted: bob ${bob.transit?.connectsAccepted}, carol ${carol.transit?.connectsAccepted}; ` +
      `carol answered ${carol.stats?.requestsAnswered} requests, sent ${carol.stats?.slicesSent} slices, dropped ${carol.stats?.slicesUnsent} unsent; ` +
      `bob accepted ${bob.stats?.slicesAccepted}, duplicates ${bob.stats?.slicesDuplicate}, unsolicited ${bob.stats?.slicesUnsolicited}`
  }

  /** Bytes alice relayed so far. */
  relayedBytes (): number {
    return Number(labStatus(this.lab.procs, this.alice).transit?.relayedBytes ?? 0)
  }

  close (): void {
    this.lab.close()
    fs.rmSync(this.root, { recursive: true, force: true })
  }
}

export interface PairOptions extends TrioOptions {
  fileBytes: number
  /** Give up on the download after this long. */
  timeoutMs?: number
  /** Start the download only once bob reaches carol (to time the transfer alone). */
  reachFirst?: boolean
}

export interface PairResult extends Download {
  /** How bob reaches carol, and carol bob, at the end ('direct', 'relayed', 'unreachable'). */
  bobSees: { route: string | null, via: string | null }
  carolSees: { route: string | null, via: string | null }
  /** From bob first knowing carol to reaching her, ms (null: never). */
  msToReach: number | null
  /** The route bob first reached carol by. */
  firstRoute: string | null
  /** Bytes alice relayed, and what her shaped uplink passed. */
  relayedBytes: number
  uplinkBytes: number | null
  /** The addresses bob announced, as carol knows them, and where bob appears on the public segment. */
  bobAnnounced: string[]
  bobPublicHost: string
  /** For a file not verified: what each side counted (see `NatTrio.diagnosis`). */
  diagnosis: string | null
}

/** One cell of the NAT matrix: carol shares a file, bob downloads it; how each reached the other, how long it took, whether the file is whole. */
export async function natPair (options: PairOptions): Promise<PairResult> {
  const trio = await NatTrio.start(options)
  try {
    const file = trio.share(options.fileBytes)
    if (options.reachFirst === true) await trio.bobLog.until('carol', null, 10_000)
    const download = await trio.download(file, options.timeoutMs ?? 60_000)
    const bob = trio.bobLog.reach('carol')
    const carol = trio.carolLog.reach('bob')
    return {
      ...download,
      bobSees: { route: bob.route, via: bob.via },
      carolSees: { route: carol.route, via: carol.via },
      msToReach: bob.knownAtMs === null || bob.reachedAtMs === null ? null : bob.reachedAtMs - bob.knownAtMs,
      firstRoute: bob.firstRoute,
      relayedBytes: trio.relayedBytes(),
      bobAnnounced: (labStatus(trio.lab.procs, trio.carol).peers as Array<{ name: string | null, addresses: string[] }>).find(p => p.name === 'bob')?.addresses ?? [],
      bobPublicHost: trio.at.bob.publicHost,
      uplinkBytes: options.relayUplinkMbit === undefined ? null : qdiscStats(trio.at.alice.ns, 'eth0').bytes,
      diagnosis: download.verified ? null : trio.diagnosis()
    }
  } finally {
    trio.close()
  }
}
