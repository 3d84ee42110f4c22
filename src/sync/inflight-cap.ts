/**
 * A focused download's in-flight cap, as BBR's window of two round trips: the pace is held to
 * what such a window keeps in flight at the round trip now seen, so the queue this download
 * holds stays within a minimum round trip and some headroom. Pure.
 *
 * A flow whose window bounds it is why: BBR sizes its window by a round trip it measured with
 * the queue empty, and on a path with almost no delay of its own that window is a few dozen
 * packets, so every millisecond of queue held beside it divides its rate. It never fills a
 * deep queue and never loses, so no loss tells of it, and the queue it keeps at its floor
 * can sit in this download's own minimum round trip, where no probe of the round trip finds
 * it (see MinRtt). The pace a download alone keeps needs no more queue than its probes make.
 *
 * Not while a loss lately showed another flow filling the buffer (see LossCap): that queue is
 * the other flow's, and yielding to it by delay would leave the download nothing.
 */

/**
 * Room beyond two minimum round trips, ms, alone on the path: a probe's queue (a quarter of a
 * round above the estimate) and the receiver's batches fit in it. Less took more from the
 * download alone than it gave a flow beside it (at 6 ms: 0.89 of its ceiling alone on
 * 50 Mbit/s, 512 KB).
 */
export const INFLIGHT_HEADROOM_MS = 10
/**
 * The same once another flow was found on the path (see MinRtt): none, a window of two
 * minimum round trips as BBR's own. Two flows bounded by their windows share a queue as
 * their windows stand, and beside BBR the minimum this download measured holds BBR's queue
 * from before it started (startup reads 5–18 ms and the first probe 1–7, on a path of well
 * under 1), so its two round trips are often already a larger window than BBR's. With 4 ms
 * more, BBR on 50 Mbit/s, 512 KB kept 0.34–0.63 of the link; with none, 0.55–0.66 (six runs
 * each, alternating).
 */
export const INFLIGHT_HEADROOM_BESIDE_MS = 0
/**
 * The window the cap never goes below, slices (12 frames, about 13 KB on the wire). With no
 * floor, a queue the other flow holds by itself (BBR at its floor keeps 20 ms of a 10 Mbit/s
 * link) caps the pace below what it delivered, the estimate follows the pace down, and the
 * cap with it, round after round, to the slowest pace there is. Not more: on a path of a few
 * ms BBR at a share of 0.4 keeps about that in flight (two round trips of its rate and its
 * send quanta, 9 or 10 packets), and a floor of twice that (48 slices) took two thirds of a
 * 50 Mbit/s link beside it.
 */
export const INFLIGHT_FLOOR_SLICES = 24

/**
 * The pace (slices/s) that a window of two minimum round trips and `headroomMs` allows at the
 * round trip now seen, and never less than INFLIGHT_FLOOR_SLICES over that round trip.
 */
export function inflightCap (bottleneckRate: number, minRttMs: number, queueingDelayMs: number, headroomMs: number): number {
  if (!Number.isFinite(minRttMs)) return Infinity
  const windowSlices = Math.max(INFLIGHT_FLOOR_SLICES, (bottleneckRate * (2 * minRttMs + headroomMs)) / 1000)
  return (windowSlices * 1000) / Math.max(1, minRttMs + queueingDelayMs)
}
