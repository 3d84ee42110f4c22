import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { makeFile, sha256OfFile } from './helpers/sim.js'
import { settled, startProcessNetwork, status, waitFor } from './helpers/daemons.js'
import { qf } from '../src/cli/processes.js'
import type { Member } from './helpers/daemons.js'
import type { NodeStats } from '../src/node/node.js'

const MiB = 1024 * 1024

/** A real small disk: a tmpfs of `size` mounted at `dir` (needs root, as CI has). */
function mountTmpfs (dir: string, size: string): void {
  if (process.getuid?.() !== 0) throw new Error('this test mounts a small tmpfs and needs root (CI runs as root)')
  fs.mkdirSync(dir, { recursive: true })
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir])
}

function unmount (dir: string): void {
  try { execFileSync('umount', ['-l', dir], { stdio: 'ignore' }) } catch { /* not mounted */ }
}

async function stats (member: Member): Promise<NodeStats> {
  return (await member.api.call<{ stats: NodeStats }>('GET', '/api/status')).stats
}

test('a full disk stalls a download with its reason, counts nothing it could not write, and carries on once space is back', async () => {
  const mounts: string[] = []
  const net = await startProcessNetwork(['alice', 'bob'], {
    prepare: (name, dir) => { if (name === 'bob') { mountTmpfs(dir, '24m'); mounts.push(dir) } }
  }).catch((err: unknown) => { mounts.forEach(unmount); throw err })
  try {
    const [alice, bob] = net.members as [Member, Member]
    // A small file first: held and verified before the disk fills, and never lost.
    const small = makeFile(net.root, 'small.bin', MiB, 61)
    const smallId = qf('share', small, '--dir', alice.dir)
    const big = makeFile(net.root, 'big.bin', 40 * MiB, 62)
    const bigId = qf('share', big, '--dir', alice.dir)
    await waitFor('bob to see both files', async () => (await bob.api.call<unknown[]>('GET', '/api/files')).length === 2)
    await bob.api.call('POST', `/api/files/${smallId}/download`, { priority: 8 })
    assert.equal((await settled(bob, smallId)).state, 'complete')

    await bob.api.call('POST', `/api/files/${bigId}/download`, { priority: 8 })
    const stalled = await waitFor('the download to stall on the full disk', async () => {
      const p = await status(bob, bigId)
      return p.state === 'stalled' ? p : null
    }, 60_000)
    assert.equal(stalled.reason, 'no space left on device')
    assert.ok(stalled.bytesReceived <= 24 * MiB, `claims ${stalled.bytesReceived} bytes held on a 24 MiB disk`)
    assert.match(qf('status', '--dir', bob.dir), /stalled: no space left on device; retrying/)
    // Requests stop while stalled: nothing more is taken.
    const before = await stats(bob)
    await new Promise(resolve => setTimeout(resolve, 1500))
    const during = await status(bob, bigId)
    assert.equal(during.state, 'stalled')
    assert.ok((await stats(bob)).slicesAccepted - before.slicesAccepted === 0, 'slices were taken while stalled')
    // What was verified is still there and reads back whole.
    const smallBack = await bob.api.fetchRaw(`/api/files/${smallId}/content`)
    assert.equal(Buffer.from(await smallBack.arrayBuffer()).equals(fs.readFileSync(small)), true)

    // Space comes back: the download carries on from what it held, without fetching it again.
    execFileSync('mount', ['-o', 'remount,size=200m', bob.dir])
    const done = await settled(bob, bigId, 120_000)
    assert.equal(done.state, 'complete')
    const after = await stats(bob)
    assert.ok(after.slicesAccepted - before.slicesAccepted < done.slicesTotal - stalled.slicesReceived + 4096,
      `fetched ${after.slicesAccepted - before.slicesAccepted} slices after the stall, with ${stalled.slicesReceived} of ${done.slicesTotal} held`)
    const out = path.join(net.root, 'big.out')
    await bob.api.call('POST', `/api/files/${bigId}/save`, { path: out })
    assert.equal((await settled(bob, bigId)).saving?.state, 'saved')
    assert.equal(await sha256OfFile(out), await sha256OfFile(big))
  } finally {
    // Detached first (lazily: the daemons still hold files there), so the directories can go.
    mounts.forEach(unmount)
    await net.close()
  }
})

test('a save to a full disk fails with that reason while the download itself goes on', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  const small = path.join(net.root, 'small-disk')
  try {
    mountTmpfs(small, '4m')
    const [alice, bob] = net.members as [Member, Member]
    const source = makeFile(net.root, 'ten.bin', 10 * MiB, 63)
    const fileId = qf('share', source, '--dir', alice.dir)
    await waitFor('bob to see the file', async () => (await bob.api.call<unknown[]>('GET', '/api/files')).length === 1)
    await bob.api.call('POST', `/api/files/${fileId}/download`, { priority: 8 })
    await bob.api.call('POST', `/api/files/${fileId}/save`, { path: path.join(small, 'ten.bin') })
    const done = await settled(bob, fileId)
    assert.equal(done.state, 'complete')
    assert.equal(done.saving?.state, 'failed')
    assert.match(done.saving?.error ?? '', /no space left on device/i)
    assert.deepEqual(fs.readdirSync(small), [], 'the partial file is removed')
    const out = path.join(net.root, 'ten.out')
    await bob.api.call('POST', `/api/files/${fileId}/save`, { path: out })
    assert.equal((await settled(bob, fileId)).saving?.state, 'saved')
    assert.equal(await sha256OfFile(out), await sha256OfFile(source))
  } finally {
    unmount(small)
    await net.close()
  }
})
