/**
 * How far a focused download's probes step above its bottleneck estimate, and their drains
 * below, learned from what each probe lost. Pure: fed each closed round.
 *
 * A probe's losses are those of its round and the next PROBE_LOSS_ROUNDS (while probing
 * every round, of each such stretch): a drained request reports them a round or two late.
 * A probe that lost more than PROBE_LOSS_FRACTION of them overflowed the queue (a queue too
 * shallow for it), so the next one steps half as far, down to the least; one that lost
 * less lets the next step further, up to the full step.
 */

/** A probe steps a quarter above the estimate at most, and its drain as far below. */
export const MAX_PROBE_STEP = 0.25
const MIN_PROBE_STEP = 0.03
const PROBE_STEP_GROWTH = 1.25
const PROBE_LOSS_ROUNDS = 2
/** Less than this part lost is noise on the path. */
const PROBE_LOSS_FRACTION = 0.02

export class ProbeStep {
  /** How far above the estimate the next probe goes, as a part of it. */
  value = MAX_PROBE_STEP
  /** Rounds until the last probe's losses are all in (0: none waited for), and what those rounds lost and delivered so far. */
  private roundsLeft = 0
  private lost = 0
  private delivered = 0

  /** A round closed (`probed`: it was paced above the estimate). True when a probe's losses are in and it overflowed the queue. */
  onRound (delivered: number, lost: number, probed: boolean): boolean {
    if (this.roundsLeft === 0 && probed) this.roundsLeft = PROBE_LOSS_ROUNDS + 1
    if (this.roundsLeft === 0) return false
    this.lost += lost
    this.delivered += delivered
    if (--this.roundsLeft > 0) return false
    const overflowed = this.lost > PROBE_LOSS_FRACTION * (this.lost + this.delivered)
    this.value = overflowed ? Math.max(MIN_PROBE_STEP, this.value / 2) : Math.min(MAX_PROBE_STEP, this.value * PROBE_STEP_GROWTH)
    this.lost = 0
    this.delivered = 0
    return overflowed
  }
}
