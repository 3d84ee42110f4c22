import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FINE_TIMER_CATCH_UP_MS, Pacer } from '../src/sync/pacer.js'
import { EVENT_BYTES } from '../src/wire/constants.js'
import { MIN_RATE, RateControl } from '../src/sync/rate-control.js'
import { BackgroundSteering } from '../src/sync/background-steering.js'
import { besideTcp, runPath, seededRandom } from './helpers/fluid-path.js'
import type { PathRun } from './helpers/fluid-path.js'
import { INFLIGHT_HEADROOM_MS } from '../src/sync/inflight-cap.js'
import { CLUSTERED_DISPERSION, DISPERSION_ROUNDS, LossDispersion } from '../src/sync/loss-dispersion.js'
import { LossCap } from '../src/sync/loss-cap.js'
import { MinRtt } from '../src/sync/min-rtt.js'
import { Requester, WHOLE_RANGE_WINDOW } from '../src/sync/requester.js'
import type { PlannedRequest } from '../src/sync/requester.js'
import { requestedFile } from './helpers/requested-file.js'
import { FRAME_BYTES_PER_SLICE } from './helpers/shaped-transfer.js'

test('pacer: spreads items at its rate, bursts at most a couple of milliseconds, and makes up a late call', () => {
  const pacer = new Pacer(512_000) // 1,000 items of 512 bytes a second
  let sent = pacer.take(0, 512, 10_000)
  assert.ok(sent <= 2, `first burst ${sent}`)
  for (let t = 1; t <= 1000; t++) sent += pacer.take(t, 512, 10_000)
  assert.ok(sent >= 990 && sent <= 1010, `${sent} items in one second`)
  assert.equal(pacer.nextAtMs(1000, 512) > 1000, true, 'the bucket is empty: the next item waits')
  // Called 10 ms late with items waiting: that time is made up, not lost.
  assert.equal(pacer.take(1010, 512, 10_000), 10)
  // Idle (nothing waiting) for a second: no more than its burst goes at once.
  pacer.take(1011, 512, 0)
  assert.ok(pacer.take(2011, 512, 10_000) <= 2)
  assert.equal(new Pacer(0).take(0, 512, 5_000), 5_000, 'no pace asked: everything goes')
  // Items larger than the bucket's usual depth (five events at a slow pace) still go, at the pace.
  const slow = new Pacer(300_000)
  let big = 0
  for (let t = 0; t <= 1000; t++) big += slow.take(t, 2_560, 1_000)
  assert.ok(big >= 110 && big <= 120, `${big} items of 2,560 bytes in one second at 300 kB/s`)
})

test('rate control, focused: fills a bottleneck without a standing queue, and random loss does not starve it', () => {
  for (const baseRttMs of [2, 20, 200]) {
    const run = runPath({ character: 'focused', capacity: 10_000, baseRttMs, queueLimit: 1_000, seconds: 20 })
    assert.ok(run.deliveredRate >= 9_000, `rtt ${baseRttMs}: ${run.deliveredRate.toFixed(0)} slices/s of 10,000`)
    // A probe lasts a round trip, so the queue it leaves scales with it (BBR's does too).
    assert.ok(run.queueDelayMs <= Math.max(40, 0.3 * baseRttMs), `rtt ${baseRttMs}: ${run.queueDelayMs.toFixed(1)} ms of queue`)
    assert.ok(run.lossFraction <= 0.02, `rtt ${baseRttMs}: ${(run.lossFraction * 100).toFixed(2)}% dropped`)
  }
  const lossy = runPath({ character: 'focused', capacity: 10_000, baseRttMs: 20, queueLimit: 1_000, randomLoss: 0.01, seconds: 20 })
  assert.ok(lossy.deliveredRate >= 8_500, `1% random loss: ${lossy.deliveredRate.toFixed(0)} slices/s`)
  // A queue of only 3 ms: still most of the link, with little dropped.
  const shallow = runPath({ character: 'focused', capacity: 10_000, baseRttMs: 2, queueLimit: 30, seconds: 20 })
  assert.ok(shallow.deliveredRate >= 8_500, `shallow queue: ${shallow.deliveredRate.toFixed(0)} slices/s`)
  assert.ok(shallow.lossFraction <= 0.05, `shallow queue: ${(shallow.lossFraction * 100).toFixed(2)}% dropped`)
})

test('rate control, background: takes an idle link, and backs off to a trickle when other traffic keeps the queue full', () => {
  const alone = runPath({ character: 'background', capacity: 10_000, baseRttMs: 20, queueLimit: 1_000, seconds: 20 })
  assert.ok(alone.deliveredRate >= 8_000, `alone: ${alone.deliveredRate.toFixed(0)} slices/s`)
  assert.ok(alone.queueDelayMs <= 50, `alone: ${alone.queueDelayMs.toFixed(1)} ms of queue`)
  const beside = runPath({ character: 'background', capacity: 10_000, baseRttMs: 20, queueLimit: 1_000, otherRate: 10_000, seconds: 20 })
  assert.ok(beside.deliveredRate <= 1_500, `beside a flow that fills the link: ${beside.deliveredRate.toFixed(0)} slices/s`)
  assert.ok(beside.finalRate <= 2 * MIN_RATE * 10, `asks for ${beside.finalRate}/s`)
})

