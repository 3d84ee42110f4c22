/**
 * The transfer on real kernel bottlenecks (network namespaces, a veth pair, `tc tbf`): per
 * link, goodput against the link and qf's framing ceiling (of a focused download, and of a
 * background one alone on the link), what the sender put on the link, queue drops,
 * duplicates, the queueing delay a ping sees, and what a TCP flow keeps beside a focused and
 * a background download. Needs root. Prints one JSON object.
 * TCP beside qf is measured twice: with the machine's own congestion control, its sender
 * behind the same `tbf` as qf's; and with CUBIC (Linux's default, which fills a queue until
 * it overflows) past a router in a third namespace, as across the internet. Against each, what
 * one TCP flow keeps beside a second of its own kind; and beside a focused download, TCP's
 * window and round trip, which bound what a window-limited flow (BBR's) keeps. Each transfer
 * runs three times (see RUNS); `--quick` runs each once, with smaller files; `--rate=N` runs
 * only the links of N Mbit/s. A link measured while the machine slowed is measured again.
 *   node dist/bench/links.js [--quick] [--rate=N]
 */
import { Netlab, defaultCongestionControl } from '../test/helpers/netlab.js'
import { shapedTransfer, tcpAlone, tcpBesideTcp } from '../test/helpers/shaped-transfer.js'
import type { LinkSpec } from '../test/helpers/netlab.js'
import type { ShapedTransferResult } from '../test/helpers/shaped-transfer.js'
import { middle } from './middle.js'

const MiB = 1024 * 1024
const KB = 1024
/** Focused and background, as `qf get --priority` takes them. */
const FOCUSED = 8
const BACKGROUND = 2

const LINKS: LinkSpec[] = [
  { rateMbit: 10, queueBytes: 32 * KB },
  { rateMbit: 10, queueBytes: 512 * KB },
  { rateMbit: 50, queueBytes: 32 * KB },
  { rateMbit: 50, queueBytes: 512 * KB }
]

const round = (x: number | null, digits = 3): number | null => x === null ? null : Number(x.toFixed(digits))

/**
 * Each transfer runs this many times and the run with the median of its key figure is kept
 * (goodput alone, what TCP keeps beside): one run of a 5 ms queue or of BBR beside a focused
 * download spreads by a tenth or more from the next. The spread is printed beside it.
 */
const RUNS = 3

interface MedianRun {
  run: ShapedTransferResult
  /** Every run's key figure, in the order run. */
  all: number[]
  /** Every run finished its file. */
  complete: boolean
}

/** Runs a transfer `runs` times: the run with the median `key`, and every run's `key`. */
async function medianRun (runs: number, transfer: () => Promise<ShapedTransferResult>, key: (r: ShapedTransferResult) => number): Promise<MedianRun> {
  const results: ShapedTransferResult[] = []
  for (let i = 0; i < runs; i++) results.push(await transfer())
  return { run: middle(results, key), all: results.map(r => round(key(r))!), complete: results.every(r => r.complete) }
}

/** Measures a share `runs` times: the median and every run's, leaving out runs that measured none. */
async function shareRuns (runs: number, measure: () => Promise<number | null>): Promise<{ median: number | null, all: number[] }> {
  const shares: number[] = []
  for (let i = 0; i < runs; i++) {
    const share = await measure()
    if (share !== null) shares.push(share)
  }
  return { median: shares.length === 0 ? null : round(middle(shares, x => x)), all: shares.map(x => round(x)!) }
}

/** About ten seconds of the link at qf's ceiling. */
const sizeFor = (spec: LinkSpec, quick: boolean): number => Math.round((quick ? 4 : 10) * spec.rateMbit * 1e6 * 0.8 / 8 / MiB) * MiB

/**
 * TCP alone keeps 0.94–0.97 of each link here. This machine slows for minutes at a time, and
 * a link measured in such a spell (TCP alone under this part of it, before or after) is
 * measured once more; both tries are printed.
 */
const SLOW_MACHINE_TCP_OF_LINK = 0.9

