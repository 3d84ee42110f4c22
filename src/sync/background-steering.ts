/**
 * A background download's steering, as LEDBAT's: it keeps the queueing delay it adds near a
 * target, takes an idle link, growing by time and without a startup, and backs off to a
 * trickle when other traffic fills the queue. Pure: one closed round in, the next pace out.
 */

/**
 * Queueing delay a background download aims to add at most, and how hard it steers toward it.
 * On a path whose queue never grows that long (a small router buffer), it aims at half the
 * largest queueing delay seen lately, and never below BACKGROUND_MIN_TARGET_MS.
 */
const BACKGROUND_TARGET_DELAY_MS = 25
const BACKGROUND_MIN_TARGET_MS = 2
/**
 * Below the target it grows at most this part a BACKGROUND_GROWTH_MS, however short its
 * rounds: a few times slower than a focused download's probes, so another flow that starts
 * beside it shows its queue before the background download has taken the room.
 */
const BACKGROUND_GAIN = 0.1
const BACKGROUND_GROWTH_MS = 200
/** Never more than this above what the path delivered lately (a focused download's probe and more). */
const CEILING_OVER_BOTTLENECK = 1.5

/** What a closed round showed, as the steering needs it. Rates are in slices per second. */
export interface BackgroundRound {
  rate: number
  /** More lost over the latest rounds than noise explains. */
  lossy: boolean
  anyLoss: boolean
  elapsedMs: number
  queueingDelayMs: number
  /** The largest queueing delay seen lately: the size of the path's queue. */
  maxQueueingDelayMs: number
  bottleneckRate: number
  /** The rate a download starts at: the ceiling is never under it, so a path not yet measured can be grown into. */
  initialRate: number
}

/**
 * The next pace. Any loss while the queue is past half the target halves it, as LEDBAT does:
 * a download that starts while another flow keeps the queue full takes that queue for the
 * path's own delay, and only its losses tell it otherwise. Losses with no queue to show are
 * noise, unless there are many.
 */
export function steerBackground (r: BackgroundRound): number {
  const target = Math.max(BACKGROUND_MIN_TARGET_MS, Math.min(BACKGROUND_TARGET_DELAY_MS, r.maxQueueingDelayMs / 2))
  if (r.lossy || (r.anyLoss && r.queueingDelayMs >= target / 2)) return r.rate * 0.5
  const off = (target - r.queueingDelayMs) / target
  // Backing off is not slowed: a queue past the target is answered each round.
  const step = off >= 0 ? BACKGROUND_GAIN * Math.min(1, r.elapsedMs / BACKGROUND_GROWTH_MS) * off : Math.max(-0.5, BACKGROUND_GAIN * off)
  const ceiling = Math.max(r.initialRate, r.bottleneckRate * CEILING_OVER_BOTTLENECK)
  return Math.min(ceiling, r.rate * (1 + step))
}
