import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LoopLoad, SATURATED_LOAD, SATURATED_ROUNDS } from '../src/sync/loop-load.js'
import { behindOwnReceiver } from './helpers/fluid-path.js'

/** A freshly started receiver: 20 thousand slices/s at first, 90 thousand once its code is compiled, half a second later. */
const warmingUp = (tMs: number): number => 20_000 + 70_000 * Math.min(1, tMs / 500)
/** About what a 4 MB socket buffer holds. */
const BUFFER_SLICES = 4_000

test('rate control, focused: behind its own saturated receiver it keeps that receiver busy while the receiver speeds up, and its window bounds the backlog', () => {
  const told = behindOwnReceiver({ receiverRate: warmingUp, baseRttMs: 1, bufferLimit: BUFFER_SLICES, paceLagMs: 10, seconds: 1, reportLoad: true })
  const untold = behindOwnReceiver({ receiverRate: warmingUp, baseRttMs: 1, bufferLimit: BUFFER_SLICES, paceLagMs: 10, seconds: 1, reportLoad: false })
  assert.ok(told.ofReceiver >= 0.96, `took ${told.ofReceiver.toFixed(3)} of what the receiver could`)
  // Told nothing, the backlog reads as a path's queue: drained, it leaves the receiver idle.
  assert.ok(told.ofReceiver - untold.ofReceiver >= 0.03, `${told.ofReceiver.toFixed(3)} told against ${untold.ofReceiver.toFixed(3)} untold`)
  assert.equal(told.dropped, 0, 'the receiver\'s buffer dropped slices')
  assert.ok(told.longestBacklogMs <= 40, `a backlog of ${told.longestBacklogMs.toFixed(1)} ms`)
})

test('rate control, focused: behind a receiver saturated at a steady speed, nothing is dropped and the backlog stays short', () => {
  const run = behindOwnReceiver({ receiverRate: () => 90_000, baseRttMs: 1, bufferLimit: BUFFER_SLICES, paceLagMs: 10, seconds: 2, reportLoad: true })
  assert.ok(run.ofReceiver >= 0.96, `took ${run.ofReceiver.toFixed(3)} of what the receiver could`)
  assert.equal(run.dropped, 0)
  assert.ok(run.longestBacklogMs <= 40, `a backlog of ${run.longestBacklogMs.toFixed(1)} ms`)
})

test('loop load: only a loop saturated for several rounds in a row, none of them losing slices, makes the receiver the bottleneck', () => {
  const load = new LoopLoad()
  const round = (utilization: number, lost = false): boolean => {
    load.onSample(utilization, 10)
    load.onSample(utilization, 15)
    return load.closeRound(lost)
  }
  const seen: boolean[] = []
  for (let i = 0; i < SATURATED_ROUNDS; i++) seen.push(round(1))
  assert.deepEqual(seen, [...Array(SATURATED_ROUNDS - 1).fill(false), true], 'a moment of saturation is no bottleneck; a spell of it is')
  assert.equal(round(0.95), true)
  assert.equal(round(SATURATED_LOAD - 0.05), false, 'a loop with time to spare')
  for (let i = 0; i < SATURATED_ROUNDS - 1; i++) round(1)
  assert.equal(round(1, true), false, 'a round that lost slices: a queue on the path is full too')
  for (let i = 0; i < SATURATED_ROUNDS - 1; i++) assert.equal(round(1), false, 'the spell starts again after a loss')
  assert.equal(round(1), true)
  assert.equal(load.closeRound(false), false, 'a round with no load told')
  load.onSample(Number.NaN, 10)
  load.onSample(1, 0)
  assert.equal(load.closeRound(false), false, 'nonsense samples are ignored')
})
