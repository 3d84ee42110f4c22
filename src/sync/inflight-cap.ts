/**
 * A focused download's in-flight cap, as BBR's window of two round trips: the pace is held to
 * what such a window keeps in flight at the round trip now seen, so the queue this download
 * holds stays within a minimum round trip and INFLIGHT_HEADROOM_MS. Pure.
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
 * Room beyond two minimum round trips, ms: a probe's queue (a quarter of a round above the
 * estimate) and the receiver's batches fit in it. Less took more from the download alone than
 * it gave a flow beside it (at 6 ms: 0.89 of its ceiling alone on 50 Mbit/s, 512 KB).
 */
export const INFLIGHT_HEADROOM_MS = 10

/** The pace (slices/s) that a window of two minimum round trips and the headroom allows at the round trip now seen. */
export function inflightCap (bottleneckRate: number, minRttMs: number, queueingDelayMs: number): number {
  if (!Number.isFinite(minRttMs)) return Infinity
  return (bottleneckRate * (2 * minRttMs + INFLIGHT_HEADROOM_MS)) / Math.max(1, minRttMs + queueingDelayMs)
}
