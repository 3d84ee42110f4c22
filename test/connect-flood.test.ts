import { test } from 'node:test'
import assert from 'node:assert/strict'
import dgram from 'node:dgram'
import fs from 'node:fs'
import { startProcessNetwork, waitFor } from './helpers/daemons.js'
import { loadControl, loadNetwork } from '../src/node/config.js'
import { TransitEndpoint } from '../src/net/transit.js'
import { randomBytes, signKeyPair } from '../src/crypto/index.js'
import { fromHex } from '../src/bytes.js'
import { CONNECT_DATAGRAM_BYTES, DatagramKind } from '../src/wire/transit.js'
import { sleep } from '../src/cli/processes.js'
import type { TransitStats } from '../src/net/transit.js'

test('a real daemon under a flood: bogus connects cost no public-key work, and connects from hundreds of keys with a wrong clock log one line and stay out of the peer list', async () => {
  const net = await startProcessNetwork(['alice'])
  const socket = dgram.createSocket('udp4')
  try {
    const [alice] = net.members
    const control = loadControl(alice!.dir)!
    const network = loadNetwork(alice!.dir)!
    const status = async (): Promise<{ public_key: string, transit: TransitStats }> => await alice!.api.call('GET', '/api/status')
    const alicePk = fromHex((await status()).public_key, 32)
    await new Promise<void>(resolve => socket.bind(0, '127.0.0.1', resolve))
    const send = (bytes: Uint8Array): void => { socket.send(bytes, control.udpPort, '127.0.0.1') }

    // Random bytes shaped like connects: refused by their mac1.
    for (let i = 0; i < 2000; i++) {
      const bogus = randomBytes(CONNECT_DATAGRAM_BYTES)
      bogus[0] = DatagramKind.connect
      send(bogus)
      if (i % 200 === 199) await sleep(5)
    }
    await waitFor('the bogus connects to be counted', async () => (await status()).transit.connectsBadMac >= 1900)
    assert.equal((await status()).transit.connectsOpened, 0)

    // Valid membership proofs from 600 fresh keys, each with a clock an hour ahead.
    for (let i = 0; i < 600; i++) {
      const skewed = new TransitEndpoint({
        identity: signKeyPair(), networkId: network.networkId, networkKey: network.networkKey,
        sendDatagram: bytes => send(bytes), deliver: () => {}, now: () => Date.now() + 3_600_000
      })
      skewed.connect(alicePk, { host: '127.0.0.1', port: control.udpPort })
      if (i % 50 === 49) await sleep(100)
    }
    const transit = await waitFor('skewed connects to be refused', async () => {
      const t = (await status()).transit
      return t.connectsClockSkewed >= 5 ? t : null
    })
    const peers = await alice!.api.call<unknown[]>('GET', '/api/peers')
    assert.ok(peers.length <= 32, `${peers.length} unproven senders in the peer list`)
    const logged = fs.readFileSync(alice!.log, 'utf8').split('\n').filter(line => line.includes('refused a connect'))
    assert.equal(logged.length, 1, `${logged.length} log lines for ${transit.connectsClockSkewed} refusals`)
    // The rest were dropped by the cheap checks: a budget per source and cookies under load.
    assert.ok(transit.connectsRateLimited + transit.cookiesSent > 0, 'the per-source budget or cookies held the flood off')
  } finally {
    socket.close()
    await net.close()
  }
})