test('rate control, focused: on a queue too shallow for its probes, their losses teach a smaller step; little is dropped', () => {
  // 50 Mbit/s in slices behind a 32 KB queue (58 slices, 5 ms): a probe of a quarter above
  // the link for a round overflows it.
  const run = runPath({ character: 'focused', capacity: 11_132, baseRttMs: 1, queueLimit: 58, seconds: 20 })
  assert.ok(run.deliveredRate >= 0.95 * 11_132, `${(run.deliveredRate / 11_132).toFixed(3)} of the link`)
  assert.ok(run.lossFraction <= 0.01, `${(run.lossFraction * 100).toFixed(2)}% dropped`)
  // Random loss on a deep queue is not a probe overflowing it: the step stays, the link stays full.
  const lossy = runPath({ character: 'focused', capacity: 10_000, baseRttMs: 20, queueLimit: 1_000, randomLoss: 0.01, seconds: 20 })
  assert.ok(lossy.deliveredRate >= 0.97 * 10_000, `1% random loss: ${(lossy.deliveredRate / 10_000).toFixed(3)} of the link`)
})

test('rate control, focused: a raised pace that reaches the sender only a round trip and a tick later does not end startup early', () => {
  // A fast path (1 ms) where each pace asked for takes effect 30 ms later, as it does when
  // requests leave on a 10 ms tick: three short startup rounds pass before deliveries grow.
  const run = runPath({ character: 'focused', capacity: 11_000, baseRttMs: 1, queueLimit: 58, paceLagMs: 30, seconds: 3 })
  assert.ok(run.estimateAtStartupEnd !== null, 'startup ended')
  assert.ok(run.estimateAtStartupEnd >= 0.8 * 11_000, `startup ended at ${run.estimateAtStartupEnd.toFixed(0)} slices/s of 11000`)
})

test('rate control, background: grows by time, not by round, so short rounds on a fast path do not make it a flood', () => {
  // A path that takes all it is given: a 1 ms round trip, no queue, no loss.
  const control = new RateControl('background')
  let t = 0
  for (; t <= 500; t++) {
    control.onDelivered(Math.round(control.paceRate / 1000), t)
    if (t % 5 === 0) control.onRtt(1, t)
  }
  // A tenth per 200 ms at most: two and a half such steps in half a second.
  const bound = 2_000 * 1.1 ** 2.5 * 1.05
  assert.ok(control.paceRate <= bound, `after 500 ms: ${control.paceRate}/s, more than ${bound.toFixed(0)}`)
  assert.equal(control.state, 'cruise', 'a background download has no startup')
  // Still fills an idle link: 10,000 slices/s with a 1 ms round trip, most of it within 5 s.
  const idle = runPath({ character: 'background', capacity: 10_000, baseRttMs: 1, queueLimit: 1_000, seconds: 10 })
  assert.ok(idle.deliveredRate >= 9_000, `idle link: ${idle.deliveredRate.toFixed(0)} slices/s of 10,000`)
})

test('rate control, background: an endpoint\'s moments of work, read as a few ms of queue for a round or two, do not keep it off an idle link', () => {
  // 50 Mbit/s in slices, a 512 KB queue, a path of 1 ms; every 300 ms an endpoint busy for
  // 40 ms adds 4 or 8 ms to the round trips, with no queue on the path.
  for (const extraMs of [4, 8]) {
    const run = runPath({ character: 'background', capacity: 11_132, baseRttMs: 1, queueLimit: 1_024, endpointStalls: { everyMs: 300, lastingMs: 40, extraMs }, seconds: 20 })
    assert.ok(run.deliveredRate >= 0.9 * 11_132, `stalls of ${extraMs} ms: ${(run.deliveredRate / 11_132).toFixed(3)} of the link`)
  }
  // A queue that another flow keeps lasts longer than those moments: it still backs off.
  const beside = runPath({ character: 'background', capacity: 11_132, baseRttMs: 1, queueLimit: 1_024, otherRate: 11_132, endpointStalls: { everyMs: 300, lastingMs: 40, extraMs: 8 }, seconds: 20 })
  assert.ok(beside.deliveredRate <= 1_500, `beside a flow that fills the link: ${beside.deliveredRate.toFixed(0)} slices/s`)
})

