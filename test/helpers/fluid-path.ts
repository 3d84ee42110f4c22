import { RateControl } from '../../src/sync/rate-control.js'
import type { Character } from '../../src/sync/rate-control.js'

export interface PathRun { deliveredRate: number, otherDeliveredRate: number, queueDelayMs: number, lossFraction: number, finalRate: number, estimateAtStartupEnd: number | null }

/**
 * Moments when an endpoint is busy (a batch written, a burst read): every `everyMs`, for
 * `lastingMs`, the round trips read `extraMs` more, with no queue on the path.
 */
export interface EndpointStalls { everyMs: number, lastingMs: number, extraMs: number }

function stallDelayMs (stalls: EndpointStalls | undefined, t: number): number {
  return stalls !== undefined && t % stalls.everyMs < stalls.lastingMs ? stalls.extraMs : 0
}

/**
 * The window flow's own probe of the round trip, as BBR's ProbeRTT: every `everyMs` (BBR: 10 s)
 * its window falls to `window` for `lastingMs` (BBR: 4 packets for 200 ms), and the queue it
 * kept empties.
 */
export interface OtherProbeRtt { everyMs: number, lastingMs: number, window: number }

function otherWindowAt (window: number, probe: OtherProbeRtt | undefined, t: number): number {
  return probe !== undefined && t % probe.everyMs >= probe.everyMs - probe.lastingMs ? probe.window : window
}

/**
 * A bottleneck as a fluid, one millisecond at a time: the controller's pace and another flow
 * share a FIFO queue of `queueLimit` slices drained at `capacity` slices/s; the round trip is
 * `baseRttMs` plus the queue's delay (and an endpoint's stalls); a pace asked for takes effect
 * `paceLagMs` later. The other flow sends `otherRate` slices/s, or keeps `otherWindow` slices
 * in flight (a window that never changes: BBR's at its floor, sized by a round trip measured
 * with the queue empty), probing the round trip now and then if `otherProbeRtt` says so, from
 * `otherStartMs` on. The controller starts at `startMs` (it sees nothing of the path before).
 * Returns what each flow got over the last half, and the controller's estimate when startup ended.
 */
export function runPath (o: { character: Character, capacity: number, baseRttMs: number, queueLimit: number, randomLoss?: number, otherRate?: number, otherWindow?: number, otherProbeRtt?: OtherProbeRtt, otherStartMs?: number, startMs?: number, paceLagMs?: number, endpointStalls?: EndpointStalls, seconds: number }): PathRun {
  const control = new RateControl(o.character)
  const asked: number[] = []
  let estimateAtStartupEnd: number | null = null
  let ours = 0
  let others = 0
  const arrivals = new WholeSlices()
  const drops = new WholeSlices()
  let delivered = 0
  let otherDelivered = 0
  let sent = 0
  let lost = 0
  let delaySum = 0
  let samples = 0
  const random = seededRandom(7)
  const total = o.seconds * 1000
  for (let t = 0; t < total; t++) {
    const measuring = t >= total / 2
    const started = t >= (o.startMs ?? 0)
    asked.push(started ? control.paceRate : 0)
    const arriving = arrivals.add(asked[Math.max(0, t - (o.paceLagMs ?? 0))]! / 1000)
    ours += arriving
    others += (o.otherRate ?? 0) / 1000
    if (o.otherWindow !== undefined && t >= (o.otherStartMs ?? 0)) others += otherWindowAt(o.otherWindow, o.otherProbeRtt, t) / (o.baseRttMs + ((ours + others) * 1000) / o.capacity)
    if (measuring) sent += arriving
    const step = fifoMillisecond(ours, others, o.queueLimit, o.capacity)
    if (measuring) lost += step.ourDrop
    const dropped = drops.add(step.ourDrop)
    const ourServed = step.ourServed
    ours = step.ours
    others = step.others
    const queueDelayMs = ((ours + others) * 1000) / o.capacity
    if (started) {
      if (dropped > 0) control.onLost(dropped, t)
      const randomLost = ourServed * (o.randomLoss ?? 0)
      control.onDelivered(ourServed - randomLost, t)
      if (randomLost > 0) control.onLost(random() < randomLost ? 1 : 0, t)
      if (t % 5 === 0) control.onRtt(o.baseRttMs + queueDelayMs + stallDelayMs(o.endpointStalls, t), t)
    }
    if (measuring) { delivered += ourServed; otherDelivered += step.otherServed; delaySum += queueDelayMs; samples++ }
    if (estimateAtStartupEnd === null && control.state !== 'startup') estimateAtStartupEnd = control.bottleneckRate
  }
  return { deliveredRate: delivered / (o.seconds / 2), otherDeliveredRate: otherDelivered / (o.seconds / 2), queueDelayMs: delaySum / samples, lossFraction: lost / Math.max(1, sent), finalRate: control.paceRate, estimateAtStartupEnd }
}

