import { test } from 'node:test'
import assert from 'node:assert/strict'
import { makeCluster, makeFile } from './helpers/sim.js'
import { bloomBuild, bloomHas, bloomSalt, windowBitsFor } from '../src/sync/bloom.js'
import { randomBytes } from '../src/crypto/index.js'

test('a member who joins late receives every shared event by ordinary sync', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 10, loss: 0.05 }, 3)
  try {
    const [alice, bob] = c.peers as [typeof c.peers[0], typeof c.peers[0]]
    alice.node.announce('Alice', [{ host: '127.0.0.1', port: 4000 }])
    bob.node.announce('Bob')
    const { fileId } = await alice.node.share(makeFile(c.root, 'report.pdf', 5000), { message: 'the report' })
    for (let i = 0; i < 300; i++) (i % 2 === 0 ? alice : bob).node.postMessage(`message ${i}`)
    c.net.run(100)
    const carol = c.addPeer('carol').node
    assert.equal(carol.files().length, 0)
    // 301 in all: alice may still be missing some of bob's (5% loss), so her count is no target.
    // Alice's address is an event of its own, which may come after the rest.
    c.net.runUntil(() => carol.messages().length === 301 && carol.files().length === 1 && carol.members().length === 2 && carol.addresses().length === 1, { maxMs: 600_000 })
    assert.equal(carol.messages().length, 301, '300 messages and the one about the report')
    assert.equal(windowBitsFor(306) > 0, true, 'more than one window was walked')
    assert.deepEqual(carol.members().map(m => m.name).sort(), ['Alice', 'Bob'])
    assert.deepEqual(carol.addresses(), [{ publicKey: alice.node.publicKey, host: '127.0.0.1', port: 4000 }])
    assert.equal(carol.messages().find(m => m.text === 'the report')?.fileId, fileId)
    // And the descriptor it got is enough to fetch the file.
    carol.requestFile(fileId)
    c.net.runUntil(() => carol.progress(fileId).state === 'complete', { maxMs: 10_000 })
  } finally { c.close() }
})

test('a member who joins a network of 1500 events catches up in seconds, then asks once a second', () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 20, loss: 0.05 }, 5)
  try {
    const [alice, bob] = c.peers as [typeof c.peers[0], typeof c.peers[0]]
    for (let i = 0; i < 1500; i++) (i % 2 === 0 ? alice : bob).node.postMessage(`message ${i}`)
    c.net.run(100)
    const carol = c.addPeer('carol').node
    const joined = c.net.now
    // One window a second from each of two peers would take well over a minute here.
    c.net.runUntil(() => carol.messages().length === 1500, { maxMs: 20_000 })
    const caughtUpAfterMs = c.net.now - joined
    assert.ok(caughtUpAfterMs < 20_000, `caught up after ${caughtUpAfterMs} ms`)
    // Once a pass over every window came back empty, each peer is asked once a second again.
    c.net.run(5_000)
    const before = carol.stats().syncRequestsSent
    c.net.run(10_000)
    const asked = carol.stats().syncRequestsSent - before
    assert.ok(asked >= 18 && asked <= 22, `${asked} sync requests in 10 s to two peers`)
  } finally { c.close() }
})

test('bloom filters: no false negatives, and a fresh salt moves the false positives', () => {
  const ids = Array.from({ length: 100 }, () => randomBytes(16))
  const others = Array.from({ length: 2000 }, () => randomBytes(16))
  const pk = randomBytes(32)
  const saltA = bloomSalt(pk, 3, 5, randomBytes(16))
  const saltB = bloomSalt(pk, 3, 5, randomBytes(16))
  const a = bloomBuild(saltA, ids)
  const b = bloomBuild(saltB, ids)
  assert.ok(ids.every(x => bloomHas(a, saltA, x) && bloomHas(b, saltB, x)))
  const fpA = others.filter(x => bloomHas(a, saltA, x))
  const fpB = others.filter(x => bloomHas(b, saltB, x))
  // 100 ids in 512 bits with k = 5: about 9.4% false positives in theory.
  assert.ok(fpA.length < others.length * 0.15, `false positive rate ${fpA.length / others.length}`)
  assert.ok(fpA.filter(x => fpB.includes(x)).length < Math.max(3, fpA.length / 4), 'false positives differ between salts')
})