test('rate control, background: one overflow halves the pace once, though its losses are found over several rounds', () => {
  const steering = new BackgroundSteering()
  const episodeMs = 100
  const round = (rate: number, lost: boolean): number => steering.onRound({
    rate, lossy: lost, anyLoss: lost, elapsedMs: 25, queueingDelayMs: 0, minRttMs: 1, bottleneckRate: 10_000, initialRate: 2_000, episodeMs
  })
  const before = round(10_000, false)
  assert.ok(before > 10_000, `an idle path: ${before}/s`)
  const cut = round(before, true)
  assert.equal(cut, before / 2)
  // The overflow's later losses, found in the next rounds: the pace holds.
  let rate = cut
  for (let ms = 25; ms < episodeMs; ms += 25) {
    rate = round(rate, true)
    assert.equal(rate, cut, `${ms} ms after the cut`)
  }
  // A loss past the episode is a new overflow.
  assert.equal(round(rate, true), cut / 2)
})

test('rate control, background: a download that starts while TCP keeps a deep queue full yields to it, though it takes that queue for the path\'s own delay', () => {
  // 10 and 50 Mbit/s with a 512 KB queue, in slices; the path's own round trip 1 ms.
  for (const capacity of [1_950, 9_750]) {
    const run = besideTcp({ character: 'background', capacity, baseRttMs: 1, queueLimit: 1_024, seconds: 40 })
    assert.ok(run.ours <= 0.15, `${capacity} slices/s: the background download took ${run.ours.toFixed(2)} of the link, TCP ${run.tcp.toFixed(2)}`)
    assert.ok(run.tcp >= 0.8, `${capacity} slices/s: TCP kept ${run.tcp.toFixed(2)} of the link`)
  }
})

test('rate control, background: started beside a flow whose window keeps a standing queue (BBR at its floor), it leaves that flow four fifths of the link', () => {
  // 10 Mbit/s in slices, a 512 KB queue. The window flow came first: its window holds 25 or
  // 30 ms of queue on a 1 ms path, or 10 ms on a 20 or 50 ms one, and the download, starting 2 s
  // later, takes that queue for the path's own round trip. No probe of the window flow's round
  // trip empties the queue meanwhile (BBR's come every 10 s).
  const capacity = 1_950
  for (const [baseRttMs, standingMs] of [[1, 25], [1, 30], [20, 10], [50, 10]] as const) {
    const otherWindow = capacity * (baseRttMs + standingMs) / 1000
    const run = runPath({ character: 'background', capacity, baseRttMs, queueLimit: 1_024, otherWindow, startMs: 2_000, seconds: 16 })
    const kept = run.otherDeliveredRate / capacity
    assert.ok(kept >= 0.8, `${baseRttMs} ms path, ${standingMs} ms standing: the window flow kept ${kept.toFixed(3)} of the link, the download took ${(run.deliveredRate / capacity).toFixed(3)}`)
  }
})

test('rate control, focused: beside TCP, on shallow and deep queues at 10 and 50 Mbit/s, TCP keeps a fair share', () => {
  // In slices: 10 and 50 Mbit/s; 32 KB and 512 KB queues; the path's own round trip 1 ms.
  for (const capacity of [1_950, 9_750]) {
    for (const queueLimit of [64, 1_024]) {
      // The shares swing by a few hundredths with the moment the download starts after TCP,
      // so three such moments are judged together.
      const runs = [1_500, 2_000, 2_500].map(tcpLeadMs => besideTcp({ character: 'focused', capacity, baseRttMs: 1, queueLimit, seconds: 40, tcpLeadMs }))
      const tcp = runs.reduce((sum, run) => sum + run.tcp, 0) / runs.length
      const ours = runs.reduce((sum, run) => sum + run.ours, 0) / runs.length
      const where = `${capacity} slices/s, a queue of ${queueLimit}: focused ${ours.toFixed(3)}, TCP ${tcp.toFixed(3)}`
      // After both flows lose, TCP regrows for seconds: a cap that took the queue they both
      // drained for room to grow into left TCP 0.38 on the deep 50 Mbit/s queue.
      assert.ok(tcp >= 0.41, `TCP starved: ${where}`)
      assert.ok(ours >= 0.25, `the focused download gave up its share: ${where}`)
    }
  }
})

test('rate control, focused: a loss from a full queue caps the pace, and the cut is taken back when the loss proves spurious', () => {
  const control = new RateControl('focused')
  // A path that delivers 1,000 slices/s with a 10 ms round trip; a queue fills up to 20 ms now and then.
  let t = 0
  const run = (untilMs: number, queueMs: (t: number) => number): void => {
    for (; t < untilMs; t++) {
      control.onDelivered(1, t)
      if (t % 5 === 0) control.onRtt(10 + queueMs(t), t)
    }
  }
  /**
   * The highest pace asked for over the next `ms` (200: a probing cycle of eight rounds). The
   * queue empties for a round (25 ms) in every 200: a queue that never empties is one the
   * download holds itself, and the standing-queue cap answers that.
   */
  const highestPace = (queueMs: number, ms = 200): number => {
    let highest = 0
    for (const end = t + ms; t < end;) { run(t + 5, at => (at % 200 >= 100 && at % 200 < 125 ? 0 : queueMs)); highest = Math.max(highest, control.paceRate) }
    return highest
  }
  run(5_000, t => (t % 1_000 < 100 ? 20 : 0))
  assert.equal(control.state, 'cruise')
  const bandwidth = control.bottleneckRate
  assert.ok(bandwidth >= 900 && highestPace(20) >= bandwidth, `cruises at ${bandwidth}/s`)
  // A loss while the queue is at its deepest: the pace is capped well below the delivery rate.
  control.onLost(5, t)
  // Acted on when its round closes (a round is 25 ms here).
  run(t + 25, () => 20)
  // (The cap then grows back as TCP's window would: a slice per round trip, each round trip.)
  const capped = highestPace(20, 100)
  assert.ok(capped <= 0.85 * bandwidth, `after a loss from a full queue: at most ${capped}/s of ${bandwidth}`)
  // A slice called lost arrives after all: the cut is undone.
  control.onSpuriousLoss(t)
  const undone = highestPace(20)
  assert.ok(undone >= bandwidth, `after the loss proved spurious: at most ${undone}/s`)
})

