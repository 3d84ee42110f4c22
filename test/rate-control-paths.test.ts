import { test } from 'node:test'
import assert from 'node:assert/strict'
import { RateControl } from '../src/sync/rate-control.js'
import { runPath } from './helpers/fluid-path.js'

/** A focused download on long paths where the pace it asks for reaches the sender half a round trip late, as it does over a network. */

test('rate control, focused: with the pace half a round trip late, probes leave no standing queue', () => {
  for (const baseRttMs of [20, 100, 200]) {
    const run = runPath({ character: 'focused', capacity: 5_000, baseRttMs, queueLimit: 1_000, paceLagMs: baseRttMs / 2, seconds: 20 })
    assert.ok(run.deliveredRate >= 0.99 * 5_000, `rtt ${baseRttMs}: ${(run.deliveredRate / 5_000).toFixed(3)} of the link`)
    // A probe queues a quarter of a round for a round; its drain takes that back. What stands
    // on top comes from probes nothing drained.
    assert.ok(run.queueDelayMs <= Math.max(15, 0.4 * baseRttMs), `rtt ${baseRttMs}: ${run.queueDelayMs.toFixed(1)} ms of queue`)
  }
})

test('rate control, focused: 1% random loss on a long path with a queue is not taken for another flow filling it', () => {
  const run = runPath({ character: 'focused', capacity: 5_000, baseRttMs: 200, queueLimit: 1_000, randomLoss: 0.01, paceLagMs: 100, seconds: 20 })
  assert.ok(run.deliveredRate >= 0.995 * 5_000, `${(run.deliveredRate / 5_000).toFixed(3)} of the link`)
})

/** 1,000 slices/s delivered, a round trip sampled every 5 ms, until startup ends. */
function untilDrain (rttAt: (tMs: number) => number): { control: RateControl, t: number } {
  const control = new RateControl('focused')
  let t = 0
  for (; control.state === 'startup' && t < 5_000; t++) {
    control.onDelivered(1, t)
    if (t % 5 === 0) control.onRtt(rttAt(t), t)
  }
  assert.equal(control.state, 'drain')
  return { control, t }
}

test('rate control, focused: the drain after startup ends once no more is asked for than the path holds', () => {
  // A 100 ms round trip, until startup's pace fills a queue.
  const started = untilDrain(t => 100 + Math.max(0, t - 1_000) / 10)
  const control = started.control
  let t = started.t
  const bandwidth = control.bottleneckRate
  // Still draining while more than the path holds (its rate over a round trip) is in flight.
  control.onDelivered(1, ++t, Math.ceil(bandwidth / 10) * 2)
  assert.equal(control.state, 'drain')
  // Then no more: cruising at once, at the bottleneck rate, not a round later at half of it.
  control.onDelivered(1, ++t, Math.floor(bandwidth / 10))
  assert.equal(control.state, 'cruise')
  assert.ok(control.paceRate >= bandwidth, `${control.paceRate}/s of ${bandwidth.toFixed(0)}`)
})

test('rate control, focused: the drain after startup ends once its rounds leave the link idle, though no round trip shows it', () => {
  // A queue that grows from the first round on: startup ends with one showing.
  const started = untilDrain(t => 100 + Math.max(0, t - 100) / 2)
  const control = started.control
  let t = started.t
  const bandwidth = control.bottleneckRate
  // The sender still holds slices asked for at startup's pace, so in flight stays far above
  // what the path holds; no request leaves while the window is full, so no round trip comes.
  // What arrives comes at the drain's own pace: the bottleneck's queue is gone.
  const inFlight = Math.ceil(bandwidth / 10) * 4
  const every = Math.ceil(1_000 / control.paceRate)
  const drainStarted = t
  for (; control.state === 'drain' && t < drainStarted + 1_000; t++) if (t % every === 0) control.onDelivered(1, t, inFlight)
  assert.equal(control.state, 'cruise', 'still draining after a second')
  assert.ok(t - drainStarted <= 250, `the drain ended after ${t - drainStarted} ms: more than two rounds at its pace`)
  assert.ok(control.paceRate >= bandwidth, `${control.paceRate}/s of ${bandwidth.toFixed(0)}`)
  // And the round after cruises at the bottleneck rate: no probe's drain follows a drain.
  const cruiseStarted = t
  for (; t < cruiseStarted + 100; t++) control.onDelivered(1, t)
  control.onDelivered(1, t)
  assert.ok(control.paceRate >= bandwidth, `the round after: ${control.paceRate}/s of ${bandwidth.toFixed(0)}`)
})
