import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Database from 'better-sqlite3'
import { makeCluster, makeFile, sha256OfFile, sha256OfStream } from './helpers/sim.js'
import { Node } from '../src/node/node.js'
import { QuietError } from '../src/node/errors.js'
import { randomBytes, signKeyPair } from '../src/crypto/index.js'
import { fromHex } from '../src/bytes.js'
import { EventType, decodeDescriptorPlaintext, encodeDescriptorPlaintext, encodeSignedEvent, openContentPayload, openSignedEvent, sealContentPayload } from '../src/wire/index.js'

const MiB = 1024 * 1024

test('reprojection: dropping every projection and rebuilding it from the log gives the same state', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 10, bandwidthBps: 40e6 })
  try {
    const [alice, bob] = c.peers as [typeof c.peers[0], typeof c.peers[0]]
    alice.node.announce('Alice', [{ host: '10.0.0.1', port: 7000 }])
    bob.node.announce('Bob')
    c.net.run(10)
    // The newer announcement wins, with every address announced in it.
    alice.node.announce('Alice Liddell', [{ host: '10.0.0.2', port: 7001 }, { host: '203.0.113.5', port: 7001 }])
    const whole = await alice.node.share(makeFile(c.root, 'whole.bin', 300_000, 1), { message: 'the whole thing' })
    bob.node.postMessage('thanks')
    const partial = await alice.node.share(makeFile(c.root, 'partial.bin', 2 * MiB, 2))
    const cancelled = await alice.node.share(makeFile(c.root, 'cancelled.bin', 1 * MiB, 3))
    const expiring = await alice.node.share(makeFile(c.root, 'expiring.bin', 1 * MiB, 4))
    const empty = await alice.node.share(makeFile(c.root, 'empty.txt', 0, 5))
    const untouched = await alice.node.share(makeFile(c.root, 'untouched.bin', 1000, 6))
    c.net.step(20)
    bob.node.requestFile(whole.fileId, { priority: 9 })
    bob.node.requestFile(empty.fileId)
    c.net.runUntil(() => bob.node.progress(whole.fileId).state === 'complete', { maxMs: 30_000 })
    bob.node.requestFile(partial.fileId, { priority: 7 })
    c.net.runUntil(() => bob.node.progress(partial.fileId).percent > 30, { maxMs: 30_000 })
    bob.node.pause(partial.fileId)
    bob.node.requestFile(cancelled.fileId, { priority: 3 })
    c.net.run(100)
    bob.node.cancel(cancelled.fileId)
    // The link is cut while the last request runs out its ttl.
    c.net.setLink(alice.node.publicKey, bob.node.publicKey, { up: false })
    bob.node.requestFile(expiring.fileId, { priority: 2, ttlMs: 50 })
    c.net.run(2000)
    c.net.setLink(alice.node.publicKey, bob.node.publicKey, { up: true })
    assert.equal(bob.node.progress(expiring.fileId).state, 'expired')
    assert.equal(bob.node.progress(empty.fileId).state, 'complete')

    for (const node of [alice.node, bob.node]) {
      const before = node.dumpProjections()
      const progressBefore = node.files()
      node.reproject()
      assert.deepEqual(node.dumpProjections(), before)
      assert.deepEqual(node.files().map(p => ({ ...p, speedBytesPerSecond: 0, etaSeconds: null })),
        progressBefore.map(p => ({ ...p, speedBytesPerSecond: 0, etaSeconds: null })))
    }
    assert.deepEqual(bob.node.members().map(m => m.name).sort(), ['Alice Liddell', 'Bob'])
    assert.deepEqual(bob.node.addresses().map(a => `${a.host}:${a.port}`), ['10.0.0.2:7001', '203.0.113.5:7001'])
    assert.deepEqual(bob.node.messages().map(m => m.text).sort(), ['thanks', 'the whole thing'])
    const states = Object.fromEntries(bob.node.files().map(p => [p.name, p.state]))
    assert.deepEqual(states, {
      'whole.bin': 'complete', 'partial.bin': 'paused', 'cancelled.bin': 'cancelled',
      'expiring.bin': 'expired', 'empty.txt': 'complete', 'untouched.bin': 'available'
    })
    assert.equal(untouched.size, 1000)
    // The rebuilt node carries on.
    bob.node.resume(partial.fileId)
    c.net.runUntil(() => bob.node.progress(partial.fileId).state === 'complete', { maxMs: 60_000 })
    assert.equal(await sha256OfStream(bob.node.readFile(partial.fileId)), await sha256OfFile(`${c.root}/partial.bin`))
  } finally { c.close() }
})