test('loss cap: the losses of startup\'s own overshoot do not mark the buffer filled by another flow; the same losses later do', () => {
  const cap = new LossCap()
  // 25 ms rounds on a path delivering 10,000 slices/s; a loss episode is found over 150 ms.
  const round = (tMs: number, lost: number): void => cap.onRound({
    delivered: 250 - lost, lost, elapsedMs: 25, tMs, full: true, queueLooksEmpty: false, srttMs: 10, episodeMs: 150, deliveryRate: 10_000, bottleneckRate: 10_000
  })
  cap.startupEnded(1_000)
  // Startup's overshoot is found over the next rounds, with the queue it filled still full.
  for (let t = 1_025; t <= 1_100; t += 25) round(t, 40)
  assert.equal(cap.bufferFilledLately(1_100), false, 'startup\'s own losses read as another flow filling the buffer')
  assert.equal(cap.value, Infinity, 'startup\'s own losses cut the pace')
  for (let t = 1_125; t <= 2_000; t += 25) round(t, 0)
  // A second overflow, well after startup, with no drain of its own to answer it: another flow's.
  round(2_025, 40)
  assert.equal(cap.bufferFilledLately(2_025), true)
  assert.ok(cap.value <= 0.7 * 10_000, `capped at ${cap.value}`)
})

test('min rtt: another flow found by a probe stays found through probes that see the quiet round trip at the minimum, and is forgotten only after a while', () => {
  // A probe of the round trip: paced low from `startMs`, seeing `quietRttMs`, ended once its time is up.
  const probe = (filter: MinRtt, startMs: number, quietRttMs: number): number => {
    filter.startProbe(startMs, 5)
    filter.onSample(quietRttMs, startMs + 50)
    let t = startMs + 50
    while (!filter.endProbe(t)) t += 25
    return t
  }
  const shared = new MinRtt()
  shared.onSample(4, 0)
  // The first probe finds another flow's queue: 9 ms while this download kept quiet.
  const found = probe(shared, 1_000, 9)
  assert.equal(shared.othersFound(found), true)
  // Later probes see the quiet round trip at the minimum: what a path shared with a flow whose
  // window bounds it shows once its share is small, as much as a path with nobody else on it.
  const quietAgain = probe(shared, 4_000, 4)
  probe(shared, 8_000, 4)
  assert.equal(shared.othersFound(quietAgain + 5_000), true, 'a probe that saw no queue took the other flow for gone')
  assert.equal(shared.othersFound(found + 31_000), false, 'another flow found once was kept for good')
  // Alone on the path: no probe finds anyone, though startup's minimum read 4 ms (the
  // endpoints' own delays while their code was cold) and the quiet round trip reads 0.
  const alone = new MinRtt()
  alone.onSample(4, 0)
  assert.equal(alone.othersFound(probe(alone, 1_000, 0)), false, 'the endpoints\' delays at startup read as another flow')
  // Started beside a flow whose queue stood: startup's minimum reads 8 ms, the quiet round trip 4.
  const late = new MinRtt()
  late.onSample(8, 0)
  assert.equal(late.othersFound(probe(late, 1_000, 4)), true, 'a minimum another flow inflated went unnoticed')
})

test('loss dispersion: datagrams lost at random read as spread, the same share lost in bursts as clustered', () => {
  const random = seededRandom(3)
  const spread = new LossDispersion()
  const bursts = new LossDispersion()
  for (let round = 0; round < DISPERSION_ROUNDS; round++) {
    // 100 datagrams of two slices, 5% of them lost at random; or 40% of them, one round in eight.
    let lost = 0
    for (let datagram = 0; datagram < 100; datagram++) if (random() < 0.05) lost += 2
    spread.onRound(200 - lost, lost)
    bursts.onRound(round % 8 === 0 ? 120 : 200, round % 8 === 0 ? 80 : 0)
    if (round < DISPERSION_ROUNDS - 1) assert.equal(bursts.clustered, false, 'judged only over a full window of rounds')
  }
  assert.ok(spread.index >= 1 && spread.index < CLUSTERED_DISPERSION, `at random: index ${spread.index.toFixed(2)}`)
  assert.equal(spread.clustered, false)
  assert.ok(bursts.index >= 10 * CLUSTERED_DISPERSION, `in bursts: index ${bursts.index.toFixed(2)}`)
  assert.equal(bursts.clustered, true)
  const none = new LossDispersion()
  for (let round = 0; round < DISPERSION_ROUNDS; round++) none.onRound(200, 0)
  assert.equal(none.index, 0)
  assert.equal(none.clustered, false)
})

