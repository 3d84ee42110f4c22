import { test } from 'node:test'
import assert from 'node:assert/strict'
import { makeCluster, makeFile, shareAndRequest, sha256OfFile, sha256OfStream } from './helpers/sim.js'
import { EventType } from '../src/wire/constants.js'
import { QuietError } from '../src/node/errors.js'
import type { Progress } from '../src/node/progress.js'

const MiB = 1024 * 1024

test('a 2 KB file round-trips between two nodes', async () => {
  const c = makeCluster(['alice', 'bob'])
  try {
    const [alice, bob] = c.peers as [typeof c.peers[0], typeof c.peers[0]]
    const source = makeFile(c.root, 'note.txt', 2000)
    const shared = await alice.node.share(source)
    assert.equal(shared.size, 2000)
    assert.equal(shared.mediaType, 'text/plain')
    c.net.step(10) // the descriptor travels
    assert.equal(bob.node.progress(shared.fileId).state, 'available')
    bob.node.requestFile(shared.fileId)
    c.net.runUntil(() => bob.node.progress(shared.fileId).state === 'complete', { maxMs: 5000 })
    const p = bob.node.progress(shared.fileId)
    assert.equal(p.bytesReceived, 2000)
    assert.equal(p.percent, 100)
    assert.equal(p.name, 'note.txt')
    assert.equal(await sha256OfStream(bob.node.readFile(shared.fileId)), await sha256OfFile(source))
  } finally { c.close() }
})

test('a 5 MiB file: progress sampled every tick is monotonic, has speed and ETA, ends at exactly the size', async () => {
  // 40 Mbit/s so the transfer spans about a simulated second of ticks.
  const c = makeCluster(['alice', 'bob'], { latencyMs: 10, bandwidthBps: 40e6 })
  try {
    const { bob, source, fileId } = await shareAndRequest(c, 'clip.bin', 5 * MiB, 7, { priority: 8 })
    const samples: Progress[] = []
    c.net.runUntil(() => bob.node.progress(fileId).state === 'complete', { maxMs: 60_000, onStep: () => samples.push(bob.node.progress(fileId)) })
    assert.ok(samples.length > 50, `expected many ticks, got ${samples.length}`)
    for (let i = 1; i < samples.length; i++) {
      assert.ok(samples[i]!.bytesReceived >= samples[i - 1]!.bytesReceived, 'bytes never go back')
      assert.ok(samples[i]!.percent >= samples[i - 1]!.percent, 'percent never goes back')
      assert.ok(samples[i]!.bytesReceived <= 5 * MiB)
    }
    const active = samples.filter(s => s.state === 'active' && s.bytesReceived > 0)
    assert.ok(active.length > 20)
    for (const s of active.slice(2)) {
      assert.ok(s.speedBytesPerSecond > 0, 'speed while active')
      assert.ok(s.etaSeconds !== null && s.etaSeconds >= 0, 'ETA while active')
    }
    // 40 Mbit/s ≈ 5 MB/s raw; the measured speed must be in that neighbourhood.
    const mid = active[Math.floor(active.length / 2)]!
    assert.ok(mid.speedBytesPerSecond > 2e6 && mid.speedBytesPerSecond < 5.5e6, `speed ${mid.speedBytesPerSecond}`)
    const last = samples[samples.length - 1]!
    assert.equal(last.state, 'complete')
    assert.equal(last.bytesReceived, 5 * MiB)
    assert.equal(last.slicesReceived, last.slicesTotal)
    assert.equal(last.percent, 100)
    assert.equal(await sha256OfStream(bob.node.readFile(fileId)), await sha256OfFile(source))
  } finally { c.close() }
})

test('pause near 50%: once in-flight replies drain nothing more arrives and no request is sent; resume completes', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 10, bandwidthBps: 40e6 })
  try {
    const { alice, bob, source, fileId } = await shareAndRequest(c, 'big.bin', 5 * MiB, 3)
    c.net.runUntil(() => bob.node.progress(fileId).percent >= 50, { maxMs: 60_000 })
    assert.equal(bob.node.pause(fileId).state, 'paused')
    c.net.run(3000) // in-flight replies drain
    const requests = () => c.net.linkCounters(bob.node.publicKey, alice.node.publicKey).byType.get(EventType.syncFile) ?? 0
    const heldSlices = bob.node.progress(fileId).slicesReceived
    const requestsAtPause = requests()
    assert.ok(heldSlices < bob.node.progress(fileId).slicesTotal, 'still partial')
    for (let i = 0; i < 200; i++) {
      c.net.step(10)
      assert.equal(bob.node.progress(fileId).slicesReceived, heldSlices)
      assert.equal(requests(), requestsAtPause)
      assert.equal(bob.node.progress(fileId).state, 'paused')
    }
    assert.equal(bob.node.resume(fileId).state, 'active')
    c.net.runUntil(() => bob.node.progress(fileId).state === 'complete', { maxMs: 60_000 })
    assert.ok(requests() > requestsAtPause)
    assert.equal(await sha256OfStream(bob.node.readFile(fileId)), await sha256OfFile(source))
  } finally { c.close() }
})

