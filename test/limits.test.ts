import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { makeFile } from './helpers/sim.js'
import { startProcessNetwork, status, waitFor } from './helpers/daemons.js'
import { QF_MAIN, qf, sleep } from '../src/cli/processes.js'
import { parseRate } from '../src/cli/rates.js'
import type { Member } from './helpers/daemons.js'

const MiB = 1024 * 1024

test('rates are read as people write them, and anything else is refused', () => {
  assert.equal(parseRate('500K'), 500_000)
  assert.equal(parseRate('2M'), 2_000_000)
  assert.equal(parseRate('1.5MB/s'), 1_500_000)
  assert.equal(parseRate('800KiB/s'), 819_200)
  assert.equal(parseRate('off'), null)
  for (const bad of ['', 'abc', '-1M', '2 T', '0']) assert.throws(() => parseRate(bad), /expected a rate/)
})

/** File bytes `member` received of `fileId` per second, over `seconds` once it is under way. */
async function measuredRate (member: Member, fileId: string, seconds: number): Promise<number> {
  await waitFor('the download to get going', async () => (await status(member, fileId)).bytesReceived > 256 * 1024, 30_000, 50)
  await sleep(1000)
  const first = (await status(member, fileId)).bytesReceived
  const started = Date.now()
  await sleep(seconds * 1000)
  const last = (await status(member, fileId)).bytesReceived
  return (last - first) / ((Date.now() - started) / 1000)
}

test('caps: a capped download and a capped upload hold their rate, changed at run time through qf limits', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice, bob] = net.members as [Member, Member]
    assert.match(qf('limits', '--dir', bob.dir), /upload {4}no cap\ndownload {2}no cap/)
    assert.throws(() => execFileSync(process.execPath, [QF_MAIN, 'limits', '--max-download', 'fast', '--dir', bob.dir], { stdio: 'pipe' }), /expected a rate/)
    const refused = await bob.api.call('PUT', '/api/limits', { max_download_bytes_per_s: 5 }).catch((err: Error) => err)
    assert.match(String(refused), /at least 1000/)

    assert.match(qf('limits', '--max-download', '2M', '--dir', bob.dir), /download {2}2\.00 MB\/s/)
    const first = qf('share', makeFile(net.root, 'capped-down.bin', 40 * MiB, 31), '--dir', alice.dir)
    await waitFor('bob to see it', async () => (await bob.api.call<Array<{ fileId: string }>>('GET', '/api/files')).some(f => f.fileId === first))
    await bob.api.call('POST', `/api/files/${first}/download`, { priority: 8 })
    const down = await measuredRate(bob, first, 6)
    assert.ok(Math.abs(down / 2e6 - 1) <= 0.15, `downloaded at ${(down / 1e6).toFixed(2)} MB/s under a 2 MB/s cap`)
    // Lifted: it goes faster at once.
    qf('limits', '--max-download', 'off', '--dir', bob.dir)
    const free = await measuredRate(bob, first, 1)
    assert.ok(free > 2 * down || (await status(bob, first)).state === 'complete', `${(free / 1e6).toFixed(1)} MB/s without the cap`)
    await bob.api.call('DELETE', `/api/files/${first}/download`)

    const json = JSON.parse(qf('limits', '--max-upload', '1.5M', '--json', '--dir', alice.dir)) as { max_upload_bytes_per_s: number }
    assert.equal(json.max_upload_bytes_per_s, 1_500_000)
    const second = qf('share', makeFile(net.root, 'capped-up.bin', 30 * MiB, 32), '--dir', alice.dir)
    await waitFor('bob to see it', async () => (await bob.api.call<Array<{ fileId: string }>>('GET', '/api/files')).some(f => f.fileId === second))
    await bob.api.call('POST', `/api/files/${second}/download`, { priority: 8 })
    const up = await measuredRate(bob, second, 6)
    assert.ok(Math.abs(up / 1.5e6 - 1) <= 0.15, `sent at ${(up / 1e6).toFixed(2)} MB/s under a 1.5 MB/s cap`)
    assert.equal((await alice.api.call<{ limits: { max_upload_bytes_per_s: number } }>('GET', '/api/status')).limits.max_upload_bytes_per_s, 1_500_000)
  } finally { await net.close() }
})