test('rate control, focused: losses clustered as a full queue drops them cap the pace, though no queue shows; losses spread at random do not', () => {
  // 8,000 slices/s get through. As measured beside CUBIC on 50 Mbit/s with a 32 KB queue, the
  // rounds' round trips read 0–4 ms above the minimum, losses or not (the 5 ms queue barely
  // shows through the endpoints' own delays), and startup's last rounds read 30 ms (its
  // overshoot, and the endpoints' busy first moments).
  const random = seededRandom(11)
  const losses: Array<{ name: string, cut: boolean, lose: (tMs: number, slice: number) => boolean }> = [
    // Nothing gets through for 5 ms in every 125, as when another flow overshoots: 4% lost.
    { name: 'clustered, 4%', cut: true, lose: tMs => tMs % 125 < 5 },
    { name: 'at random, 5%', cut: false, lose: () => random() < 0.05 },
    { name: 'every 100th', cut: false, lose: (_tMs, slice) => slice % 100 === 0 }
  ]
  for (const { name, cut, lose } of losses) {
    const control = new RateControl('focused')
    let slice = 0
    const paces: number[] = []
    for (let t = 0; t < 10_000; t++) {
      const startupsLastRounds = control.state === 'startup' && t > 60
      let lost = startupsLastRounds ? 2 : 0
      for (let i = 0; i < 8 && !startupsLastRounds; i++) if (lose(t, ++slice)) lost++
      if (lost < 8) control.onDelivered(8 - lost, t)
      if (lost > 0) control.onLost(lost, t)
      if (t % 5 === 0) control.onRtt(2 + (startupsLastRounds ? 30 : (Math.floor(t / 25) * 7) % 5), t)
      if (t >= 5_000) paces.push(control.paceRate)
    }
    // A cut caps the pace at 0.7 of the delivery rate; a probing cycle's drain round goes no lower than 0.75.
    const lowest = Math.min(...paces) / control.bottleneckRate
    if (cut) assert.ok(lowest <= 0.72, `${name}: the pace kept ${lowest.toFixed(2)} of the estimate at its lowest`)
    else assert.ok(lowest >= 0.75, `${name}: the pace fell to ${lowest.toFixed(2)} of the estimate`)
  }
})

test('requester: slices of a later request show an earlier one lost once the reorder window passes; requests sent together are not ordered', () => {
  // A pace whose window, once a round trip is known, has room for whole ranges beside the two left unanswered.
  const requester = new Requester({ initialRate: 40_000, expectedTickMs: 10 })
  const f = requestedFile('f', 20_000)
  const first = requester.plan([f], ['p'], 0)
  assert.ok(first.length >= 3)
  // The rest of the first batch is answered in full: room for a second batch.
  for (const r of first.slice(2)) {
    requester.onReply('p', 'f', r.range, r.requestId, r.limit, 5)
    for (let i = 0; i < r.limit; i++) requester.onSlice('p', 'f', r.range, 5)
  }
  const second = requester.plan([f], ['p'], 10)
  assert.ok(second.length >= 1)
  const early = first[0]!
  const sameTick = first[1]!
  const later = second[0]!
  for (const r of [...first.slice(0, 2), ...second]) requester.onReply('p', 'f', r.range, r.requestId, r.limit, 12)
  // The peer answers the second of the first batch before the first: no loss is called.
  for (let i = 0; i < 10; i++) requester.onSlice('p', 'f', sameTick.range, 13)
  assert.equal(requester.expire(20), 0, 'sent in the same tick: either may come first')
  // Slices of a request sent later: the first batch's unanswered requests are lost after the window.
  for (let i = 0; i < 10; i++) requester.onSlice('p', 'f', later.range, 21)
  assert.equal(requester.expire(22), 0, 'within the reorder window')
  const given = requester.expire(30)
  assert.ok(given >= 1, 'overtaken once the window passed')
  assert.ok(requester.givenUpBy.overtaken >= 1)
  // A slice of the request given up arrives after all: it is taken, and the window grows.
  const windowBefore = requester.peerStats('p')!.reorderWindowMs
  assert.equal(requester.onSlice('p', 'f', early.range, 31), true)
  assert.equal(requester.lateSlices, 1)
  assert.ok(requester.peerStats('p')!.reorderWindowMs > windowBefore)
  assert.equal(requester.onSlice('q', 'f', early.range, 31), false, 'from a peer not asked it is still refused')
})

