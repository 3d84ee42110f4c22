import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { makeCluster, makeFile, shareAndRequest, partialsOf, sha256OfFile } from './helpers/sim.js'
import { QuietError } from '../src/node/errors.js'
import { KEPT_FINISHED_SAVES } from '../src/node/node.js'

const MiB = 1024 * 1024
const isCode = (code: string) => (e: unknown) => e instanceof QuietError && e.code === code

test('a save fills a partial file as slices arrive and moves it into place only once verified', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 5, bandwidthBps: 40e6 })
  try {
    const { bob, source, fileId } = await shareAndRequest(c, 'film.bin', 3 * MiB + 123, 21)
    const out = path.join(c.root, 'saved', 'film.bin')
    fs.mkdirSync(path.dirname(out))
    assert.deepEqual(bob.node.save(fileId, out).saving, { path: out, state: 'writing', error: null })
    c.net.runUntil(() => bob.node.progress(fileId).percent >= 50, { maxMs: 60_000 })
    assert.equal(fs.existsSync(out), false, 'nothing at the target before verification')
    assert.equal(fs.statSync(partialsOf(out)[0]!).size, 3 * MiB + 123, 'the partial file has the final size')
    c.net.runUntil(() => bob.node.progress(fileId).saving?.state === 'saved', { maxMs: 60_000 })
    assert.equal(bob.node.progress(fileId).state, 'complete')
    assert.equal(await sha256OfFile(out), await sha256OfFile(source))
    assert.deepEqual(partialsOf(out), [])
  } finally { c.close() }
})

test('saves of one file to two paths go on side by side, and each says how it ended', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 5, bandwidthBps: 40e6 })
  try {
    const { bob, source, fileId } = await shareAndRequest(c, 'twice.bin', 2 * MiB + 7, 23)
    const first = path.join(c.root, 'first.bin')
    const second = path.join(c.root, 'second.bin')
    bob.node.save(fileId, first)
    c.net.runUntil(() => bob.node.progress(fileId).percent >= 30, { maxMs: 60_000 })
    bob.node.save(fileId, second)
    assert.deepEqual(bob.node.save(fileId, second).saves.map(s => s.path), [first, second], 'asking again for a path being written changes nothing')
    c.net.runUntil(() => bob.node.progress(fileId).saves.every(s => s.state === 'saved'), { maxMs: 60_000 })
    const expected = await sha256OfFile(source)
    assert.equal(await sha256OfFile(first), expected)
    assert.equal(await sha256OfFile(second), expected)
    assert.deepEqual(bob.node.progress(fileId).saving, { path: second, state: 'saved', error: null }, 'saving is the latest')
    // Saving again to a finished path replaces that record; the list stays short.
    fs.rmSync(first)
    bob.node.save(fileId, first)
    assert.deepEqual(bob.node.progress(fileId).saves.map(s => [s.path, s.state]), [[second, 'saved'], [first, 'writing']])
    for (let i = 0; i < 6; i++) bob.node.save(fileId, path.join(c.root, `copy-${i}.bin`))
    c.net.runUntil(() => bob.node.progress(fileId).saves.every(s => s.state === 'saved'), { maxMs: 60_000 })
    bob.node.save(fileId, path.join(c.root, 'one-more.bin'))
    assert.equal(bob.node.progress(fileId).saves.length, KEPT_FINISHED_SAVES + 1, 'only the last few finished saves are remembered')
    assert.equal(await sha256OfFile(path.join(c.root, 'copy-5.bin')), expected)
  } finally { c.close() }
})

test('a save begun mid-download or after completion copies the slices that came before it from the store', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 5, bandwidthBps: 40e6 })
  try {
    const { bob, source, fileId } = await shareAndRequest(c, 'late.bin', 2 * MiB, 22)
    c.net.runUntil(() => bob.node.progress(fileId).percent >= 40, { maxMs: 60_000 })
    const midway = path.join(c.root, 'midway.bin')
    bob.node.save(fileId, midway)
    c.net.runUntil(() => bob.node.progress(fileId).saving?.state === 'saved', { maxMs: 60_000 })
    assert.equal(await sha256OfFile(midway), await sha256OfFile(source))

    // After a restart the file is only in the store; a save alone still finds it.
    bob.node.close()
    c.net.remove(bob.node.publicKey)
    const reopened = c.addPeer('bob').node
    const after = path.join(c.root, 'after.bin')
    assert.equal(reopened.save(fileId, after).saving?.state, 'writing')
    // Copied from the store in bounded steps, so a big file never stalls the node for long.
    const ms = c.net.runUntil(() => reopened.progress(fileId).saving?.state === 'saved', { maxMs: 1000 })
    assert.ok(ms >= 20, `more than one step for 4661 slices (${ms} ms)`)
    assert.equal(await sha256OfFile(after), await sha256OfFile(source))
  } finally { c.close() }
})

test('saves refuse relative paths, missing directories and existing files unless told to overwrite', async () => {
  const c = makeCluster(['alice', 'bob'])
  try {
    const { bob, source, fileId } = await shareAndRequest(c, 'small.txt', 5000, 23)
    assert.throws(() => bob.node.save(fileId, 'relative.txt'), isCode('invalid_argument'))
    assert.throws(() => bob.node.save(fileId, path.join(c.root, 'no-such-dir', 'x.txt')), isCode('invalid_argument'))
    const existing = makeFile(c.root, 'existing.txt', 10, 1)
    assert.throws(() => bob.node.save(fileId, existing), isCode('conflict'))
    assert.throws(() => bob.node.save('ab'.repeat(16), path.join(c.root, 'y.txt')), isCode('unknown_file'))
    bob.node.save(fileId, existing, { overwrite: true })
    c.net.runUntil(() => bob.node.progress(fileId).saving?.state === 'saved', { maxMs: 10_000 })
    assert.equal(await sha256OfFile(existing), await sha256OfFile(source))
  } finally { c.close() }
})

