import fs from 'node:fs'
import path from 'node:path'
import { QF_MAIN, sleep } from '../../src/cli/processes.js'
import { Netlab, TCP_FLOW_PORT, labStatus, median, pingTimes, sampleTcpSocket, startLabPair, tcpFlow, untilListed } from './netlab.js'
import { makeFile } from './sim.js'
import type { LinkSpec } from './netlab.js'

/** A full qf datagram on the wire: two 512-byte events, 57 bytes of transit, IP, UDP and Ethernet headers. */
const FRAME_BYTES = 1123
/** File bytes per frame on the wire: two 450-byte slices in one frame. */
export const QF_FRAMING_CEILING = 900 / FRAME_BYTES

export interface ShapedTransferOptions {
  sizeBytes: number
  priority: number
  /** Ping across the bottleneck during the transfer: the queueing delay it adds. */
  ping?: boolean
  /** Run a TCP flow beside the transfer for this many seconds (the transfer starts 2 s into it). */
  tcpSeconds?: number
  /** Extra `qf daemon` options for both daemons. */
  daemonOptions?: string[]
}

export interface ShapedTransferResult {
  link: string
  seconds: number
  goodputMbit: number
  /** Goodput over the link rate, and over qf's framing ceiling on it. */
  ofLink: number
  ofCeiling: number
  /** Bytes alice offered the bottleneck (frames, all her traffic, dropped ones included) over the file's size. */
  sentOverFile: number
  /** The same over the least qf's framing needs (1,123-byte frames for 900 file bytes): 1 is no waste. */
  sentOverMinimum: number
  queueDrops: number
  /** Slices that arrived twice, over the file's slices. */
  duplicateFraction: number
  /** Median ping round trip while idle and during the transfer, ms. */
  idleRttMs: number | null
  busyRttMs: number | null
  /** The TCP flow's rate in the seconds the transfer ran, Mbit/s (median). */
  tcpBesideMbit: number | null
  /**
   * Its sending socket meanwhile (medians of samples every half second): its window, and
   * the window over its smoothed round trip as a share of the link, which is what a flow
   * whose window bounds it can keep.
   */
  tcpSocket: { windowPackets: number, rttMs: number, windowOverRttOfLink: number } | null
  /**
   * What bob's congestion control made of the path while the file came (medians of samples
   * every two seconds): the bottleneck rate it measured, as a share of the link (frames
   * included), its minimum round trip, and the queueing delay it saw.
   */
  seen: { bottleneckOfLink: number, minRttMs: number, queueingDelayMs: number } | null
  complete: boolean
}

/** Bytes on the wire per slice: a frame carries two. */
export const FRAME_BYTES_PER_SLICE = FRAME_BYTES / 2

/**
 * alice (behind the bottleneck's sending side) shares a file; bob fetches it at `priority`;
 * measured on the real link and returned. Builds and deletes its own namespaces.
 */