/** Two requests to one peer; the first is answered, then goes quiet and is drained. */
function drainFirstOfTwo () {
  const requester = new Requester({ initialRate: 20_000, expectedTickMs: 10 })
  const [first, next] = requester.plan([requestedFile('f', 20_000)], ['p'], 0)
  assert.ok(first !== undefined && next !== undefined)
  requester.onReply('p', 'f', first.range, first.requestId, first.limit, 1)
  requester.onSlice('p', 'f', first.range, 2)
  let t = 2
  while (requester.givenUpBy.drained === 0 && t < 200) requester.expire(t += 10)
  assert.equal(requester.givenUpBy.drained, 1)
  return { requester, first, next, drainedAtMs: t }
}

test('requester: while slices of a request given up keep coming, the next one is not called drained', () => {
  // The first is drained; the next was answered but its slices wait behind it.
  const { requester, first, next, drainedAtMs } = drainFirstOfTwo()
  let t = drainedAtMs
  requester.onReply('p', 'f', next.range, next.requestId, next.limit, t)
  // The first's slices come after all, one every 10 ms, for 150 ms: the peer is busy sending.
  for (let i = 0; i < 15; i++) {
    t += 10
    assert.equal(requester.onSlice('p', 'f', first.range, t), true, 'a late slice is taken')
    requester.expire(t)
  }
  assert.equal(requester.givenUpBy.drained, 1, 'the next request was drained while the peer was still sending')
})

test('requester: once slices called lost came late, a pause that long behind other traffic does not drain the next request', () => {
  const { requester, first, next, drainedAtMs } = drainFirstOfTwo()
  let t = drainedAtMs
  // Its slices come after all, after pauses of 150 ms: a queue shared with a burstier flow.
  for (let i = 0; i < 5; i++) {
    for (let pause = 0; pause < 150; pause += 10) requester.expire(t += 10)
    requester.onSlice('p', 'f', first.range, t)
  }
  const window = requester.peerStats('p')!.reorderWindowMs
  assert.ok(window >= 150, `reorder window ${window} ms`)
  requester.onReply('p', 'f', next.range, next.requestId, next.limit, t)
  requester.onSlice('p', 'f', next.range, t)
  // The next request pauses as long: not drained; a pause well past the window drains it.
  for (let at = t + 10; at <= t + 150; at += 10) requester.expire(at)
  assert.equal(requester.givenUpBy.drained, 1, 'drained within a pause the peer was seen to make')
  for (let at = t + 160; at <= t + window + 100; at += 10) requester.expire(at)
  assert.equal(requester.givenUpBy.drained, 2, 'a longer silence still drains it')
})

test('requester: near a file\'s end a range is asked for whole, past the window; elsewhere the window cuts a request short', () => {
  const window = new RateControl().window
  // The window of a new path is about one range. Of a file of four ranges, all but the last
  // two are here, and of the third all but 400 slices.
  const tail = requestedFile('tail', 2_000)
  const third = tail.layout.rangeStart(2)
  for (let i = 0; i < third + tail.layout.rangeLength(2) - 400; i++) tail.have.add(i)
  const asked = new Requester().plan([tail], ['p'], 0)
  assert.deepEqual(asked.map(r => [r.range, r.limit]), [[2, 400], [3, tail.layout.rangeLength(3)]], `the last range asked for whole, though the window is ${window}`)
  // In the middle of a file, the window cuts the second request short.
  const long = requestedFile('long', 100 * 500)
  for (let i = 0; i < long.layout.rangeLength(0) - 400; i++) long.have.add(i)
  const [first, second] = new Requester().plan([long], ['p'], 0)
  assert.deepEqual([first?.limit, second?.limit], [400, window - 400], `mid-file, with a window of ${window}`)
})

test('requester: on a window of several ranges, ranges are asked for whole and in order; one that does not fit waits for room', () => {
  const requester = new Requester({ initialRate: 20_000, expectedTickMs: 10 })
  const f = requestedFile('f', 100 * 500)
  const whole = (asked: PlannedRequest[]) => asked.map(r => [r.range, r.limit])
  const expected = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => [from + k, f.layout.rangeLength(from + k)])
  const first = requester.plan([f], ['p'], 0)
  const window = requester.peerStats('p')!.control.window
  assert.ok(window >= WHOLE_RANGE_WINDOW * f.layout.rangeLength(0) && window % f.layout.rangeLength(0) !== 0, `a window of ${window} slices`)
  const fitting = Math.floor(window / f.layout.rangeLength(0))
  // No range asked in part: its rest would come after the ranges asked meanwhile.
  assert.deepEqual(whole(first), expected(0, fitting))
  // The first range arrives, over a long round trip that widens the window: the ranges that
  // now fit are asked for, whole, from the next one on, and what room is left waits.
  const r0 = first[0]!
  requester.onReply('p', 'f', r0.range, r0.requestId, r0.limit, 150)
  for (let i = 0; i < r0.limit; i++) { f.have.add(r0.firstSlice + i); requester.onSlice('p', 'f', r0.range, 150) }
  const room = requester.peerStats('p')!.control.window - (fitting - 1) * f.layout.rangeLength(0)
  assert.ok(room >= 2 * f.layout.rangeLength(0) && room % f.layout.rangeLength(0) !== 0, `room for ${room} slices`)
  assert.deepEqual(whole(requester.plan([f], ['p'], 160)), expected(fitting, fitting + Math.floor(room / f.layout.rangeLength(0))), `room for ${room} slices`)
})