test('cancelling a download ends its save and removes the partial file', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 10, bandwidthBps: 20e6 })
  try {
    const { bob, fileId } = await shareAndRequest(c, 'gone.bin', 3 * MiB, 24)
    const out = path.join(c.root, 'gone.bin.out')
    bob.node.save(fileId, out)
    c.net.runUntil(() => bob.node.progress(fileId).percent >= 30, { maxMs: 60_000 })
    bob.node.cancel(fileId)
    assert.deepEqual(bob.node.progress(fileId).saving, { path: out, state: 'failed', error: 'the download was cancelled' })
    assert.deepEqual(partialsOf(out), [])
    assert.equal(fs.existsSync(out), false)
  } finally { c.close() }
})

test('a save still going when the node stops is taken up again when it reopens, and once ended it is not', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 5, bandwidthBps: 40e6 })
  try {
    const { bob, source, fileId } = await shareAndRequest(c, 'across.bin', 3 * MiB + 5, 27)
    const out = path.join(c.root, 'across-saved.bin')
    const gone = path.join(c.root, 'gone', 'never.bin')
    fs.mkdirSync(path.dirname(gone))
    bob.node.save(fileId, out)
    bob.node.save(fileId, gone)
    c.net.runUntil(() => bob.node.progress(fileId).percent >= 40, { maxMs: 60_000 })
    c.net.step(10)
    bob.node.close()
    c.net.remove(bob.node.publicKey)
    // One target's directory disappears while the node is down: that save cannot start again.
    fs.rmSync(path.dirname(gone), { recursive: true })
    const bob2 = c.addPeer('bob').node
    assert.deepEqual(bob2.progress(fileId).saves, [{ path: out, state: 'writing', error: null }])
    assert.equal(partialsOf(out).length, 1, 'the last run\'s partial file was removed for the new one')
    c.net.runUntil(() => bob2.progress(fileId).saving?.state === 'saved', { maxMs: 60_000 })
    assert.equal(await sha256OfFile(out), await sha256OfFile(source))
    assert.deepEqual(partialsOf(out), [])
    bob2.close()
    c.net.remove(bob2.publicKey)
    // Even with the saved file moved away, a save that ended is not started again.
    fs.renameSync(out, `${out}.moved`)
    const bob3 = c.addPeer('bob').node
    assert.deepEqual(bob3.progress(fileId).saves, [], 'a save that ended is not taken up again')
    assert.deepEqual(partialsOf(out), [])
  } finally { c.close() }
})

test('a save never writes through a link: planted at the partial name, at the target, or swapped in while it fills', async () => {
  const c = makeCluster(['alice', 'bob'], { latencyMs: 5, bandwidthBps: 40e6 })
  try {
    const { bob, source, fileId } = await shareAndRequest(c, 'linked.bin', 2 * MiB + 9, 29)
    const victim = makeFile(c.root, 'victim.txt', 1000, 3)
    const victimHash = await sha256OfFile(victim)
    const out = path.join(c.root, 'linked.out')
    // A link where the partial file used to be named: never followed.
    fs.symlinkSync(victim, out + '.qf-partial')
    bob.node.save(fileId, out)
    // A link at the target: refused without force; with force the link itself is replaced.
    const linkedTarget = path.join(c.root, 'points-at-victim')
    fs.symlinkSync(victim, linkedTarget)
    assert.throws(() => bob.node.save(fileId, linkedTarget), isCode('conflict'))
    assert.throws(() => bob.node.save(fileId, linkedTarget, { overwrite: true }), isCode('conflict'))
    // A link that appears at the target while the save fills: the save fails, the victim is untouched.
    const late = path.join(c.root, 'late.out')
    bob.node.save(fileId, late)
    // The partial file swapped for a link while it fills: not moved into place.
    const swapped = path.join(c.root, 'swapped.out')
    bob.node.save(fileId, swapped)
    c.net.runUntil(() => bob.node.progress(fileId).percent >= 30, { maxMs: 60_000 })
    fs.symlinkSync(victim, late)
    const swappedPartial = partialsOf(swapped)[0]!
    fs.rmSync(swappedPartial)
    fs.symlinkSync(victim, swappedPartial)
    c.net.runUntil(() => bob.node.progress(fileId).saves.every(s => s.state !== 'writing'), { maxMs: 60_000 })
    const saves = new Map(bob.node.progress(fileId).saves.map(s => [s.path, s]))
    assert.equal(saves.get(out)?.state, 'saved')
    assert.equal(await sha256OfFile(out), await sha256OfFile(source))
    assert.equal(saves.get(late)?.state, 'failed')
    assert.match(saves.get(late)?.error ?? '', /appeared meanwhile/)
    assert.equal(saves.get(swapped)?.state, 'failed')
    assert.match(saves.get(swapped)?.error ?? '', /replaced/)
    assert.equal(fs.lstatSync(late).isSymbolicLink(), true)
    assert.equal(await sha256OfFile(victim), victimHash, 'the victim file was written through a link')
    assert.equal(fs.lstatSync(out + '.qf-partial').isSymbolicLink(), true, 'the planted link is left alone')
  } finally { c.close() }
})
