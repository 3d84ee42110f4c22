/**
 * Congestion control of one peer's path, run by the side that asks for slices: it sees every
 * slice arrive and every round trip, so it measures the path and tells the sender the rate to
 * pace at (the request's `pace`), and how many slices may be asked for ahead.
 *
 * Pure: fed arrivals, losses, round trips and time; no clock, no I/O.
 *
 * Two characters, chosen by the download's priority:
 * - `focused` measures the bottleneck rate and the minimum round trip as BBR does: pace at the
 *   highest delivery rate seen lately, probe a quarter above it one round in eight and drain a
 *   quarter below the next, so the queue stays near empty yet a fair share is held against TCP.
 *   It starts by doubling each round until the delivery rate stops growing.
 * - `background` keeps the queueing delay it adds near a target, as LEDBAT does: it takes an
 *   idle link, and backs off to a trickle when other traffic fills the queue.
 */

export type Character = 'focused' | 'background'

/** Rates are in slices per second. */
export const INITIAL_RATE = 2_000
/** Never asked below this (45 KB/s of file bytes): a trickle that still measures the path. */
export const MIN_RATE = 100
export const MAX_RATE = 1_000_000
/** A round: the interval over which a delivery rate is sampled. At least this long, whatever the round trip. */
export const MIN_ROUND_MS = 25
/** Shorter while starting: a fast path is found in a few dozen milliseconds. */
export const MIN_STARTUP_ROUND_MS = 10
export const MAX_ROUND_MS = 250
/** The bottleneck rate is the highest delivery rate of this many rounds. */
export const BANDWIDTH_ROUNDS = 10
/**
 * The minimum round trip is kept this long before a higher one may replace it: long, so that
 * a queue another flow keeps full is not mistaken for the path's own delay.
 */
export const MIN_RTT_WINDOW_MS = 30_000
/** Startup ends when three rounds in a row grew the delivery rate by less than this. */
const STARTUP_GROWTH = 1.25
/** 2/ln 2, as BBR: the rate doubles each round once deliveries follow it. */
const STARTUP_GAIN = 2.89
const DRAIN_GAIN = 0.5
const MAX_DRAIN_ROUNDS = 8
const STEADY_ROUNDS_AFTER_LOSS = 16
/** One round in eight probes above the bottleneck rate, the next drains what it queued. */
const CYCLE_GAINS = [1.25, 0.75, 1, 1, 1, 1, 1, 1]
/** Loss is judged over this many rounds (a drained request reports its losses at once). */
const LOSS_ROUNDS = 4
/** More than this lost over those rounds is congestion: the estimate is lowered. */
const LOSS_THRESHOLD = 0.03
const LOSS_BACKOFF = 0.85
/** Below this queueing delay the path shows no queue: a focused download keeps probing upward. */
const NO_QUEUE_MS = 3
/**
 * Queueing delay a background download aims to add at most, and how hard it steers toward it.
 * On a path whose queue never grows that long (a small router buffer), it aims at half the
 * largest queueing delay seen lately, and never below BACKGROUND_MIN_TARGET_MS.
 */
export const BACKGROUND_TARGET_DELAY_MS = 25
const BACKGROUND_MIN_TARGET_MS = 2
const BACKGROUND_GAIN = 0.1
/** The largest queueing delay seen fades by this factor a round. */
const MAX_QUEUE_FADE = 0.995
/** Slices that may always be asked for ahead, and the time's worth of the pace beyond the round trip. */
export const MIN_WINDOW = 64
const WINDOW_HEADROOM_MS = 60

type Phase = 'startup' | 'drain' | 'cruise'

export class RateControl {
  private phase: Phase = 'startup'
  private rate: number
  /** Delivery rates of recent rounds, newest last. */
  private readonly samples: number[] = []
  private roundStartMs = -1
  private roundDelivered = 0
  private roundLost = 0
  private roundMinRttMs = Infinity
  /** Delivered and lost slices of recent rounds, newest last. */
  private readonly recent: Array<{ delivered: number, lost: number }> = []
  private cycle = 0
  private plateauRounds = 0
  private drainRounds = 0
  /** Rounds left in which a path without a queue is probed only one round in eight. */
  private steadyRounds = 0
  private startupBest = 0
  private minRttMs = Infinity
  private minRttAtMs = -Infinity
  /** Queueing delay of the last round that had a round trip, ms. */
  private queueingDelayMs = 0
  /** The largest queueing delay seen lately, fading (the size of the path's queue, for a background target). */
  private maxQueueingDelayMs = 0

  constructor (public character: Character = 'focused', private readonly initialRate = INITIAL_RATE) {
    this.rate = initialRate
  }

  /** `n` slices arrived. */
  onDelivered (n: number, tMs: number): void {
    this.roundDelivered += n
    this.advance(tMs)
  }

  /** `n` slices asked for never came. */
  onLost (n: number, tMs: number): void {
    this.roundLost += n
    this.advance(tMs)
  }

  /** A request's round trip: sent to reply received. */
  onRtt (rttMs: number, tMs: number): void {
    if (rttMs < this.minRttMs || tMs - this.minRttAtMs > MIN_RTT_WINDOW_MS) {
      this.minRttMs = rttMs
      this.minRttAtMs = tMs
    }
    if (rttMs < this.roundMinRttMs) this.roundMinRttMs = rttMs
    this.advance(tMs)
  }

  /** The rate to ask the sender to pace at, slices per second. */
  get paceRate (): number {
    return Math.round(this.rate)
  }

  /** Slices that may be asked for and not yet arrived: the rate over a round trip and some headroom. */
  get window (): number {
    const rtt = Number.isFinite(this.minRttMs) ? this.minRttMs : 100
    return Math.max(MIN_WINDOW, Math.ceil((this.rate * (2 * rtt + WINDOW_HEADROOM_MS)) / 1000))
  }

