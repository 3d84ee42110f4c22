/**
 * A focused download's standing-queue cap. Pure: fed each cruising round.
 *
 * A queue that outlasts a whole probing cycle, drain round and all, with no loss to say that
 * another flow fills the buffer, and another flow there (see MinRtt), is this download's pace
 * held above its share against a flow whose window bounds it: BBR sizes its window by a
 * round trip it measured with the queue empty, so every millisecond of queue kept standing
 * takes from its rate. Such a flow never fills the queue and never loses, so the loss cap
 * never answers it; this cap does, by pacing below what was delivered until the queue
 * empties now and then, and growing back while it does.
 */

/**
 * A queue this long (ms, or LAG_RTT_FRACTION of the minimum round trip if more) at its lowest
 * over a cycle stands. Not shorter: on a long path a pace asked for reaches the sender half a
 * round trip late, so probes overlap their drains and leave a few rounds' steps queued.
 */
const STANDING_QUEUE_MS = 5
const LAG_RTT_FRACTION = 0.5
/**
 * A standing queue caps the pace below what was delivered, once a cycle, by as much as drains
 * the queue's lowest over the next cycle, and at most to this part, so that no one cut leaves
 * the link idle.
 */
const STANDING_MAX_CUT = 0.85
/** A cycle whose queue emptied (or with nobody found to yield to) lets the cap grow this much. */
const STANDING_REGROWTH = 1.1

/** What a cruising round showed, as the cap needs it. */
export interface StandingRound {
  /** The queue this download holds: the round trip over the one while it kept quiet (see MinRtt). */
  ownQueueMs: number
  minRttMs: number
  /** How long the round lasted. */
  elapsedMs: number
  /** The delivery rate lately, and the bottleneck rate estimate, slices per second. */
  deliveryRate: number
  bottleneckRate: number
  /** The latest measure of the quiet round trip found another flow to yield to (see MinRtt). */
  othersFound: boolean
  /** A loss lately showed another flow filling the buffer (see LossCap). */
  bufferFilled: boolean
}

export class StandingQueue {
  /** The pace not to pass; Infinity when none. */
  value = Infinity
  private rounds = 0
  private lowestMs = Infinity
  private cycleMs = 0

  /** `roundsPerCycle`: the rounds judged together, a probing cycle's, so that its drain round is among them. */
  constructor (private readonly roundsPerCycle: number) {}

  /** True when the round closed a cycle whose queue stood. */
  onRound (r: StandingRound): boolean {
    this.lowestMs = Math.min(this.lowestMs, r.ownQueueMs)
    this.cycleMs += r.elapsedMs
    if (++this.rounds < this.roundsPerCycle) return false
    const standing = !r.bufferFilled && this.lowestMs >= Math.max(STANDING_QUEUE_MS, LAG_RTT_FRACTION * r.minRttMs)
    const cut = Math.max(STANDING_MAX_CUT, 1 - this.lowestMs / this.cycleMs)
    this.rounds = 0
    this.lowestMs = Infinity
    this.cycleMs = 0
    // Alone, the queue that stands is the estimate's own excess: drained by the probe cycle in
    // time, and not worth a cut that would leave the link idle.
    if (standing && r.othersFound) {
      this.value = Math.min(this.value, r.deliveryRate) * cut
    } else if (Number.isFinite(this.value)) {
      this.value *= STANDING_REGROWTH
      if (this.value > 2 * r.bottleneckRate) this.value = Infinity
    }
    return standing
  }
}
