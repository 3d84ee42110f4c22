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
 *   quarter below the next, so the queue stays near empty; on a queue too shallow for such a
 *   probe, its losses teach a smaller step. It starts by doubling each round until the
 *   delivery rate stops growing or a queue builds (see Startup). A loss beyond the path's
 *   own loss rate while the queue is near full, or while losses come heavy and clustered
 *   (see LossDispersion), means another flow fills it: it caps the pace at 0.7 of what was
 *   delivered, and the cap grows back as TCP's window does, so a TCP flow beside it keeps
 *   its share (see LossCap). A queue of its own that stands through a whole probing cycle,
 *   with no such loss, has the round trip measured again, pacing low for a moment (see
 *   MinRtt); if that shows another flow, the queue is held against a flow whose window
 *   bounds it (BBR's), and the pace is capped below what was delivered until that queue
 *   empties now and then (see StandingQueue). With no such loss lately, the pace is
 *   also held to what a window of two minimum round trips keeps in flight at the round trip
 *   seen, with less headroom once another flow was found and never below a floor window, so
 *   the queue it holds stays short (see inflightCap). Behind a receiver that cannot
 *   keep up (its event loop saturated for a spell, with no loss: loopback, a fast LAN), the
 *   delay is that receiver's own backlog, not a path's queue, and is not read as one; the
 *   window bounds that backlog (see LoopLoad).
 * - `background` keeps the queueing delay it adds near a target, as LEDBAT does: it takes an
 *   idle link, growing by time and without a startup, and backs off to a trickle when other
 *   traffic fills the queue.
 */

import { LossCap } from './loss-cap.js'
import { LossDispersion } from './loss-dispersion.js'
import { MinRtt } from './min-rtt.js'
import { StandingQueue } from './standing-queue.js'
import { INFLIGHT_HEADROOM_BESIDE_MS, INFLIGHT_HEADROOM_MS, inflightCap } from './inflight-cap.js'
import { LoopLoad } from './loop-load.js'
import { ProbeStep } from './probe-step.js'
import { spanMs, spanRate } from './delivery-spans.js'
import type { Span } from './delivery-spans.js'
import { STARTUP_GAIN, Startup } from './startup.js'
import { BackgroundSteering } from './background-steering.js'

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
 * After startup a delivery rate is measured over the latest rounds that span this long, not
 * over one short round: the receiver reads its socket in batches, so one 25 ms round's count
 * swings by a batch, and the highest of ten such rounds sat well above the link itself. Not
 * longer: a probe's round diluted by the rounds around it would lift the estimate by only a
 * part of what the probe found.
 */
export const SAMPLE_MS = 3 * MIN_ROUND_MS
const DRAIN_GAIN = 0.5
const MAX_DRAIN_ROUNDS = 8
/**
 * A drain round that delivered less than this part of the bottleneck rate left the link idle
 * at times: the queue is gone, though no round trip may have shown it (the requests that
 * would measure one wait for the window) and the sender may still hold slices asked for at
 * startup's pace (which count as in flight).
 */
const DRAIN_IDLE_FRACTION = 0.75
const STEADY_ROUNDS_AFTER_LOSS = 16
/** While the minimum round trip is measured again (see MinRtt), the pace is this part of the bottleneck rate. */
const PROBE_RTT_GAIN = 0.25
/**
 * One round in eight probes above the bottleneck rate (+1), the next drains what it queued
 * (-1), each by the probe's step (see ProbeStep).
 */
const CYCLE = [1, -1, 0, 0, 0, 0, 0, 0]
/** Loss is judged over this many rounds (a drained request reports its losses at once). */
const LOSS_ROUNDS = 4
/** More than this lost over those rounds is congestion: the estimate is lowered. */
const LOSS_THRESHOLD = 0.03
const LOSS_BACKOFF = 0.85
/** Below this queueing delay the path shows no queue: a focused download keeps probing upward. */
const NO_QUEUE_MS = 3
/**
 * The queue is near full (for the loss cap, see LossCap) at this part of the deepest queue
 * seen lately, which fades slowly: a path's buffer seldom changes.
 */
const FULL_QUEUE_FRACTION = 0.5
const QUEUE_DEPTH_FADE = 0.999
/** Below this part of the minimum round trip (and NO_QUEUE_MS), a queue is noise in the round trips. */
const NO_QUEUE_RTT_FRACTION = 0.1
/** Slices that may always be asked for ahead. */
export const MIN_WINDOW = 64
/**
 * The time's worth of the pace asked for beyond two round trips. Short once cruising: what the
 * window allows beyond the path's own round trip sits in the bottleneck's queue, and a deep
 * queue held that full leaves a TCP flow beside it only what is left. Longer while starting,
 * when the round trip and the rate are still being found.
 */
const WINDOW_HEADROOM_MS = 20
const STARTUP_WINDOW_HEADROOM_MS = 60

type Phase = 'startup' | 'drain' | 'cruise' | 'probe-rtt'

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
  /** Slices delivered and time taken by the rounds of the latest SAMPLE_MS, newest last. */
  private readonly spans: Span[] = []
  private cycle = 0
  private readonly startup = new Startup()
  private drainRounds = 0
  /** Rounds left in which a path without a queue is probed only one round in eight. */
  private steadyRounds = 0
  private readonly minRttFilter = new MinRtt()
  /** Queueing delay of the last round that had a round trip, ms. */
  private queueingDelayMs = 0
  /** The same, over the round trip while this download keeps quiet (see MinRtt.baseline): the queue it holds itself. */
  private ownQueueMs = 0
  /** The largest queueing delay seen lately, fading slowly: how deep the path's queue gets when full. */
  private queueDepthMs = 0
  /** Smoothed round trip and its variation, ms, as TCP's. */
  private srttMs = -1
  private rttVarMs = 0
  /** The pace a focused download may not pass since a loss showed a full queue. */
  private readonly lossCap = new LossCap()
  /** Whether the losses of recent cruising rounds came clustered (a full queue's) or spread (a lossy hop's). */
  private readonly lossDispersion = new LossDispersion()
  /** The pace a focused download may not pass while a queue it holds stands. */
  private readonly standingQueue = new StandingQueue(CYCLE.length)
  /** Whether the round under way is paced above the estimate. */
  private probing = false
  /** How far above the estimate the next probe goes (see ProbeStep). */
  private readonly probeStep = new ProbeStep()
  /** Whether this node's event loop was saturated over the round (see LoopLoad). */
  private readonly loopLoad = new LoopLoad()
  /** A background download's pace, from the queue it sees (see BackgroundSteering). */
  private readonly backgroundSteering = new BackgroundSteering()

  constructor (public character: Character = 'focused', private readonly initialRate = INITIAL_RATE) {
    this.rate = initialRate
  }

  /** `n` slices arrived; `inFlight` are still asked for and on their way (when known). */
  onDelivered (n: number, tMs: number, inFlight?: number): void {
    this.roundDelivered += n
    if (this.phase === 'drain' && inFlight !== undefined && inFlight <= (this.bottleneckRate * this.minRttMs) / 1000) this.endDrain()
    this.advance(tMs)
  }

  /** `n` slices asked for never came. */
  onLost (n: number, tMs: number): void {
    this.roundLost += n
    this.advance(tMs)
  }

  /** A request's round trip: sent to reply received. */
  onRtt (rttMs: number, tMs: number): void {
    this.minRttFilter.onSample(rttMs, tMs)
    if (rttMs < this.roundMinRttMs) this.roundMinRttMs = rttMs
    if (this.srttMs < 0) {
      this.srttMs = rttMs
      this.rttVarMs = rttMs / 2
    } else {
      this.rttVarMs = 0.75 * this.rttVarMs + 0.25 * Math.abs(this.srttMs - rttMs)
      this.srttMs = 0.875 * this.srttMs + 0.125 * rttMs
    }
    this.advance(tMs)
  }

  /** This node's event loop was busy `utilization` of the last `ms` milliseconds. */
  onLoopLoad (utilization: number, ms: number): void {
    this.loopLoad.onSample(utilization, ms)
  }

  /** A slice reported lost came after all: a loss cap cut for it lately is taken back. */
  onSpuriousLoss (tMs: number): void {
    this.lossCap.onSpuriousLoss(tMs, 4 * Math.max(this.srttMs, MAX_ROUND_MS))
  }

  /** The rate to ask the sender to pace at, slices per second. */
  get paceRate (): number {
    return Math.round(this.rate)
  }

  /** Slices that may be asked for and not yet arrived: the rate over a round trip and some headroom. */
  get window (): number {
    const rtt = Number.isFinite(this.minRttMs) ? this.minRttMs : 100
    const headroom = this.phase === 'startup' ? STARTUP_WINDOW_HEADROOM_MS : WINDOW_HEADROOM_MS
    return Math.max(MIN_WINDOW, Math.ceil((this.rate * (2 * rtt + headroom)) / 1000))
  }

  /** The bottleneck rate estimate (slices per second), 0 before the first round. */
  get bottleneckRate (): number {
    return this.samples.length === 0 ? 0 : Math.max(...this.samples)
  }

  /** The round trip smoothed as TCP does, and its variation (for timeouts); null before the first. */
  get smoothedRtt (): number | null {
    return this.srttMs < 0 ? null : this.srttMs
  }

  get rttVariation (): number {
    return this.rttVarMs
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

  private get minRttMs (): number {
    return this.minRttFilter.value
  }

  /** Whether the queue is within the noise of the round trips. */
  private get queueLooksEmpty (): boolean {
    return this.queueingDelayMs < Math.max(NO_QUEUE_MS, NO_QUEUE_RTT_FRACTION * this.minRttMs)
  }

  /** Losses of one overflow are found over this long: two round trips and the rounds losses are judged over. */
  private get lossEpisodeMs (): number {
    return 2 * Math.max(1, this.srttMs) + LOSS_ROUNDS * this.roundMs
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
    // A focused download behind its own saturated receiver: the delay is that receiver's
    // backlog, no path's queue (see LoopLoad).
    const receiverBound = this.loopLoad.closeRound(lost > 0) && this.character === 'focused'
    if (receiverBound) {
      this.queueingDelayMs = 0
      this.ownQueueMs = 0
    } else if (Number.isFinite(this.roundMinRttMs) && Number.isFinite(this.minRttMs)) {
      this.queueingDelayMs = Math.max(0, this.roundMinRttMs - this.minRttMs)
      this.ownQueueMs = Math.max(0, this.roundMinRttMs - this.minRttFilter.baseline(tMs))
    }
    this.roundStartMs = tMs
    this.roundDelivered = 0
    this.roundLost = 0
    this.roundMinRttMs = Infinity
    // A round in which nothing was asked for says nothing about the path.
    if (delivered + lost === 0) return
    // The path had no room for the last probe: back to probing one round in eight for a while.
    if (this.probeStep.onRound(delivered, lost, this.probing)) this.steadyRounds = STEADY_ROUNDS_AFTER_LOSS
    this.spans.push({ delivered, ms: elapsed })
    while (this.spans.length > 1 && spanMs(this.spans) - this.spans[0]!.ms >= SAMPLE_MS) this.spans.shift()
    // The delivery rate of the latest SAMPLE_MS: the estimate's sample after startup, and what
    // the drain and the loss cap judge by.
    const recentRate = spanRate(this.spans)
    // A probe of the round trip paces low on purpose: its rounds say nothing of the bottleneck.
    if (this.phase !== 'probe-rtt') this.samples.push(this.phase === 'startup' ? deliveryRate : recentRate)
    if (this.samples.length > BANDWIDTH_ROUNDS) this.samples.shift()
    this.recent.push({ delivered, lost })
    if (this.recent.length > LOSS_ROUNDS) this.recent.shift()
    const recentLost = this.recent.reduce((n, r) => n + r.lost, 0)
    const lossy = recentLost / (recentLost + this.recent.reduce((n, r) => n + r.delivered, 0)) > LOSS_THRESHOLD
    // Losses answered once: the next rounds judge what happens after the response.
    if (lossy) this.recent.length = 0
    this.queueDepthMs = Math.max(this.queueDepthMs * QUEUE_DEPTH_FADE, this.queueingDelayMs)
    if (this.character === 'background') {
      // No startup: its rounds are a cruising download's, and it grows by time, not by doubling.
      this.phase = 'cruise'
      this.rate = this.backgroundSteering.onRound({
        rate: this.rate, lossy, anyLoss: lost > 0, elapsedMs: elapsed, queueingDelayMs: this.queueingDelayMs, minRttMs: this.minRtt, bottleneckRate: this.bottleneckRate, initialRate: INITIAL_RATE, episodeMs: this.lossEpisodeMs
      })
    } else {
      this.steerFocused(lossy, delivered, lost, recentRate, elapsed, tMs, receiverBound)
    }
    this.rate = Math.min(MAX_RATE, Math.max(MIN_RATE, this.rate))
  }

  /**
   * Losses count as congestion only while the path shows a queue: losses on a path without
   * one are noise (a radio link, a lossy hop), and backing off for them would starve the
   * transfer for nothing.
   */
  private steerFocused (lossy: boolean, delivered: number, lost: number, recentRate: number, elapsedMs: number, tMs: number, receiverBound: boolean): void {
    const anyLoss = lost > 0
    const bandwidth = this.bottleneckRate
    const queued = this.queueingDelayMs >= NO_QUEUE_MS
    const congested = lossy && queued
    if (this.phase === 'startup') {
      const reached = this.startup.onRound({
        bottleneckRate: bandwidth, delivered, elapsedMs, anyLoss, queueingDelayMs: this.queueingDelayMs, queued, minRttMs: this.minRttMs, pace: this.rate
      })
      // A receiver that cannot keep up is a bottleneck reached, though no queue is read.
      if (reached || congested || receiverBound) this.phase = 'drain'
      if (this.phase === 'drain') this.lossCap.startupEnded(tMs)
      this.rate = this.phase === 'startup' ? Math.max(this.initialRate, bandwidth * STARTUP_GAIN) : bandwidth * DRAIN_GAIN
      return
    }
    if (this.phase === 'drain') {
      // Startup left a queue: drain it before cruising, but not forever (another flow may hold it).
      const linkIdled = recentRate < DRAIN_IDLE_FRACTION * bandwidth
      if (!this.queueLooksEmpty && !linkIdled && ++this.drainRounds < MAX_DRAIN_ROUNDS) { this.rate = bandwidth * DRAIN_GAIN; return }
      this.endDrain()
    }
    if (this.phase === 'probe-rtt') {
      if (!this.minRttFilter.endProbe(tMs)) { this.rate = bandwidth * PROBE_RTT_GAIN; return }
      // The queue is drained.
      this.startCruising()
    }
    this.cycle = (this.cycle + 1) % CYCLE.length
    let gain = 1 + CYCLE[this.cycle]! * this.probeStep.value
    // Losses without a queue to show: a queue too small to see, or noise. Either way probing
    // goes back to one round in eight for a while.
    if (lossy && !queued) this.steadyRounds = STEADY_ROUNDS_AFTER_LOSS
    // A queue and losses: the bottleneck is full; below what it delivers, to drain it.
    if (congested) gain = Math.min(gain, LOSS_BACKOFF)
    // No queue and no loss lately: the path has room, so probe every round. Each such probe
    // takes the cycle's probing place, so that the round after drains what it queued when the
    // queue it made shows (else that queue would stand for good).
    else if (!queued && this.steadyRounds === 0) {
      gain = Math.max(gain, 1 + this.probeStep.value)
      this.cycle = 0
    }
    if (this.steadyRounds > 0) this.steadyRounds--
    this.lossDispersion.onRound(delivered, lost)
    this.lossCap.onRound({
      delivered, lost, elapsedMs, tMs, srttMs: this.srttMs, deliveryRate: recentRate, bottleneckRate: bandwidth,
      // Losses beyond LOSS_THRESHOLD, clustered as a full queue drops them, fill it whatever
      // the round trips show: a queue of a few ms barely shows through the endpoints' own
      // delays, and the deepest queue seen may be a busy moment of theirs (startup's last
      // rounds read 35 ms on a 50 Mbit/s link whose queue holds 5 ms).
      full: (lossy && this.lossDispersion.clustered) || this.queueingDelayMs >= Math.max(NO_QUEUE_MS, FULL_QUEUE_FRACTION * this.queueDepthMs),
      queueLooksEmpty: this.queueLooksEmpty,
      episodeMs: this.lossEpisodeMs
    })
    const bufferFilled = this.lossCap.bufferFilledLately(tMs)
    const stood = this.standingQueue.onRound({
      ownQueueMs: this.ownQueueMs, minRttMs: this.minRttMs, deliveryRate: recentRate, bottleneckRate: bandwidth,
      elapsedMs, othersFound: this.minRttFilter.othersFound(tMs), bufferFilled
    })
    // A queue stood: look for another flow to yield it to (see MinRtt). Measured against a
    // minimum round trip that a queue inflated, it may also stand higher than it looks.
    if (stood && this.minRttFilter.probeAllowed(tMs)) {
      this.phase = 'probe-rtt'
      this.minRttFilter.startProbe(tMs, this.srttMs)
      this.rate = bandwidth * PROBE_RTT_GAIN
      this.probing = false
      return
    }
    const headroomMs = this.minRttFilter.othersFound(tMs) ? INFLIGHT_HEADROOM_BESIDE_MS : INFLIGHT_HEADROOM_MS
    const inflight = bufferFilled ? Infinity : inflightCap(bandwidth, this.minRttMs, this.queueingDelayMs, headroomMs)
    this.rate = Math.min(bandwidth * gain, this.lossCap.value, this.standingQueue.value, inflight)
    this.probing = this.rate > bandwidth
  }

  /**
   * The queue startup left is gone: no more asked for than the path holds (as BBR's drain
   * ends), a round trip that shows no queue, or a round that left the link idle (see
   * DRAIN_IDLE_FRACTION). Cruising starts at once, at the bottleneck rate: a round more at
   * the drain's pace (or at the probe cycle's) would leave the link idle.
   */
  private endDrain (): void {
    this.startCruising()
    this.rate = Math.max(this.rate, this.bottleneckRate)
  }

  /** After startup's drain or a probe of the round trip: the probe cycle goes on past its own drain round, with no probe's queue to take back. */
  private startCruising (): void {
    this.phase = 'cruise'
    this.cycle = CYCLE.indexOf(-1)
  }
}
