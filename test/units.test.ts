import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Requester } from '../src/sync/requester.js'
import { planResponse } from '../src/sync/responder.js'
import { Bitset } from '../src/sync/bitset.js'
import { SpeedMeter } from '../src/sync/speed.js'
import { FileLayout } from '../src/files/windows.js'
import Database from 'better-sqlite3'
import { Store } from '../src/store/store.js'
import { MIGRATIONS } from '../src/store/schema.js'
import type { RequestableFile } from '../src/sync/requester.js'
import { sleep } from '../src/cli/processes.js'
import { WindowHasher, rootHashOf } from '../src/files/hashing.js'
import { CiphertextVerifier } from '../src/files/verify.js'
import { SLICE_RECORD_BYTES } from '../src/wire/slice.js'
import { EVENTS_INTERVAL_MS, ProgressFeed } from '../src/http/progress-feed.js'
import type { Progress } from '../src/node/progress.js'
import { DaemonVoice } from '../src/daemon/voice.js'
import type { Node } from '../src/node/node.js'

function file (key: string, slices: number, have = new Bitset(slices)): RequestableFile & { have: Bitset } {
  const layout = new FileLayout(slices)
  return { key, layout, have, missing: (r) => layout.rangeLength(r) - have.countIn(layout.rangeStart(r), layout.rangeLength(r)) }
}

test('requester fills the budget from the highest-priority file first, ranges in order', () => {
  const requester = new Requester()
  const high = file('high', 2000)
  const low = file('low', 2000)
  const planned = requester.plan([high, low], ['p'], 0)
  assert.ok(planned.length > 0)
  assert.ok(planned.every(r => r.fileKey === 'high'), 'the high-priority file uses the whole budget')
  assert.deepEqual(planned.map(r => r.range), planned.map((_, i) => i), 'ranges in order')
  const asked = planned.reduce((n, r) => n + r.limit, 0)
  assert.ok(asked <= requester.peerStats('p')!.control.window + 512)
  assert.deepEqual(requester.plan([high, low], ['p'], 1), [], 'nothing more while the budget is used')
})

test('requester asks only for missing slices and frees the range when all announced slices arrived', () => {
  const requester = new Requester()
  const f = file('f', 300)
  for (let i = 0; i < 300; i += 2) f.have.add(i)
  const [request] = requester.plan([f], ['p'], 0)
  assert.ok(request !== undefined)
  assert.equal(request.limit, 150)
  requester.onReply('p', 'f', request.range, request.requestId, 2, 5)
  assert.equal(requester.inflightCount('f'), 1)
  requester.onSlice('p', 'f', request.range, 6)
  requester.onSlice('p', 'f', request.range, 7)
  assert.equal(requester.inflightCount('f'), 0)
})

test('requester times out quiet requests and backs off from a peer that has nothing', () => {
  const requester = new Requester({ minTimeoutMs: 200, lackBackoffMs: 3000, expectedTickMs: 10_000 })
  const f = file('f', 100)
  const [first] = requester.plan([f], ['p'], 0)
  assert.equal(requester.expire(100), 0)
  assert.equal(requester.expire(1000), 1, 'no reply at all: timed out after the initial timeout')
  const [second] = requester.plan([f], ['p'], 1000)
  assert.ok(first !== undefined && second !== undefined && second.requestId !== first.requestId)
  requester.onReply('p', 'f', second.range, second.requestId, 0, 1010)
  assert.deepEqual(requester.plan([f], ['p'], 1020), [], 'peer said it has none of that range')
  assert.equal(requester.saidLacking('p', 'f', 1020), true)
  assert.equal(requester.saidLacking('q', 'f', 1020), false, 'only the peer that said so')
  requester.expire(4100)
  assert.equal(requester.saidLacking('p', 'f', 4100), false, 'forgotten after the back-off')
  assert.equal(requester.plan([f], ['p'], 4100).length, 1, 'asked again after the back-off')
  assert.equal(requester.plan([f], ['p', 'q'], 4100).length, 0, 'at most one request per range')
})