export async function shapedTransfer (spec: LinkSpec, options: ShapedTransferOptions): Promise<ShapedTransferResult> {
  const lab = Netlab.create(spec)
  let root: string | null = null
  try {
    const pair = await startLabPair(lab, options.daemonOptions)
    root = pair.root
    const { alice, bob } = pair
    const source = makeFile(root, 'shaped.bin', options.sizeBytes, 5)
    const fileId = lab.qf(lab.nsA, 'share', source, '--dir', alice.dir)
    await untilListed(lab, bob, fileId, 10_000)
    const idle = options.ping === true ? await pingTimes(lab, 1) : []
    const tcp = options.tcpSeconds !== undefined ? tcpFlow(lab, options.tcpSeconds) : null
    if (tcp !== null) await sleep(2_000)
    const socketSampler = tcp !== null ? sampleTcpSocket(lab) : null
    const before = lab.stats()
    const duplicatesBefore = Number(labStatus(lab, bob).stats?.slicesDuplicate ?? 0)
    const started = Date.now()
    // qf get in bob's namespace prints a JSON line of progress as it goes.
    const get = lab.spawn(lab.nsB, [process.execPath, QF_MAIN, 'get', fileId, '--dir', bob.dir, '--priority', String(options.priority), '--json', '--out', path.join(root, 'got.bin')], { stdout: 'pipe' })
    const busy = options.ping === true ? pingTimes(lab, 3) : null
    const seen: Array<{ bottleneckSlicesPerS: number, minRttMs: number | null, queueingDelayMs: number }> = []
    const watch = setInterval(() => {
      lab.qfAsync(lab.nsB, 'status', '--dir', bob.dir, '--json').then(out => {
        const path = (JSON.parse(out) as { peers: Array<{ path: typeof seen[0] | null }> }).peers[0]?.path
        if (path !== null && path !== undefined && finishedAt === 0) seen.push(path)
      }, () => {})
    }, 2_000)
    let finishedAt = 0
    let lastState = ''
    let pending = ''
    get.stdout!.on('data', (d: Buffer) => {
      pending += d.toString()
      let cut
      while ((cut = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, cut)
        pending = pending.slice(cut + 1)
        try { lastState = (JSON.parse(line) as { state: string }).state } catch { continue }
        if (lastState === 'complete' && finishedAt === 0) finishedAt = Date.now()
      }
    })
    // At most ten minutes; the timer must not hold the process open once the download ended.
    let giveUp: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>(resolve => get.on('exit', () => resolve())),
      new Promise<void>(resolve => { giveUp = setTimeout(resolve, 600_000) })
    ])
    clearTimeout(giveUp)
    clearInterval(watch)
    const socketSamples = socketSampler?.stop() ?? []
    const startSecond = tcp !== null ? 2 : 0
    const seconds = ((finishedAt || Date.now()) - started) / 1000
    const after = lab.stats()
    const status = labStatus(lab, bob)
    const busyTimes = busy !== null ? await busy : []
    const perSecond = tcp !== null ? await tcp : []
    const duringTransfer = perSecond.slice(startSecond, startSecond + Math.max(1, Math.floor(seconds)))
    const goodputMbit = (options.sizeBytes * 8) / seconds / 1e6
    return {
      link: `${spec.rateMbit} Mbit/s, ${Math.round(spec.queueBytes / 1024)} KB queue`,
      seconds,
      goodputMbit,
      ofLink: goodputMbit / spec.rateMbit,
      ofCeiling: goodputMbit / (spec.rateMbit * QF_FRAMING_CEILING),
      sentOverFile: (after.offeredBytes - before.offeredBytes) / options.sizeBytes,
      sentOverMinimum: (after.offeredBytes - before.offeredBytes) * QF_FRAMING_CEILING / options.sizeBytes,
      queueDrops: after.drops - before.drops,
      duplicateFraction: (Number(status.stats?.slicesDuplicate ?? 0) - duplicatesBefore) / Math.ceil(options.sizeBytes / 450),
      idleRttMs: idle.length > 0 ? median(idle) : null,
      busyRttMs: busyTimes.length > 0 ? median(busyTimes) : null,
      tcpBesideMbit: duringTransfer.length > 0 ? median(duringTransfer) * 8 / 1e6 : null,
      tcpSocket: socketSamples.length === 0
        ? null
        : {
            windowPackets: median(socketSamples.map(s => s.windowPackets)),
            rttMs: median(socketSamples.map(s => s.rttMs)),
            windowOverRttOfLink: median(socketSamples.map(s => s.windowOverRttMbit)) / spec.rateMbit
          },
      seen: seen.length === 0
        ? null
        : {
            bottleneckOfLink: median(seen.map(p => p.bottleneckSlicesPerS)) * FRAME_BYTES_PER_SLICE * 8 / (spec.rateMbit * 1e6),
            minRttMs: median(seen.map(p => p.minRttMs ?? 0)),
            queueingDelayMs: median(seen.map(p => p.queueingDelayMs))
          },
      complete: finishedAt > 0
    }
  } finally {
    lab.close()
    if (root !== null) fs.rmSync(root, { recursive: true, force: true })
  }
}

/** A TCP flow alone on the link, Mbit/s (median of its seconds after the first). */
export async function tcpAlone (spec: LinkSpec, seconds = 5): Promise<number> {
  const lab = Netlab.create(spec)
  try {
    const perSecond = await tcpFlow(lab, seconds)
    return median(perSecond.slice(1)) * 8 / 1e6
  } finally {
    lab.close()
  }
}

/**
 * What a TCP flow keeps beside a second TCP flow of the same congestion control, started 2 s
 * after it (as a transfer starts beside it in `shapedTransfer`) and running `besideSeconds`:
 * the share one TCP flow leaves another, against which qf's is read. A fraction of the link
 * (the median of the first flow's seconds while both ran), or null if either never connected.
 */
export async function tcpBesideTcp (spec: LinkSpec, besideSeconds: number): Promise<number | null> {
  const lab = Netlab.create(spec)
  try {
    const first = tcpFlow(lab, besideSeconds + 4)
    await sleep(2_000)
    const second = await tcpFlow(lab, besideSeconds, TCP_FLOW_PORT + 1)
    const whileBoth = (await first).slice(3, 2 + besideSeconds)
    // A flow that never connected measured nothing.
    if (whileBoth.length === 0 || second.length === 0) return null
    return median(whileBoth) * 8 / 1e6 / spec.rateMbit
  } finally {
    lab.close()
  }
}