test('cancel mid-way deletes the partial data; requesting again starts from zero and completes', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 10, bandwidthBps: 40e6 })
  try {
    const { bob, source, fileId } = await shareAndRequest(c, 'movie.bin', 3 * MiB, 5)
    c.net.runUntil(() => bob.node.progress(fileId).percent >= 40, { maxMs: 60_000 })
    const cancelled = bob.node.cancel(fileId)
    assert.equal(cancelled.state, 'cancelled')
    assert.equal(cancelled.bytesReceived, 0)
    assert.equal(cancelled.slicesReceived, 0)
    assert.equal(cancelled.percent, 0)
    c.net.run(2000) // slices still on the way are dropped, not stored
    assert.equal(bob.node.progress(fileId).slicesReceived, 0)
    assert.equal(bob.node.progress(fileId).state, 'cancelled')
    assert.ok(bob.node.stats().slicesUnsolicited > 0, 'late slices arrived and were dropped')
    assert.throws(() => bob.node.readFile(fileId), (e: unknown) => e instanceof QuietError && e.code === 'not_ready')
    assert.throws(() => bob.node.pause(fileId), (e: unknown) => e instanceof QuietError && e.code === 'conflict')

    bob.node.requestFile(fileId)
    const samples: number[] = []
    c.net.runUntil(() => bob.node.progress(fileId).state === 'complete', { maxMs: 60_000, onStep: () => samples.push(bob.node.progress(fileId).bytesReceived) })
    assert.ok(samples[0]! < 3 * MiB * 0.2, `restarted from zero (first sample ${samples[0]})`)
    assert.equal(await sha256OfStream(bob.node.readFile(fileId)), await sha256OfFile(source))
  } finally { c.close() }
})

test('an expired ttl stops requests', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 10, bandwidthBps: 8e6 })
  try {
    const { alice, bob, fileId } = await shareAndRequest(c, 'slow.bin', 4 * MiB, 1, { ttlMs: 1000 })
    c.net.run(1100)
    assert.equal(bob.node.progress(fileId).state, 'expired')
    c.net.run(3000) // replies already sent drain
    const requests = () => c.net.linkCounters(bob.node.publicKey, alice.node.publicKey).byType.get(EventType.syncFile) ?? 0
    const before = requests()
    const held = bob.node.progress(fileId).slicesReceived
    c.net.run(3000)
    assert.equal(requests(), before, 'no request after expiry')
    assert.equal(bob.node.progress(fileId).slicesReceived, held)
    assert.ok(held < bob.node.progress(fileId).slicesTotal)
    assert.throws(() => bob.node.resume(fileId), (e: unknown) => e instanceof QuietError && e.code === 'conflict')
    bob.node.requestFile(fileId) // asking again, without a ttl, finishes it
    c.net.runUntil(() => bob.node.progress(fileId).state === 'complete', { maxMs: 60_000 })
  } finally { c.close() }
})

test('of two wanted files the higher priority one finishes first', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 10, bandwidthBps: 40e6 })
  try {
    const [alice, bob] = c.peers as [typeof c.peers[0], typeof c.peers[0]]
    const low = await alice.node.share(makeFile(c.root, 'low.bin', 2 * MiB, 1))
    const high = await alice.node.share(makeFile(c.root, 'high.bin', 2 * MiB, 2))
    c.net.step(20)
    bob.node.requestFile(low.fileId, { priority: 2 }) // asked first, but lower priority
    bob.node.requestFile(high.fileId, { priority: 9 })
    let highDoneAt = -1
    let lowDoneAt = -1
    c.net.runUntil(() => lowDoneAt >= 0 && highDoneAt >= 0, {
      maxMs: 60_000,
      onStep: (t) => {
        if (highDoneAt < 0 && bob.node.progress(high.fileId).state === 'complete') highDoneAt = t
        if (lowDoneAt < 0 && bob.node.progress(low.fileId).state === 'complete') lowDoneAt = t
      }
    })
    assert.ok(highDoneAt < lowDoneAt, `high finished at ${highDoneAt}, low at ${lowDoneAt}`)
  } finally { c.close() }
})

test('bad arguments and unknown files get clear errors', async () => {
  const c = makeCluster(['alice'])
  try {
    const node = c.peers[0]!.node
    assert.throws(() => node.requestFile('nothex'), (e: unknown) => e instanceof QuietError && e.code === 'invalid_argument')
    assert.throws(() => node.requestFile('00'.repeat(16)), (e: unknown) => e instanceof QuietError && e.code === 'unknown_file')
    await assert.rejects(node.share('/no/such/file'), (e: unknown) => e instanceof QuietError && e.code === 'not_found')
    const { fileId } = await node.share(makeFile(c.root, 'x.bin', 10))
    assert.throws(() => node.requestFile(fileId, { priority: 11 }), (e: unknown) => e instanceof QuietError && e.code === 'invalid_argument')
    assert.equal(node.requestFile(fileId).state, 'complete', 'the sharer already has it')
    assert.throws(() => node.cancel(fileId), (e: unknown) => e instanceof QuietError && e.code === 'conflict')
  } finally { c.close() }
})