/**
 * The fluid bottleneck of runPath shared with a loss-based TCP flow (CUBIC's window growth, ×0.7 at
 * most once a round trip on loss) that starts before ours, so that ours first sees the path
 * with TCP's queue already in it. Returns both flows' shares of the link over the last half.
 */
export function besideTcp (o: { character: Character, capacity: number, baseRttMs: number, queueLimit: number, seconds: number, tcpLeadMs?: number }): { ours: number, tcp: number } {
  const control = new RateControl(o.character)
  const tcpLeadMs = o.tcpLeadMs ?? 2_000
  const cubicC = 0.4
  const cubicBeta = 0.7
  let ours = 0
  let theirs = 0
  const arrivals = new WholeSlices()
  const drops = new WholeSlices()
  const theirDrops = new WholeSlices()
  let cwnd = 10
  let wMax = 0
  let epochMs = -1
  let cutMs = -Infinity
  let oursDelivered = 0
  let theirsDelivered = 0
  const total = o.seconds * 1000
  for (let t = 0; t < total; t++) {
    const rtt = o.baseRttMs + ((ours + theirs) * 1000) / o.capacity
    const started = t >= tcpLeadMs
    if (started) {
      ours += arrivals.add(control.paceRate / 1000)
    }
    theirs += cwnd / Math.max(1, rtt)
    const step = fifoMillisecond(ours, theirs, o.queueLimit, o.capacity)
    const theirLost = theirDrops.add(step.otherDrop)
    const dropped = drops.add(step.ourDrop)
    if (started && dropped > 0) control.onLost(dropped, t)
    const ourServed = step.ourServed
    const theirServed = step.otherServed
    ours = step.ours
    theirs = step.others
    if (started) {
      control.onDelivered(ourServed, t)
      if (t % 5 === 0) control.onRtt(rtt, t)
    }
    if (theirLost > 0 && t - cutMs > rtt) {
      wMax = cwnd
      cwnd = Math.max(2, cwnd * cubicBeta)
      cutMs = t
      epochMs = t
    } else if (epochMs < 0) {
      cwnd += theirServed
    } else {
      const k = Math.cbrt((wMax * (1 - cubicBeta)) / cubicC)
      const target = cubicC * ((t - epochMs) / 1000 - k) ** 3 + wMax
      cwnd += Math.max(theirServed / cwnd, ((target - cwnd) * theirServed) / cwnd)
    }
    if (t >= total / 2) { oursDelivered += ourServed; theirsDelivered += theirServed }
  }
  const measured = (o.capacity * o.seconds) / 2
  return { ours: oursDelivered / measured, tcp: theirsDelivered / measured }
}