test('requester does not hold its own stall against a peer', () => {
  const requester = new Requester({ minTimeoutMs: 200, expectedTickMs: 10 })
  const f = file('f', 100)
  requester.plan([f], ['p'], 0)
  for (let t = 10; t <= 100; t += 10) assert.equal(requester.expire(t), 0)
  // The node was blocked for 2 s: the answer may be unread in the socket.
  assert.equal(requester.expire(2100), 0, 'a local stall is not a timeout')
  let t = 2100
  while (requester.expire(t += 10) === 0) assert.ok(t < 5000)
  assert.ok(t >= 2100 + 200 - 100, `timed out ${t - 2100} ms after the stall`)
})

test('a request the peer began to answer is given up once its slices stop, one never answered only after the timeout', () => {
  const requester = new Requester({ minTimeoutMs: 1000, drainGraceMs: 30, expectedTickMs: 10, initialRate: 20_000 })
  const f = file('f', 2000)
  const planned = requester.plan([f], ['p'], 0)
  const answered = planned[0]!
  assert.ok(planned.length >= 2)
  requester.onReply('p', 'f', answered.range, answered.requestId, answered.limit, 5)
  for (let i = 0; i < answered.limit - 3; i++) requester.onSlice('p', 'f', answered.range, 6)
  // Ticks every 10 ms from t = 10; returns how many requests were given up up to `until`.
  let t = 0
  const tickUntil = (until: number): number => { let n = 0; while (t + 10 <= until) { t += 10; n += requester.expire(t) } return n }
  assert.equal(tickUntil(30), 0, 'quiet for 24 ms: still within the grace')
  assert.equal(tickUntil(40), 1, 'quiet for 34 ms: drained, the last three slices are lost')
  assert.equal(requester.inflightCount(), planned.length - 1)
  assert.equal(tickUntil(1000), 0, 'the unanswered ones wait for the timeout, counted from the peer\'s last slice (t = 6)')
  assert.equal(tickUntil(1010), planned.length - 1)
  assert.equal(requester.inflightCount(), 0)
})

test('responder sends what it has and the requester lacks, up to the limit', () => {
  const have = new Bitset(100)
  for (const i of [10, 11, 12, 13, 20]) have.add(i)
  const requesterHas = new Bitset(100)
  requesterHas.add(11)
  const request = { fileId: new Uint8Array(16), requestId: 1, firstSlice: 10, rangeLength: 20, limit: 3, bitmap: requesterHas.rangeBitmap(10, 20), pace: 0 }
  const plan = planResponse(request, have, 100)
  assert.deepEqual(plan.send, [10, 12, 13])
  assert.deepEqual(plan.responderBitmap, have.rangeBitmap(10, 20))
  assert.deepEqual(planResponse(request, null, 0).send, [])
})

test('a database made by the first schema keeps its addresses when migrated, and later announcements replace them', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-store-'))
  try {
    const file = path.join(dir, 'db.sqlite')
    const old = new Database(file)
    old.exec(MIGRATIONS[0]!)
    old.pragma('user_version = 1')
    const pk = new Uint8Array(32).fill(7)
    old.prepare('INSERT INTO addresses (peer_pk, host, port, announced_at_ms) VALUES (?, ?, ?, ?)').run(pk, '10.0.0.1', 7000, 100)
    old.close()
    const store = Store.open(file)
    try {
      assert.equal(store.schemaVersion, MIGRATIONS.length)
      const listed = (): string[] => store.listAddresses().map(a => `${a.host}:${a.port}`)
      assert.deepEqual(listed(), ['10.0.0.1:7000'])
      store.putAddress(pk, '10.0.0.2', 7000, 200)
      store.putAddress(pk, '203.0.113.5', 7000, 200)
      store.putAddress(pk, '10.0.0.9', 7000, 150) // older than what is held: ignored
      assert.deepEqual(listed(), ['10.0.0.2:7000', '203.0.113.5:7000'])
    } finally { store.close() }
  } finally { fs.rmSync(dir, { recursive: true, force: true }) }
})

test('speed is bytes over the recent window and falls to zero when arrivals stop', () => {
  const meter = new SpeedMeter(2000)
  for (let t = 0; t <= 4000; t += 10) meter.add(10_000, t)
  assert.ok(Math.abs(meter.rate(4000) - 1_000_000) < 20_000, `rate ${meter.rate(4000)}`)
  assert.equal(meter.rate(7000), 0)
})