/**
 * A fast path (1 ms) to a sender whose event loop comes late: it runs every 1 ms plus a random
 * wait (exponential, `stallMs` on average) and paces with the daemon's pacer; the requester
 * sends requests on a 10 ms tick. Returns the part of the bottleneck the last second delivered.
 */
function lateSender (stallMs: number, catchUpMs: number): number {
  const capacity = 11_000
  const f = requestedFile('f', 200_000)
  const requester = new Requester()
  const pacer = new Pacer(0, catchUpMs)
  const random = seededRandom(11)
  const requests: Array<{ at: number, request: ReturnType<Requester['plan']>[number] }> = []
  const arrivals: Array<{ at: number, range: number, slice?: number, requestId?: number, sending?: number }> = []
  const queued: Array<{ range: number, slice: number }> = []
  const onLink: Array<{ range: number, slice: number }> = []
  let linkCredit = 0
  let senderAt = 0
  let lastSecond = 0
  const totalMs = 3_000
  for (let t = 0; t < totalMs; t++) {
    for (let i = 0; i < arrivals.length;) {
      const a = arrivals[i]!
      if (a.at > t) { i++; continue }
      arrivals.splice(i, 1)
      if (a.slice === undefined) requester.onReply('p', 'f', a.range, a.requestId!, a.sending!, t)
      else if (!f.have.has(a.slice)) {
        f.have.add(a.slice)
        requester.onSlice('p', 'f', a.range, t)
        if (t >= totalMs - 1_000) lastSecond++
      }
    }
    requester.expire(t)
    if (t % 10 === 0) for (const request of requester.plan([f], ['p'], t)) requests.push({ at: t + 0.5, request })
    linkCredit = Math.min(linkCredit + capacity / 1000, capacity / 1000 + 1)
    while (linkCredit >= 1 && onLink.length > 0) { arrivals.push({ at: t + 0.5, ...onLink.shift()! }); linkCredit-- }
    if (t < senderAt) continue
    senderAt = t + 1 + Math.floor(-Math.log(1 - random()) * stallMs)
    for (let i = 0; i < requests.length;) {
      const { at, request } = requests[i]!
      if (at > t) { i++; continue }
      requests.splice(i, 1)
      let sending = 0
      for (let s = request.firstSlice; s < request.firstSlice + request.rangeLength && sending < request.limit; s++) {
        if (!f.have.has(s)) { queued.push({ range: request.range, slice: s }); sending++ }
      }
      arrivals.push({ at: t + 0.5, range: request.range, requestId: request.requestId, sending })
      pacer.setRate(request.paceRate * EVENT_BYTES)
    }
    const n = pacer.take(t, EVENT_BYTES, queued.length)
    for (let k = 0; k < n; k++) onLink.push(queued.shift()!)
  }
  return lastSecond / capacity
}

test('pacer and requester: a sender whose event loop comes late keeps its pace, and is not asked for less and less', () => {
  // Late by 2 ms on average. Making up too little of each wait, it would deliver less than
  // asked; the requester paces by what arrives, so it would ask for less, and less.
  const delivered = lateSender(2, FINE_TIMER_CATCH_UP_MS)
  assert.ok(delivered >= 0.9, `${delivered.toFixed(3)} of the bottleneck`)
})

/** A focused download beside a flow whose window is `windowMs` of the link, on a 512 KB queue (in slices) and a 1 ms path. */
function besideWindowFlow (capacity: number, windowMs: number): { run: PathRun, where: string } {
  const otherWindow = Math.round((capacity * windowMs) / 1000)
  const run = runPath({ character: 'focused', capacity, baseRttMs: 1, queueLimit: 1_024, otherWindow, seconds: 40 })
  const where = `${capacity} slices/s, a window of ${otherWindow}: focused ${(run.deliveredRate / capacity).toFixed(2)}, the other flow ${(run.otherDeliveredRate / capacity).toFixed(2)}, ${run.queueDelayMs.toFixed(1)} ms of queue`
  return { run, where }
}

