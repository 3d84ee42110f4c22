/**
 * A background download's steering, as LEDBAT's: it keeps the queueing delay it adds near a
 * target, takes an idle link, growing by time and without a startup, and backs off to a
 * trickle when other traffic fills the queue. Fed each closed round, it gives the next pace;
 * all it keeps is the latest rounds' queues and the deepest seen lately. No clock, no I/O.
 *
 * The queue it steers by, and learns its target from, is the least of the latest rounds'
 * (LEDBAT's current-delay filter; libutp keeps the least of its latest three samples). On a
 * path whose own round trip is under a millisecond, the endpoints' moments of work (a batch
 * written, a burst read) read as a few milliseconds of queue for a round or two, against a
 * target of two or three: answered as a queue, each cut the pace by a fifth or more, which
 * took a second to grow back, and an idle 50 Mbit/s link was left a third unused. A queue
 * another flow keeps lasts longer than the filter. A single round at the target still holds
 * the climb, and a queue that lasts is cut. The price is on a buffer of a few milliseconds
 * and endpoints that never pause: its own queue can overflow it before three rounds show
 * it, and the loss halves the pace. Once an overflow: its losses are found over several
 * rounds, and halving for each took the pace to a quarter of the link or less
 * (docs/architecture.md has the figures).
 */

/**
 * Queueing delay a background download aims to add at most, and how hard it steers toward it.
 * On a path whose queue never grows that long (a small router buffer), it aims at half the
 * largest queueing delay seen lately, and never below BACKGROUND_MIN_TARGET_MS.
 */
const BACKGROUND_TARGET_DELAY_MS = 25
const BACKGROUND_MIN_TARGET_MS = 2
/**
 * It aims at no more than this part of its least round trip either, though never below the
 * floor (the endpoints' noise on a fast path). A flow whose window bounds it (BBR's, sized by
 * a round trip measured before this download came) loses the part d / (rtt + d) of its rate
 * to d ms of queue added beside it; a fifth of the round trip leaves it five sixths. Another
 * flow's standing queue, there before this download started, is in that least round trip,
 * as it is in the other flow's.
 */
const ROUND_TRIP_TARGET_FRACTION = 0.2
const ROUND_TRIP_TARGET_FLOOR_MS = 5
/**
 * Below the target it grows at most this part a BACKGROUND_GROWTH_MS, however short its
 * rounds: a few times slower than a focused download's probes, so another flow that starts
 * beside it shows its queue before the background download has taken the room.
 */
const BACKGROUND_GAIN = 0.1
const BACKGROUND_GROWTH_MS = 200
/** Never more than this above what the path delivered lately (a focused download's probe and more). */
const CEILING_OVER_BOTTLENECK = 1.5
/** The queue steered by is the least of this many latest rounds' queueing delays. */
const CURRENT_DELAY_ROUNDS = 3
/** The largest queueing delay seen (the size of the path's queue, for the target) fades by this factor a round. */
const MAX_QUEUE_FADE = 0.995

/** What a closed round showed, as the steering needs it. Rates are in slices per second. */
export interface BackgroundRound {
  rate: number
  /** More lost over the latest rounds than noise explains. */
  lossy: boolean
  anyLoss: boolean
  elapsedMs: number
  /** The round's queueing delay (its least round trip over the path's own). */
  queueingDelayMs: number
  /** The least round trip seen, ms (null before the first). */
  minRttMs: number | null
  bottleneckRate: number
  /** The rate a download starts at: the ceiling is never under it, so a path not yet measured can be grown into. */
  initialRate: number
  /** Losses found this long after a cut belong to the overflow it answered. */
  episodeMs: number
}

export class BackgroundSteering {
  /** Queueing delays of the latest rounds, newest last. */
  private readonly latest: number[] = []
  /** The largest filtered queueing delay seen lately, fading. */
  private maxQueueingDelayMs = 0
  /** Time since the pace was last halved for a loss, ms. */
  private sinceCutMs = Infinity

  /**
   * The next pace. Any loss while the queue is past half the target halves it, as LEDBAT does:
   * a download that starts while another flow keeps the queue full takes that queue for the
   * path's own delay, and only its losses tell it otherwise. Losses with no queue to show are
   * noise, unless there are many.
   */
  onRound (r: BackgroundRound): number {
    this.latest.push(r.queueingDelayMs)
    if (this.latest.length > CURRENT_DELAY_ROUNDS) this.latest.shift()
    const queueMs = Math.min(...this.latest)
    this.maxQueueingDelayMs = Math.max(this.maxQueueingDelayMs * MAX_QUEUE_FADE, queueMs)
    const roundTripTarget = r.minRttMs === null ? BACKGROUND_TARGET_DELAY_MS : Math.max(ROUND_TRIP_TARGET_FLOOR_MS, ROUND_TRIP_TARGET_FRACTION * r.minRttMs)
    const target = Math.max(BACKGROUND_MIN_TARGET_MS, Math.min(BACKGROUND_TARGET_DELAY_MS, roundTripTarget, this.maxQueueingDelayMs / 2))
    this.sinceCutMs += r.elapsedMs
    if (r.lossy || (r.anyLoss && queueMs >= target / 2)) {
      // Once an overflow: the losses found after the cut were sent before it.
      if (this.sinceCutMs < r.episodeMs) return r.rate
      this.sinceCutMs = 0
      return r.rate * 0.5
    }
    const off = (target - queueMs) / target
    // Backing off is not slowed: a queue past the target is answered each round.
    let step = off >= 0 ? BACKGROUND_GAIN * Math.min(1, r.elapsedMs / BACKGROUND_GROWTH_MS) * off : Math.max(-0.5, BACKGROUND_GAIN * off)
    if (r.queueingDelayMs >= target) step = Math.min(step, 0)
    const ceiling = Math.max(r.initialRate, r.bottleneckRate * CEILING_OVER_BOTTLENECK)
    return Math.min(ceiling, r.rate * (1 + step))
  }
}
