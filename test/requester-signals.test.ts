import { test } from 'node:test'
import assert from 'node:assert/strict'
import { MIN_REQUEST_SLICES, Requester } from '../src/sync/requester.js'
import { requestedFile } from './helpers/requested-file.js'

/** What the requester tells a peer, and what its path's control hears. */

test('requester: a pace lowered while the window is full reaches the peer at once, in one small request past the window', () => {
  const requester = new Requester({ initialRate: 20_000, expectedTickMs: 10 })
  const f = requestedFile('f', 100_000)
  const first = requester.plan([f], ['p'], 0)
  const pace = first[0]!.paceRate
  assert.equal(requester.plan([f], ['p'], 10).length, 0, 'the window is full: nothing more is asked')
  // A download cap of a quarter of the pace: the window shrinks far below what is in flight.
  requester.setDownloadCap(pace / 4)
  const now = requester.plan([f], ['p'], 20)
  assert.equal(now.length, 1, 'the lowered pace goes at once')
  assert.equal(now[0]!.paceRate, pace / 4)
  assert.ok(now[0]!.limit <= MIN_REQUEST_SLICES, `${now[0]!.limit} slices asked past the window`)
  // Sent once: the next tick asks nothing while the window stays full.
  assert.equal(requester.plan([f], ['p'], 30).length, 0)
})

test('requester: a request never answered, then overtaken, is one datagram lost to the path, not all the slices it asked for', () => {
  const requester = new Requester({ initialRate: 20_000, expectedTickMs: 10 })
  const f = requestedFile('f', 100_000)
  const [lost, ...others] = requester.plan([f], ['p'], 0)
  assert.ok(lost !== undefined && lost.limit > 100)
  const heard: number[] = []
  const control = requester.peerStats('p')!.control
  const onLost = control.onLost.bind(control)
  control.onLost = (n, tMs) => { heard.push(n); onLost(n, tMs) }
  const answer = (request: { range: number, requestId: number, limit: number }, tMs: number): void => {
    requester.onReply('p', 'f', request.range, request.requestId, request.limit, tMs)
    for (let i = 0; i < request.limit; i++) requester.onSlice('p', 'f', request.range, tMs)
  }
  // The first request never reaches the peer. The others sent with it are answered in full,
  // and so is one sent after it, which overtakes it.
  for (const request of others) answer(request, 5)
  const [later] = requester.plan([f], ['p'], 10)
  assert.ok(later !== undefined)
  answer(later, 13)
  let t = 13
  while (requester.givenUpBy.overtaken === 0 && t < 1_000) requester.expire(t += 10)
  assert.equal(requester.givenUpBy.overtaken, 1)
  assert.deepEqual(heard, [1], `the path heard of ${heard.join(', ')} lost; the request asked for ${lost.limit}`)
})

test('requester: a request for a file\'s last slice, sent after one that got no answer, shows that one lost once its slice came', () => {
  const requester = new Requester({ initialRate: 20_000, expectedTickMs: 10 })
  const big = requestedFile('big', 400)
  const [lost] = requester.plan([big], ['p'], 0)
  assert.ok(lost !== undefined)
  // Another file misses one slice only: asked for a tick later, and answered at once.
  const last = requestedFile('last', 400)
  for (let i = 1; i < 400; i++) last.have.add(i)
  const [one] = requester.plan([big, last], ['p'], 10)
  assert.ok(one !== undefined && one.limit === 1 && one.fileKey === 'last')
  requester.onReply('p', 'last', one.range, one.requestId, 1, 110)
  requester.onSlice('p', 'last', one.range, 111)
  // The peer answers in order: the earlier request, still unanswered, never reached it.
  requester.expire(120)
  assert.equal(requester.givenUpBy.overtaken, 1, 'found by the later answer, not by a timeout')
})

test('requester: a peer\'s only request, never answered, is given up after two round trips; requests among others still wait out the floor', () => {
  /** Ms from sending requests for one missing slice of each of `files` to the first given up, on a path of 20 ms. */
  const givenUpAfter = (files: number): number => {
    const requester = new Requester({ initialRate: 20_000, expectedTickMs: 10 })
    // A first file the peer answers in full: the round trip is known.
    const known = requestedFile('known', 2_000)
    for (const r of requester.plan([known], ['p'], 0)) {
      requester.onReply('p', 'known', r.range, r.requestId, r.limit, 20)
      for (let i = 0; i < r.limit; i++) requester.onSlice('p', 'known', r.range, 20)
      for (let s = r.firstSlice; s < r.firstSlice + r.rangeLength; s++) known.have.add(s)
    }
    // Files that each lack their first slice: one request each, none of them answered.
    const lacking = Array.from({ length: files }, (_, i) => {
      const f = requestedFile(`lacking${i}`, 400)
      for (let s = 1; s < 400; s++) f.have.add(s)
      return f
    })
    const sent = requester.plan(lacking, ['p'], 30)
    assert.equal(sent.length, files)
    let t = 30
    while (requester.givenUpBy.timedOut === 0 && t < 2_000) requester.expire(t += 10)
    return t - 30
  }
  const alone = givenUpAfter(1)
  assert.ok(alone <= 60, `a peer's only request was given up after ${alone} ms`)
  const amongOthers = givenUpAfter(2)
  assert.ok(amongOthers >= 250, `one of two was given up after ${amongOthers} ms`)
})