  /** The bottleneck rate estimate (slices per second), 0 before the first round. */
  get bottleneckRate (): number {
    return this.samples.length === 0 ? 0 : Math.max(...this.samples)
  }

  get minRtt (): number | null {
    return Number.isFinite(this.minRttMs) ? this.minRttMs : null
  }

  get queueingDelay (): number {
    return this.queueingDelayMs
  }

  get state (): Phase {
    return this.phase
  }

  private get roundMs (): number {
    const rtt = Number.isFinite(this.minRttMs) ? this.minRttMs : 0
    return Math.min(MAX_ROUND_MS, Math.max(this.phase === 'startup' ? MIN_STARTUP_ROUND_MS : MIN_ROUND_MS, rtt))
  }

  /** Closes the round when it has lasted long enough, and steers from what it measured. */
  advance (tMs: number): void {
    if (this.roundStartMs < 0) { this.roundStartMs = tMs; return }
    const elapsed = tMs - this.roundStartMs
    if (elapsed < this.roundMs) return
    const delivered = this.roundDelivered
    const lost = this.roundLost
    const deliveryRate = (delivered * 1000) / elapsed
    if (Number.isFinite(this.roundMinRttMs) && Number.isFinite(this.minRttMs)) this.queueingDelayMs = Math.max(0, this.roundMinRttMs - this.minRttMs)
    this.roundStartMs = tMs
    this.roundDelivered = 0
    this.roundLost = 0
    this.roundMinRttMs = Infinity
    // A round in which nothing was asked for says nothing about the path.
    if (delivered + lost === 0) return
    this.samples.push(deliveryRate)
    if (this.samples.length > BANDWIDTH_ROUNDS) this.samples.shift()
    this.recent.push({ delivered, lost })
    if (this.recent.length > LOSS_ROUNDS) this.recent.shift()
    const recentLost = this.recent.reduce((n, r) => n + r.lost, 0)
    const lossy = recentLost / (recentLost + this.recent.reduce((n, r) => n + r.delivered, 0)) > LOSS_THRESHOLD
    // Losses answered once: the next rounds judge what happens after the response.
    if (lossy) this.recent.length = 0
    if (this.character === 'background') this.steerBackground(lossy, lost > 0)
    else this.steerFocused(lossy)
    this.rate = Math.min(MAX_RATE, Math.max(MIN_RATE, this.rate))
  }

  /**
   * Losses count as congestion only while the path shows a queue: losses on a path without
   * one are noise (a radio link, a lossy hop), and backing off for them would starve the
   * transfer for nothing.
   */
  private steerFocused (lossy: boolean): void {
    const bandwidth = this.bottleneckRate
    const queued = this.queueingDelayMs >= NO_QUEUE_MS
    const congested = lossy && queued
    if (this.phase === 'startup') {
      if (bandwidth >= this.startupBest * STARTUP_GROWTH) {
        this.startupBest = bandwidth
        this.plateauRounds = 0
      } else if (++this.plateauRounds >= 3) {
        this.phase = 'drain'
      }
      if (congested) this.phase = 'drain'
      this.rate = this.phase === 'startup' ? Math.max(this.initialRate, bandwidth * STARTUP_GAIN) : bandwidth * DRAIN_GAIN
      return
    }
    if (this.phase === 'drain') {
      // Startup left a queue: drain it before cruising, but not forever (another flow may hold it).
      if (queued && ++this.drainRounds < MAX_DRAIN_ROUNDS) { this.rate = bandwidth * DRAIN_GAIN; return }
      this.phase = 'cruise'
    }
    this.cycle = (this.cycle + 1) % CYCLE_GAINS.length
    let gain = CYCLE_GAINS[this.cycle]!
    // Losses without a queue to show: a queue too small to see, or noise. Either way probing
    // goes back to one round in eight for a while.
    if (lossy && !queued) this.steadyRounds = STEADY_ROUNDS_AFTER_LOSS
    // A queue and losses: the bottleneck is full; below what it delivers, to drain it.
    if (congested) gain = Math.min(gain, LOSS_BACKOFF)
    // No queue and no loss lately: the path has room, so probe every round.
    else if (!queued && this.steadyRounds === 0) gain = Math.max(gain, CYCLE_GAINS[0]!)
    if (this.steadyRounds > 0) this.steadyRounds--
    this.rate = bandwidth * gain
  }

  /**
   * Any loss while the queue is past half the target halves the rate, as LEDBAT does: a
   * download that starts while another flow keeps the queue full takes that queue for the
   * path's own delay, and only its losses tell it otherwise. Losses with no queue to show are
   * noise, unless there are many.
   */
  private steerBackground (lossy: boolean, anyLoss: boolean): void {
    this.maxQueueingDelayMs = Math.max(this.maxQueueingDelayMs * MAX_QUEUE_FADE, this.queueingDelayMs)
    const target = Math.max(BACKGROUND_MIN_TARGET_MS, Math.min(BACKGROUND_TARGET_DELAY_MS, this.maxQueueingDelayMs / 2))
    if (lossy || (anyLoss && this.queueingDelayMs >= target / 2)) {
      this.rate *= 0.5
      return
    }
    const off = (target - this.queueingDelayMs) / target
    const step = Math.max(-0.5, Math.min(BACKGROUND_GAIN, BACKGROUND_GAIN * off))
    // Never more than a probe above what the path delivered lately.
    const ceiling = Math.max(INITIAL_RATE, this.bottleneckRate * 1.5)
    this.rate = Math.min(ceiling, this.rate * (1 + step))
  }
}