test('the simulated network replays a run exactly from its seed', async () => {
  const run = async (seed: number): Promise<string> => {
    const c = makeCluster(['alice', 'bob'], { latencyMs: 15, jitterMs: 10, loss: 0.1, duplicate: 0.05, reorder: 0.1 }, seed)
    try {
      const [alice, bob] = c.peers as [typeof c.peers[0], typeof c.peers[0]]
      const { fileId } = await alice.node.share(makeFile(c.root, 'f.bin', 500_000, 1))
      bob.node.ingestEvent(alice.node.descriptorEvent(fileId))
      bob.node.requestFile(fileId)
      const timeline: number[] = []
      c.net.runUntil(() => bob.node.progress(fileId).state === 'complete', { maxMs: 60_000, onStep: () => timeline.push(bob.node.progress(fileId).slicesReceived) })
      const link = c.net.linkCounters(alice.node.publicKey, bob.node.publicKey)
      return JSON.stringify({ timeline, sent: link.sent, dropped: link.dropped, stats: bob.node.stats() })
    } finally { c.close() }
  }
  const first = await run(7)
  assert.equal(await run(7), first)
  assert.notEqual(await run(8), first)
})

test('files shared before file hashing v2 are dropped once, by name, and the rest of the store stays whole', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-legacy-'))
  try {
    const identity = signKeyPair()
    const networkKey = randomBytes(32)
    let node = Node.open({ dataDir: dir, identity, networkKey })
    const kept = await node.share(makeFile(dir, 'kept.bin', 5000, 1))
    const old = await node.share(makeFile(dir, 'old.bin', 5000, 2))
    node.close()
    // 'old' as the first hashing made it: its id does not commit to its descriptor's fields.
    const db = new Database(path.join(dir, 'quiet-files.db'))
    const select = db.prepare('SELECT body FROM events WHERE file_id = ? AND type = ?').pluck()
    const body = select.get(fromHex(old.fileId), EventType.attachmentDescriptor) as Uint8Array
    const { header, payload } = openSignedEvent(body)
    const descriptor = decodeDescriptorPlaintext(openContentPayload(body, payload, networkKey))
    descriptor.rootHash[0]! ^= 1
    const legacy = encodeSignedEvent(header, sealContentPayload(header, encodeDescriptorPlaintext(descriptor), networkKey), identity.secretKey)
    db.prepare('UPDATE events SET body = ? WHERE file_id = ? AND type = ?').run(legacy, fromHex(old.fileId), EventType.attachmentDescriptor)
    db.prepare("UPDATE meta SET value = 1 WHERE key = 'file_hashing'").run()
    db.close()

    node = Node.open({ dataDir: dir, identity, networkKey })
    assert.deepEqual(node.droppedLegacyFiles, ['old.bin'])
    assert.throws(() => node.progress(old.fileId), (e: unknown) => e instanceof QuietError && e.code === 'unknown_file')
    assert.equal(fs.existsSync(path.join(dir, 'slices', `${old.fileId}.slc`)), false)
    assert.equal(node.progress(kept.fileId).state, 'complete')
    node.reproject()
    assert.equal(node.progress(kept.fileId).state, 'complete')
    assert.equal(await sha256OfStream(node.readFile(kept.fileId)), await sha256OfFile(path.join(dir, 'kept.bin')))
    node.close()
    node = Node.open({ dataDir: dir, identity, networkKey })
    assert.deepEqual(node.droppedLegacyFiles, [], 'only once')
    node.close()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