test('rate control, focused: beside a flow whose window bounds it, it keeps no standing queue that would take that flow\'s rate', () => {
  // BBR sizes its window by a round trip it measured with the queue empty: on a path whose own
  // round trip is under a millisecond, that is its floor of a few dozen packets, a few ms of the
  // link. Every millisecond of queue kept standing beside it takes from its rate, and it never
  // fills a deep queue, so no loss tells of it. 10 and 50 Mbit/s, a 512 KB queue, in slices.
  // (Before the standing-queue cap such a flow kept 0.08 to 0.12 of the link here; now 0.47 to
  // 0.55. Smaller windows: see the next test.)
  for (const capacity of [1_950, 9_750]) {
    for (const windowMs of [8, 12]) {
      const { run, where } = besideWindowFlow(capacity, windowMs)
      assert.ok(run.otherDeliveredRate >= 0.4 * capacity, `the other flow starved: ${where}`)
      assert.ok(run.deliveredRate >= 0.3 * capacity, `the focused download gave up its share: ${where}`)
    }
  }
})

test('rate control, focused: beside a flow whose window is a few ms of the link, the queue it holds stays within two round trips and the in-flight headroom', () => {
  // A window of 3 or 4 ms of the link: its queue sits in the download's minimum round trip,
  // so no probe of the round trip finds that flow (see MinRtt), and only the in-flight cap
  // bounds the queue. Before it, the download held 46 to 52 ms of queue here and the other
  // flow kept 0.07 or 0.08 of the link; with it, 19 to 22 ms and 0.16 to 0.21. At 50 Mbit/s
  // only: at 10 Mbit/s such a window is two packets, below any BBR's floor (and below the
  // cap's, INFLIGHT_FLOOR_SLICES).
  for (const capacity of [9_750]) {
    for (const windowMs of [3, 4]) {
      const { run, where } = besideWindowFlow(capacity, windowMs)
      // The other flow's floor queue (windowMs) counts in the minimum round trip: twice that, the headroom, and a probe's step.
      assert.ok(run.queueDelayMs <= 2 * (1 + windowMs) + INFLIGHT_HEADROOM_MS + 5, `the queue stood long: ${where}`)
      assert.ok(run.otherDeliveredRate >= 0.14 * capacity, `the other flow starved: ${where}`)
      assert.ok(run.deliveredRate >= 0.5 * capacity, `the focused download gave up its share: ${where}`)
    }
  }
})

/** BBR's floor window in slices' worth of bytes on the wire (a 1,514-byte packet is 2.7 slices'). */
const bbrFloorSlices = (packets: number): number => Math.round((packets * 1_514) / FRAME_BYTES_PER_SLICE)

test('rate control, focused: beside BBR at its floor, started once the download knew the path, the queue it holds leaves BBR its share', () => {
  // 50 Mbit/s in slices, a 512 KB queue, a 1 ms path. BBR joins 3 s in, so the download's
  // probes of the round trip find its queue (see MinRtt) and its in-flight cap allows no
  // headroom beyond two minimum round trips. BBR at 10, 14, 18 packets kept 0.36, 0.45, 0.51
  // of the link here with 4 ms of headroom and a floor window of 48 slices; now 0.52, 0.61,
  // 0.68. (Before the cap allowed less headroom beside another flow, 0.34 at 14 packets.)
  for (const packets of [10, 14, 18]) {
    const capacity = 9_750
    const run = runPath({ character: 'focused', capacity, baseRttMs: 1, queueLimit: 1_024, otherWindow: bbrFloorSlices(packets), otherStartMs: 3_000, seconds: 24 })
    const where = `${packets} packets: focused ${(run.deliveredRate / capacity).toFixed(2)}, BBR ${(run.otherDeliveredRate / capacity).toFixed(2)}, ${run.queueDelayMs.toFixed(1)} ms of queue`
    assert.ok(run.otherDeliveredRate >= 0.5 * capacity, `BBR starved: ${where}`)
    assert.ok(run.deliveredRate >= 0.3 * capacity, `the focused download gave up its share: ${where}`)
  }
})

test('rate control, focused: beside BBR at its floor on 10 Mbit/s, whose queue empties only in its own probes of the round trip, the download does not spiral to a trickle', () => {
  // At 10 Mbit/s BBR's floor window is 20 ms of the link or more, a queue that stands by
  // itself. Capping the pace by the in-flight window over that round trip, with the estimate
  // following the pace down, left the download 0.05 of the link (on a real 10 Mbit/s, 512 KB
  // link its estimate sat at 0.05 of the link while BBR ran); the cap's floor window stops that.
  for (const packets of [14, 22]) {
    const capacity = 1_950
    const run = runPath({ character: 'focused', capacity, baseRttMs: 1, queueLimit: 1_024, otherWindow: bbrFloorSlices(packets), otherProbeRtt: { everyMs: 10_000, lastingMs: 200, window: bbrFloorSlices(4) }, seconds: 40 })
    const where = `${packets} packets: focused ${(run.deliveredRate / capacity).toFixed(2)}, BBR ${(run.otherDeliveredRate / capacity).toFixed(2)}, ${run.queueDelayMs.toFixed(1)} ms of queue`
    assert.ok(run.deliveredRate >= 0.15 * capacity, `the focused download spiralled down: ${where}`)
    assert.ok(run.otherDeliveredRate >= 0.4 * capacity, `BBR starved: ${where}`)
  }
})
