/**
 * When a focused download's startup has found the bottleneck. Pure: fed each closed startup
 * round. Startup doubles the pace each round (see STARTUP_GAIN) until the delivery rate stops
 * growing, a queue builds, or, on a long path, a round falls short of the pace before it.
 */

/** 2/ln 2, as BBR: the rate doubles each round once deliveries follow it. */
export const STARTUP_GAIN = 2.89
/** Startup ends when three rounds in a row grew the delivery rate by less than this. */
const STARTUP_GROWTH = 1.25
const STARTUP_PLATEAU_ROUNDS = 3
/** A path this long (ms) or longer, and a startup round delivering less than this part of the round before's pace: see fellShort. */
const LONG_PATH_MS = 50
const STARTUP_SHORTFALL = 0.8
/**
 * Two startup rounds that did not grow the delivery rate and saw this much queueing delay end
 * startup, as HyStart does: the bottleneck is reached, and each round more at startup's pace
 * would only fill its queue (on a long path, past its end). Not less: a simulated path's
 * round trips jitter by a tick of 5 ms. Not one round: a receiver that stalls for a moment
 * (a disk flush) shows as much on a fast path.
 */
const STARTUP_QUEUE_MS = 8
const STARTUP_QUEUE_ROUNDS = 2
/**
 * A round that did not grow while the path shows no queue and no loss counts this much of
 * one: a pace raised reaches the sender only with the next requests, a round trip and a tick
 * later, so short rounds on a fast path do not grow yet; a bottleneck reached would show a queue.
 */
const QUIET_PLATEAU_WEIGHT = 0.5

/** What a closed startup round showed, as the judgement needs it. Rates are in slices per second. */
export interface StartupRound {
  bottleneckRate: number
  delivered: number
  elapsedMs: number
  anyLoss: boolean
  queueingDelayMs: number
  /** The path shows a queue (beyond the noise of its round trips). */
  queued: boolean
  minRttMs: number
  /** The pace of the round that closed. */
  pace: number
}

export class Startup {
  /** The highest estimate that grew by STARTUP_GROWTH. */
  private best = 0
  private plateauRounds = 0
  /** Of those, the rounds that showed STARTUP_QUEUE_MS of queue. */
  private queuedPlateauRounds = 0
  /** The pace of the round before the one that closed. */
  private previousPace = 0

  /** True when the round shows the bottleneck reached. */
  onRound (r: StartupRound): boolean {
    let reached = false
    if (r.bottleneckRate >= this.best * STARTUP_GROWTH) {
      this.best = r.bottleneckRate
      this.plateauRounds = 0
      this.queuedPlateauRounds = 0
    } else {
      this.plateauRounds += r.queued || r.anyLoss ? 1 : QUIET_PLATEAU_WEIGHT
      if (r.queueingDelayMs >= STARTUP_QUEUE_MS) this.queuedPlateauRounds++
      reached = this.plateauRounds >= STARTUP_PLATEAU_ROUNDS || this.queuedPlateauRounds >= STARTUP_QUEUE_ROUNDS || this.fellShort(r)
    }
    this.previousPace = r.pace
    return reached
  }

  /**
   * On a long path (a round trip many ticks long, so a pace asked for is in force at the sender
   * half a round trip later, and what it sends arrives in the next round), a startup round
   * that delivered well short of the round before's pace met the bottleneck: more rounds of
   * doubling would only fill its queue.
   */
  private fellShort (r: StartupRound): boolean {
    return r.minRttMs >= LONG_PATH_MS && (r.delivered * 1000) / r.elapsedMs < STARTUP_SHORTFALL * this.previousPace
  }
}
