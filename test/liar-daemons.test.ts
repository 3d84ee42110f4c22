import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { makeFile, sha256OfFile } from './helpers/sim.js'
import { settled, startProcessNetwork, status, waitFor } from './helpers/daemons.js'
import { Daemon } from '../src/daemon/daemon.js'
import { freeUdpPort, qf } from '../src/cli/processes.js'
import { aeadEncryptInto } from '../src/crypto/index.js'
import { readU32be } from '../src/bytes.js'
import { EventType, SLICE_PLAINTEXT_BYTES, SliceOffset, decodeDescriptorPlaintext, encodeSliceEvent, openContentPayload, openSignedEvent, sliceNonce } from '../src/wire/index.js'
import type { Member } from './helpers/daemons.js'

const MiB = 1024 * 1024

test('between real daemons: a member that serves forged slices is named, bob\'s download completes verified from alice, and qf status shows who lied', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  let mallory: Daemon | null = null
  try {
    const [alice, bob] = net.members as [Member, Member]
    const source = makeFile(net.root, 'report.bin', 8 * MiB, 81)
    const fileId = qf('share', source, '--dir', alice.dir)
    // mallory: a member of the network, run here so that her sending can be made to lie.
    const malloryDir = path.join(net.root, 'mallory')
    qf('init', '--dir', malloryDir, '--name', 'mallory')
    const port = await freeUdpPort()
    mallory = await Daemon.start({ dir: malloryDir, udpPort: port, announce: [{ host: '127.0.0.1', port }] })
    mallory.join(qf('invite', '--dir', alice.dir))
    const node = (): NonNullable<Daemon['node']> => mallory!.requireNode()
    await waitFor('mallory to learn of the file', async () => node().files().some(f => f.fileId === fileId))
    node().requestFile(fileId)
    await waitFor('mallory to hold the file', async () => node().progress(fileId).state === 'complete', 60_000)
    const descriptorEvent = node().descriptorEvent(fileId)
    const network = mallory.network!
    const { key, noncePrefix } = decodeDescriptorPlaintext(openContentPayload(descriptorEvent, openSignedEvent(descriptorEvent).payload, network.networkKey))
    const transit = mallory.transit!
    const bobKey = (await bob.api.call<{ public_key: string }>('GET', '/api/status')).public_key
    const honestSend = transit.send.bind(transit)
    let forged = 0
    transit.send = (peer: string, event: Uint8Array) => {
      if (peer !== bobKey || event[1] !== EventType.slice) { honestSend(peer, event); return }
      const sliceNo = readU32be(event, SliceOffset.sliceNo)
      const record = new Uint8Array(SLICE_PLAINTEXT_BYTES + 16)
      aeadEncryptInto(record.subarray(0, SLICE_PLAINTEXT_BYTES), record.subarray(SLICE_PLAINTEXT_BYTES), new Uint8Array(SLICE_PLAINTEXT_BYTES).fill(0x66), sliceNonce(noncePrefix, sliceNo), key)
      forged++
      honestSend(peer, encodeSliceEvent(event.subarray(SliceOffset.fileId, SliceOffset.sliceNo), sliceNo, noncePrefix, record))
    }
    await waitFor('bob to connect to mallory', async () => (await bob.api.call<Array<{ public_key: string, connected: boolean }>>('GET', '/api/peers')).some(p => p.public_key === toHexKey(mallory!) && p.connected), 30_000)

    const out = path.join(net.root, 'report.out')
    await bob.api.call('POST', `/api/files/${fileId}/download`, { priority: 8 })
    await bob.api.call('POST', `/api/files/${fileId}/save`, { path: out })
    const done = await settled(bob, fileId, 120_000)
    assert.equal(done.state, 'complete')
    assert.equal(done.saving?.state, 'saved')
    assert.equal(await sha256OfFile(out), await sha256OfFile(source))
    assert.ok(forged > 0, 'mallory was asked and lied')
    const peers = await bob.api.call<Array<{ name: string | null, bad_windows: number }>>('GET', '/api/peers')
    assert.ok((peers.find(p => p.name === 'mallory')?.bad_windows ?? 0) > 0, 'mallory is named')
    assert.equal(peers.find(p => p.name === 'alice')?.bad_windows, 0, 'alice is not')
    assert.match(qf('status', '--dir', bob.dir), /mallory .*supplied \d+ bad windows?/)
    assert.equal((await status(bob, fileId)).state, 'complete')
    console.log(`# mallory forged ${forged} slices; bob's stats: ${JSON.stringify((await bob.api.call<{ stats: Record<string, number> }>('GET', '/api/status')).stats)}`)
    assert.ok(fs.existsSync(out))
  } finally {
    await mallory?.stop()
    await net.close()
  }
})

function toHexKey (daemon: Daemon): string {
  return Buffer.from(daemon.identity.publicKey).toString('hex')
}