export async function measureLinks (quick = false, rateMbit: number | null = null): Promise<Array<Record<string, unknown>>> {
  const rows: Array<Record<string, unknown>> = []
  for (const spec of LINKS.filter(link => rateMbit === null || link.rateMbit === rateMbit)) {
    const first = await measureLink(spec, quick)
    if (first.machine_slowed !== true) {
      rows.push(first)
      continue
    }
    const again = await measureLink(spec, quick)
    rows.push({ ...again, first_try_after_slow_machine: first })
  }
  return rows
}

async function measureLink (spec: LinkSpec, quick: boolean): Promise<Record<string, unknown>> {
  const runs = quick ? 1 : RUNS
  const size = sizeFor(spec, quick)
  /** What the TCP flow beside a transfer kept, as a fraction of the link. */
  const tcpKept = (beside: ShapedTransferResult): number => (beside.tcpBesideMbit ?? 0) / spec.rateMbit
  const aloneRuns = await medianRun(runs, async () => await shapedTransfer(spec, { sizeBytes: size, priority: FOCUSED, ping: true }), r => r.ofCeiling)
  const alone = aloneRuns.run
  const tcpOnly = await tcpAlone(spec)
  const tcpSeconds = Math.ceil(alone.seconds * 1.5) + 4
  const beside = async (link: LinkSpec, priority: number): Promise<MedianRun> =>
    await medianRun(runs, async () => await shapedTransfer(link, { sizeBytes: size, priority, tcpSeconds }), tcpKept)
  // A background download is to take an idle link as well as yield a busy one.
  const backgroundAloneRuns = await medianRun(runs, async () => await shapedTransfer(spec, { sizeBytes: size, priority: BACKGROUND }), r => r.ofCeiling)
  const focusedRuns = await beside(spec, FOCUSED)
  const backgroundRuns = await beside(spec, BACKGROUND)
  const pastRouter: LinkSpec = { ...spec, router: true, tcp: 'cubic' }
  const cubicAlone = await tcpAlone(pastRouter)
  const cubicFocusedRuns = await beside(pastRouter, FOCUSED)
  const cubicBackgroundRuns = await beside(pastRouter, BACKGROUND)
  const [besideFocused, besideBackground, cubicBesideFocused, cubicBesideBackground] = [focusedRuns.run, backgroundRuns.run, cubicFocusedRuns.run, cubicBackgroundRuns.run]
  // What one TCP flow leaves another of its kind, started as late and running as long: the
  // share qf's is read against.
  const tcpBesideTcpRuns = await shareRuns(runs, async () => await tcpBesideTcp(spec, tcpSeconds))
  const cubicBesideCubicRuns = await shareRuns(runs, async () => await tcpBesideTcp(pastRouter, tcpSeconds))
  const tcpAfter = await tcpAlone(spec)
  return {
    link: alone.link,
    file_mib: size / MiB,
    seconds: round(alone.seconds, 2),
    goodput_mbit: round(alone.goodputMbit, 2),
    goodput_of_link: round(alone.ofLink),
    goodput_of_qf_ceiling: round(alone.ofCeiling),
    goodput_of_qf_ceiling_runs: aloneRuns.all,
    sent_over_file: round(alone.sentOverFile),
    sent_over_framing_minimum: round(alone.sentOverMinimum),
    queue_drops: alone.queueDrops,
    measured_bottleneck_of_link: round(alone.seen?.bottleneckOfLink ?? null),
    duplicate_fraction: round(alone.duplicateFraction, 4),
    ping_idle_ms: round(alone.idleRttMs, 2),
    ping_busy_ms: round(alone.busyRttMs, 2),
    queueing_delay_added_ms: alone.busyRttMs === null || alone.idleRttMs === null ? null : round(alone.busyRttMs - alone.idleRttMs, 1),
    background_alone_of_qf_ceiling: round(backgroundAloneRuns.run.ofCeiling),
    background_alone_of_qf_ceiling_runs: backgroundAloneRuns.all,
    tcp_alone_mbit: round(tcpOnly, 2),
    tcp_alone_of_link: round(tcpOnly / spec.rateMbit),
    tcp_beside_focused_of_link: round(tcpKept(besideFocused)),
    tcp_beside_focused_of_link_runs: focusedRuns.all,
    qf_focused_beside_tcp_of_link: round(besideFocused.ofLink),
    // What the focused download's congestion control made of the path beside TCP: a
    // bottleneck above the link's own rate (1.0) is an overestimate it then paces at.
    focused_beside_tcp_measured_bottleneck_of_link: round(besideFocused.seen?.bottleneckOfLink ?? null),
    focused_beside_tcp_min_rtt_ms: round(besideFocused.seen?.minRttMs ?? null, 1),
    focused_beside_tcp_queueing_delay_ms: round(besideFocused.seen?.queueingDelayMs ?? null, 1),
    // A flow whose window bounds it (BBR's, sized by a round trip measured with the queue
    // empty) keeps its window over the round trip: the queue held beside it decides its share.
    tcp_beside_focused_window_packets: besideFocused.tcpSocket?.windowPackets ?? null,
    tcp_beside_focused_rtt_ms: round(besideFocused.tcpSocket?.rttMs ?? null, 1),
    tcp_beside_focused_window_over_rtt_of_link: round(besideFocused.tcpSocket?.windowOverRttOfLink ?? null),
    tcp_beside_tcp_of_link: tcpBesideTcpRuns.median,
    tcp_beside_tcp_of_link_runs: tcpBesideTcpRuns.all,
    tcp_beside_background_of_link: round(tcpKept(besideBackground)),
    tcp_beside_background_of_link_runs: backgroundRuns.all,
    qf_background_beside_tcp_of_link: round(besideBackground.ofLink),
    cubic_past_router_alone_of_link: round(cubicAlone / spec.rateMbit),
    cubic_past_router_beside_focused_of_link: round(tcpKept(cubicBesideFocused)),
    cubic_past_router_beside_focused_of_link_runs: cubicFocusedRuns.all,
    qf_focused_beside_cubic_of_link: round(cubicBesideFocused.ofLink),
    focused_beside_cubic_min_rtt_ms: round(cubicBesideFocused.seen?.minRttMs ?? null, 1),
    focused_beside_cubic_queueing_delay_ms: round(cubicBesideFocused.seen?.queueingDelayMs ?? null, 1),
    cubic_past_router_beside_cubic_of_link: cubicBesideCubicRuns.median,
    cubic_past_router_beside_cubic_of_link_runs: cubicBesideCubicRuns.all,
    cubic_past_router_beside_background_of_link: round(tcpKept(cubicBesideBackground)),
    cubic_past_router_beside_background_of_link_runs: cubicBackgroundRuns.all,
    qf_background_beside_cubic_of_link: round(cubicBesideBackground.ofLink),
    complete: [aloneRuns, backgroundAloneRuns, focusedRuns, backgroundRuns, cubicFocusedRuns, cubicBackgroundRuns].every(r => r.complete),
    tcp_alone_after_of_link: round(tcpAfter / spec.rateMbit),
    machine_slowed: Math.min(tcpOnly, tcpAfter) < SLOW_MACHINE_TCP_OF_LINK * spec.rateMbit
  }
}

if (process.argv[1]?.endsWith('links.js') === true) {
  const missing = Netlab.available()
  if (missing !== null) {
    console.log(JSON.stringify({ links: null, why: missing }))
  } else {
    const rateText = process.argv.find(arg => arg.startsWith('--rate='))?.slice('--rate='.length)
    const rate = rateText === undefined ? null : Number(rateText)
    if (rate !== null && !LINKS.some(link => link.rateMbit === rate)) {
      console.error(`links: --rate takes one of ${[...new Set(LINKS.map(link => link.rateMbit))].join(', ')} (Mbit/s), not ${rateText}`)
      process.exit(2)
    }
    console.log(JSON.stringify({ tcp_congestion_control: defaultCongestionControl(), links: await measureLinks(process.argv.includes('--quick'), rate) }, null, 2))
  }
}
