/**
 * A focused download's loss cap. Losses from a queue near full mean another flow fills it
 * (the download's own window keeps its queue short): capped as TCP would be, the pace leaves
 * that flow its share. Pure: fed each closed round and time.
 */

/** On such a loss the pace is capped at this part of the delivery rate, at most once a loss episode. */
export const LOSS_CAP_CUT = 0.7
/**
 * The cap then grows as TCP's window would (one slice per round trip, each round trip), and
 * never slower than this part of the cut level a second, so that one loss on a long path does
 * not cost it for half a minute.
 */
const LOSS_CAP_MIN_REGROWTH = 0.1
/**
 * While no queue shows, the cap grows this much a round: the path has room. Not within
 * LOSS_CAP_HOLD_MS of a cut: a TCP flow that lost too drains the queue by backing off and
 * regrows for seconds, so an empty queue then shows its pause, not room.
 */
const LOSS_CAP_FREE_REGROWTH = 1.1
const LOSS_CAP_HOLD_MS = 500
/** For this long after a loss from a full queue, the queue is taken for the flow that filled it. */
const BUFFER_FILLED_MS = 10_000
/** Each round whose queue was not full weighs this much in the path's own loss rate. */
const NOISE_LOSS_WEIGHT = 1 / 32

/** What a closed round showed, as the cap needs it. */
export interface CapRound {
  delivered: number
  lost: number
  elapsedMs: number
  tMs: number
  /** The queue was near full, or the last rounds' losses, heavy and clustered, say it overflowed (another flow's, if losses come with it). */
  full: boolean
  /** The queue was within the noise of the round trips. */
  queueLooksEmpty: boolean
  srttMs: number
  /** Losses found this long after a cut (or after startup ended) belong to its episode. */
  episodeMs: number
  /** The delivery rate lately, and the bottleneck rate estimate, slices per second. */
  deliveryRate: number
  bottleneckRate: number
}

export class LossCap {
  /** The pace not to pass; Infinity when none. */
  value = Infinity
  private beforeCut = Infinity
  private cutLevel = 0
  private cutAtMs = -Infinity
  /**
   * When a round last lost more than the path's noise while the queue was near full: another
   * flow fills the buffer (-Infinity: never, or the loss proved spurious).
   */
  private congestedAtMs = -Infinity
  /** When the last loss episode was answered: by a cut, or by the drain that ended startup. */
  private episodeAtMs = -Infinity
  /** When startup ended: the losses of its own overshoot, found over the next rounds, say nothing of another flow. */
  private startupEndedAtMs = -Infinity
  /** The part of slices lost in rounds whose queue was not full, averaged: the path's own loss. */
  private noiseLoss = 0

  /** Whether a loss lately showed another flow filling the buffer: the queue is that flow's. */
  bufferFilledLately (tMs: number): boolean {
    return tMs - this.congestedAtMs <= BUFFER_FILLED_MS
  }

  /** Startup ended: the losses of its overshoot, found over the next round trips, are the drain's to answer. */
  startupEnded (tMs: number): void {
    this.episodeAtMs = tMs
    this.startupEndedAtMs = tMs
  }

  /**
   * A slice reported lost came after all: if the cap was cut for it lately (within `recentMs`),
   * the cut answered no congestion (a pause behind another flow's burst), so it is taken back.
   */
  onSpuriousLoss (tMs: number, recentMs: number): void {
    if (tMs - this.congestedAtMs <= recentMs) this.congestedAtMs = -Infinity
    if (tMs - this.cutAtMs > recentMs) return
    this.value = Math.max(this.value, this.beforeCut)
    if (this.episodeAtMs === this.cutAtMs) this.episodeAtMs = -Infinity
    this.cutAtMs = -Infinity
  }

  onRound (r: CapRound): void {
    const srtt = Math.max(1, r.srttMs)
    // Losses a lossy path shows anyway (those while the queue is not full: the path's own
    // noise) are no sign of another flow: only more than that, by three standard deviations.
    const noise = this.noiseLoss * (r.delivered + r.lost)
    const beyondNoise = r.lost > noise + 3 * Math.sqrt(noise)
    if (!r.full) this.noiseLoss += NOISE_LOSS_WEIGHT * (r.lost / (r.delivered + r.lost) - this.noiseLoss)
    if (beyondNoise && r.full && r.tMs - this.startupEndedAtMs >= r.episodeMs) this.congestedAtMs = r.tMs
    if (beyondNoise && r.full && r.tMs - this.episodeAtMs >= r.episodeMs) {
      this.beforeCut = this.value
      this.value = Math.min(this.value, r.deliveryRate) * LOSS_CAP_CUT
      this.cutLevel = this.value
      this.cutAtMs = r.tMs
      this.episodeAtMs = r.tMs
      return
    }
    if (!Number.isFinite(this.value)) return
    if (r.queueLooksEmpty && r.tMs - this.cutAtMs > LOSS_CAP_HOLD_MS) this.value *= LOSS_CAP_FREE_REGROWTH
    else this.value += Math.max((r.elapsedMs * 1000) / (srtt * srtt), (LOSS_CAP_MIN_REGROWTH * this.cutLevel * r.elapsedMs) / 1000)
    if (this.value > 2 * r.bottleneckRate) this.value = Infinity
  }
}