test('store migrates an empty file once, and reopening keeps data', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-store-'))
  try {
    const file = path.join(dir, 'db.sqlite')
    const store = Store.open(file)
    assert.equal(store.schemaVersion, MIGRATIONS.length)
    assert.equal(store.appendEvent(new Uint8Array(16).fill(1), 5, null, new Uint8Array(512), 0), true)
    assert.equal(store.appendEvent(new Uint8Array(16).fill(1), 5, null, new Uint8Array(512), 0), false, 'an event is logged once')
    store.close()
    const again = Store.open(file)
    assert.equal(again.schemaVersion, MIGRATIONS.length)
    assert.equal([...again.events()].length, 1)
    again.close()
  } finally { fs.rmSync(dir, { recursive: true, force: true }) }
})

test('progress feed: one look at the files per interval however many streams are open; only changes are written; idle when none is open', async () => {
  let looks = 0
  let percent = 0
  const feed = new ProgressFeed(() => { looks++; return [{ fileId: 'a', percent } as unknown as Progress] })
  const received = Array.from({ length: 50 }, () => [] as string[])
  const unsubscribe = received.map(chunks => feed.subscribe(chunk => chunks.push(chunk)))
  const looksAtStart = looks
  await sleep(EVENTS_INTERVAL_MS * 4 + 100)
  assert.ok(looks - looksAtStart <= 5, `${looks - looksAtStart} looks in 4 intervals for 50 streams`)
  assert.ok(received.every(chunks => chunks.length === 1 && chunks[0]!.startsWith('event: progress')), 'only the first snapshot while nothing changed')
  percent = 50
  await sleep(EVENTS_INTERVAL_MS + 100)
  assert.ok(received.every(chunks => chunks.length === 2 && chunks[1]!.includes('"percent":50')))
  for (const stop of unsubscribe) stop()
  const looksAtEnd = looks
  await sleep(EVENTS_INTERVAL_MS * 2 + 50)
  assert.equal(looks, looksAtEnd, 'no work with no stream open')
})

test('whole-file check: window hashes over the records, the root over them; one changed byte fails it', () => {
  const slices = 250
  const records = new Uint8Array(slices * SLICE_RECORD_BYTES)
  for (let i = 0; i < records.length; i++) records[i] = (i * 13) & 0xff
  const hasher = new WindowHasher(slices)
  hasher.update(records)
  assert.equal(hasher.windowsDone, 4)
  const root = rootHashOf(slices * 450, hasher.hashes)
  const good = new CiphertextVerifier(slices, slices * 450)
  good.update(records.subarray(0, 7 * SLICE_RECORD_BYTES))
  assert.deepEqual(good.check(root), { ok: false, reason: 'records are missing' })
  good.update(records.subarray(7 * SLICE_RECORD_BYTES))
  assert.deepEqual(good.check(root), { ok: true })
  const damaged = records.slice(); damaged[123 * SLICE_RECORD_BYTES + 5]! ^= 1
  const bad = new CiphertextVerifier(slices, slices * 450)
  bad.update(damaged)
  assert.deepEqual(bad.check(root), { ok: false, reason: 'root hash does not match the ciphertext' })
})

test('daemon voice: a peer\'s file listed and fetched between two looks is said as theirs, and as downloaded', () => {
  const lines: string[] = []
  const voice = new DaemonVoice('normal', line => lines.push(line))
  let files: Array<Partial<Progress>> = []
  const sharers = new Map([['mine', 'me'], ['theirs', 'alice-key']])
  const node = {
    publicKey: 'me',
    members: () => [{ publicKey: 'alice-key', name: 'alice' }],
    files: () => files,
    descriptorInfo: (fileId: string) => ({ sharedBy: sharers.get(fileId)! })
  } as unknown as Node
  voice.look(node, new Map())
  files = [
    { fileId: 'mine', name: 'own.txt', bytesTotal: 10, state: 'complete' },
    { fileId: 'theirs', name: 'notes.txt', bytesTotal: 20, state: 'complete' }
  ]
  voice.look(node, new Map())
  assert.deepEqual(lines, [
    'quiet-files: shared own.txt (10 B, mine)',
    'quiet-files: alice shared notes.txt (20 B, theirs)',
    'quiet-files: downloaded notes.txt, verified'
  ])
})