/**
 * A path faster than its receiver (loopback, a fast LAN), one millisecond at a time: what the
 * controller's pace sends, within its window, waits in the receiver's socket buffer of
 * `bufferLimit` slices, which the receiver takes in at `receiverRate(t)` slices/s (a freshly
 * started daemon speeds up as its code is compiled). The round trip is `baseRttMs` plus that
 * backlog's wait; a pace asked for takes effect `paceLagMs` later. With `reportLoad`, the
 * receiver's loop load (the part of each 10 ms it was busy) is told to the controller, as
 * the daemon tells it. Returns the part of what the receiver could have taken in over the
 * run that it got, the slices its buffer dropped, and the longest backlog, ms.
 */
export function behindOwnReceiver (o: { receiverRate: (tMs: number) => number, baseRttMs: number, bufferLimit: number, paceLagMs: number, seconds: number, reportLoad: boolean }): { ofReceiver: number, dropped: number, longestBacklogMs: number } {
  const control = new RateControl('focused')
  const asked: number[] = []
  const sending = new WholeSlices()
  let backlog = 0
  let inFlight = 0
  let couldTake = 0
  let took = 0
  let dropped = 0
  let busyMs = 0
  let longestBacklogMs = 0
  for (let t = 0; t < o.seconds * 1000; t++) {
    asked.push(control.paceRate)
    const due = sending.add(asked[Math.max(0, t - o.paceLagMs)]! / 1000)
    const sent = Math.max(0, Math.min(due, control.window - inFlight))
    inFlight += sent
    backlog += sent
    if (backlog > o.bufferLimit) {
      const over = backlog - o.bufferLimit
      backlog -= over
      inFlight -= over
      dropped += over
      control.onLost(over, t)
    }
    const capacity = o.receiverRate(t) / 1000
    const taken = Math.min(backlog, capacity)
    backlog -= taken
    inFlight -= taken
    couldTake += capacity
    took += taken
    busyMs += taken / capacity
    control.onDelivered(taken, t, inFlight)
    const backlogMs = (backlog * 1000) / o.receiverRate(t)
    longestBacklogMs = Math.max(longestBacklogMs, backlogMs)
    if (t % 5 === 0) control.onRtt(o.baseRttMs + backlogMs, t)
    if (t % 10 === 9) {
      if (o.reportLoad) control.onLoopLoad(busyMs / 10, 10)
      busyMs = 0
    }
  }
  return { ofReceiver: took / couldTake, dropped, longestBacklogMs }
}

/**
 * One millisecond of the bottleneck: a FIFO queue of `queueLimit` slices, drained at
 * `capacity` slices/s, holding `ours` and `others`. What overflows it is dropped from each
 * flow in proportion to what it holds, and what is served is shared the same way.
 */
function fifoMillisecond (ours: number, others: number, queueLimit: number, capacity: number): { ours: number, others: number, ourDrop: number, otherDrop: number, ourServed: number, otherServed: number } {
  let ourDrop = 0
  let otherDrop = 0
  const overflow = ours + others - queueLimit
  if (overflow > 0) {
    ourDrop = (overflow * ours) / (ours + others)
    otherDrop = overflow - ourDrop
    ours -= ourDrop
    others -= otherDrop
  }
  const served = Math.min(ours + others, capacity / 1000)
  const ourServed = ours + others === 0 ? 0 : (served * ours) / (ours + others)
  const otherServed = served - ourServed
  return { ours: ours - ourServed, others: others - otherServed, ourDrop, otherDrop, ourServed, otherServed }
}

/**
 * Fractions of slices counted out as whole slices as they add up: a paced flow sends whole
 * slices, and a flow with a small share of a queue's overflow loses one now and then, not never.
 */
export class WholeSlices {
  private owed = 0

  /** Adds `amount` slices (a fraction, often); returns the whole slices due now. */
  add (amount: number): number {
    this.owed += amount
    const whole = Math.floor(this.owed)
    this.owed -= whole
    return whole
  }
}

/** Numbers in [0, 1) from a linear congruential generator: the same for the same seed, run after run. */
export function seededRandom (seed: number): () => number {
  let state = seed
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648
    return state / 2147483648
  }
}
