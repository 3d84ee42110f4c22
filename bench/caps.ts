/**
 * Rate caps held over ten seconds: two daemons on loopback, a download capped at 2 MB/s and,
 * on a second file, an upload capped at 1.5 MB/s; the rates measured in file bytes.
 */
import { makeFile } from '../test/helpers/sim.js'
import { startProcessNetwork, status, waitFor } from '../test/helpers/daemons.js'
import { qf, sleep } from '../src/cli/processes.js'
import type { Member } from '../test/helpers/daemons.js'

const MiB = 1024 * 1024
const SECONDS = 10

async function heldRate (net: { root: string }, from: Member, to: Member, name: string, seed: number): Promise<number> {
  const fileId = qf('share', makeFile(net.root, name, 40 * MiB, seed), '--dir', from.dir)
  await waitFor(`${to.name} to see ${name}`, async () => (await to.api.call<Array<{ fileId: string }>>('GET', '/api/files')).some(f => f.fileId === fileId))
  await to.api.call('POST', `/api/files/${fileId}/download`, { priority: 8 })
  await waitFor('the download to get going', async () => (await status(to, fileId)).bytesReceived > MiB, 30_000, 50)
  const first = (await status(to, fileId)).bytesReceived
  const started = Date.now()
  await sleep(SECONDS * 1000)
  const rate = ((await status(to, fileId)).bytesReceived - first) / ((Date.now() - started) / 1000)
  await to.api.call('DELETE', `/api/files/${fileId}/download`)
  return rate
}

export async function rateCaps (): Promise<Record<string, number>> {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice, bob] = net.members as [Member, Member]
    qf('limits', '--max-download', '2M', '--dir', bob.dir)
    const down = await heldRate(net, alice, bob, 'cap-down.bin', 51)
    qf('limits', '--max-download', 'off', '--dir', bob.dir)
    qf('limits', '--max-upload', '1.5M', '--dir', alice.dir)
    const up = await heldRate(net, alice, bob, 'cap-up.bin', 52)
    return { seconds: SECONDS, download_cap: 2e6, download_rate: down, download_ratio: down / 2e6, upload_cap: 1.5e6, upload_rate: up, upload_ratio: up / 1.5e6 }
  } finally { await net.close() }
}
