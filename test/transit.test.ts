import { test } from 'node:test'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Daemon } from '../src/daemon/daemon.js'
import { initIdentity } from '../src/node/config.js'
import { freeUdpPort } from '../src/cli/processes.js'
import { makeFile } from './helpers/sim.js'
import assert from 'node:assert/strict'
import { TransitEndpoint } from '../src/net/transit.js'
import { randomBytes, signKeyPair } from '../src/crypto/index.js'
import { EVENT_BYTES } from '../src/wire/constants.js'
import type { PeerAddress, TransitOptions } from '../src/net/transit.js'
import { CONNECT_DATAGRAM_BYTES, COOKIE_DATAGRAM_BYTES, DataOffset, DatagramKind } from '../src/wire/transit.js'

interface Wire { to: string, bytes: Uint8Array, from: PeerAddress }

function pair (options: { bobKey?: Uint8Array, aliceClockOffsetMs?: number, aliceLimits?: TransitOptions['connectLimits'] } = {}) {
  const networkId = randomBytes(16)
  const networkKey = randomBytes(32)
  const wire: Wire[] = []
  const delivered: Array<{ at: string, peer: string, event: Uint8Array }> = []
  const skews: Array<{ at: string, peer: string, skewMs: number }> = []
  let now = 1_000_000
  const make = (name: string, key: Uint8Array) => {
    const identity = signKeyPair()
    const address = { host: '127.0.0.1', port: name === 'alice' ? 1 : 2 }
    const endpoint = new TransitEndpoint({
      identity, networkId, networkKey: key,
      // Port 1 is alice, ports 2 and 4 bob (4: after its NAT moved it); anything else reaches nobody.
      // A datagram comes from wherever its sender's address says at the time it is sent.
      sendDatagram: (bytes, to) => wire.push({ to: to.port === 1 ? 'alice' : to.port === 2 || to.port === 4 ? 'bob' : 'nowhere', bytes, from: { ...address } }),
      deliver: (peer, event) => {
        // Events are plain views (the datagram may be a Buffer, whose slice() would not copy).
        assert.equal(Buffer.isBuffer(event), false)
        delivered.push({ at: name, peer, event: event.slice() })
      },
      now: () => now + (name === 'alice' ? options.aliceClockOffsetMs ?? 0 : 0),
      onClockSkew: (peer, skewMs) => skews.push({ at: name, peer, skewMs }),
      connectLimits: name === 'alice' ? options.aliceLimits : undefined
    })
    return { identity, address, endpoint }
  }
  const alice = make('alice', networkKey)
  const bob = make('bob', options.bobKey ?? networkKey)
  const pump = (filter: (w: Wire) => boolean = () => true) => {
    while (wire.length > 0) {
      const w = wire.shift()!
      if (!filter(w) || w.to === 'nowhere') continue
      ;(w.to === 'alice' ? alice : bob).endpoint.onDatagram(w.bytes, w.from)
    }
  }
  return { alice, bob, wire, delivered, skews, pump, advance: (ms: number) => { now += ms } }
}

test('transit: connect, accept, and events both ways, packed two per datagram', () => {
  const { alice, bob, wire, delivered, pump } = pair()
  bob.endpoint.connect(alice.identity.publicKey, alice.address)
  assert.equal(wire[0]!.bytes.length, CONNECT_DATAGRAM_BYTES)
  pump()
  assert.deepEqual(alice.endpoint.peers(), [bob.endpoint.publicKey])
  assert.deepEqual(bob.endpoint.peers(), [alice.endpoint.publicKey])
  const before = wire.length
  for (let i = 0; i < 3; i++) alice.endpoint.send(bob.endpoint.publicKey, new Uint8Array(EVENT_BYTES).fill(i))
  bob.endpoint.send(alice.endpoint.publicKey, new Uint8Array(EVENT_BYTES).fill(9))
  const sizes: number[] = []
  alice.endpoint.flush(); bob.endpoint.flush()
  for (const w of wire.slice(before)) sizes.push(w.bytes.length)
  pump()
  assert.ok(sizes.every(s => s <= 1400))
  assert.ok(sizes.includes(57 + 2 * EVENT_BYTES), 'two events in one datagram')
  assert.deepEqual(delivered.filter(d => d.at === 'bob').map(d => d.event[0]), [0, 1, 2])
  assert.deepEqual(delivered.filter(d => d.at === 'alice').map(d => [d.peer, d.event[0]]), [[bob.endpoint.publicKey, 9]])
})

test('transit: a stranger without the network key, replays and unknown connections get nothing back', () => {
  const stranger = pair({ bobKey: randomBytes(32) })
  stranger.bob.endpoint.connect(stranger.alice.identity.publicKey, stranger.alice.address)
  const connect = stranger.wire[0]!.bytes
  stranger.pump()
  assert.equal(stranger.wire.length, 0, 'no answer to a connect without proof of membership')
  assert.equal(stranger.alice.endpoint.stats.connectsBadMac, 1, 'refused by its mac1')
  assert.equal(stranger.alice.endpoint.stats.connectsOpened, 0, 'before any public-key work')
  assert.deepEqual(stranger.alice.endpoint.peers(), [])

  const { alice, bob, wire, pump } = pair()
  bob.endpoint.connect(alice.identity.publicKey, alice.address)
  const goodConnect = wire[0]!.bytes
  pump()
  alice.endpoint.onDatagram(goodConnect, bob.address)
  assert.equal(wire.length, 0, 'a replayed connect gets nothing')
  assert.equal(alice.endpoint.stats.connectsReplayed, 1)
  alice.endpoint.onDatagram(connect, bob.address)
  assert.equal(wire.length, 0)

  alice.endpoint.send(bob.endpoint.publicKey, new Uint8Array(EVENT_BYTES).fill(7))
  alice.endpoint.flush()
  const data = wire.shift()!.bytes
  // Each arrival is a fresh buffer, as from a socket: onDatagram decrypts in place.
  const replayed = new Uint8Array(data)
  const unknown = new Uint8Array(data); unknown[5]! ^= 1
  const tampered = new Uint8Array(data); tampered[tampered.length - 1]! ^= 1
  bob.endpoint.onDatagram(data, alice.address)
  bob.endpoint.onDatagram(replayed, alice.address)
  assert.equal(bob.endpoint.stats.replayedDatagrams, 1, 'a replayed datagram is dropped')
  bob.endpoint.onDatagram(unknown, alice.address)
  assert.equal(bob.endpoint.stats.unknownConnection, 1)
  bob.endpoint.onDatagram(tampered, alice.address)
  assert.equal(bob.endpoint.stats.undecryptable, 1)
  bob.endpoint.onDatagram(new Uint8Array([0x51, 1, 2]), alice.address)
  assert.equal(bob.endpoint.stats.malformed, 1)
  assert.equal(wire.length, 0, 'none of that produced a reply')
})

test('transit: a silent connection is dropped and known peers are reconnected', () => {
  const { alice, bob, pump, advance } = pair()
  bob.endpoint.setKnownAddresses(alice.identity.publicKey, [alice.address])
  bob.endpoint.tick()
  pump()
  assert.equal(bob.endpoint.peers().length, 1)
  advance(11_000)
  // Everything bob sends is lost: alice hears nothing and forgets him, and he forgets her.
  alice.endpoint.tick(); bob.endpoint.tick()
  pump(() => false)
  assert.equal(alice.endpoint.peers().length, 0)
  advance(1_000)
  bob.endpoint.tick()
  pump()
  assert.equal(bob.endpoint.peers().length, 1, 'reconnected by itself')
  assert.equal(alice.endpoint.peers().length, 1)
})

test('transit: a peer known at several addresses is tried at each in turn, and first at the one that answered', () => {
  const { alice, bob, wire, pump, advance } = pair()
  const nowhere = { host: '192.0.2.1', port: 9 }
  const connectsFromBob = (): string[] => wire.filter(w => w.bytes[0] === 0x51 && w.from.port === bob.address.port).map(w => w.to)
  bob.endpoint.setKnownAddresses(alice.identity.publicKey, [nowhere, alice.address])
  bob.endpoint.tick()
  assert.deepEqual(connectsFromBob(), ['nowhere'])
  pump()
  assert.equal(bob.endpoint.peers().length, 0)
  advance(1_000)
  bob.endpoint.tick()
  assert.deepEqual(connectsFromBob(), ['alice'])
  pump()
  assert.equal(bob.endpoint.peers().length, 1, 'reached at the second address')
  assert.deepEqual(bob.endpoint.knownPeers()[0]?.address, alice.address)
  // The same list again (as the daemon refreshes it) changes nothing.
  bob.endpoint.setKnownAddresses(alice.identity.publicKey, [nowhere, alice.address])
  // A cut: both forget the connection; bob tries again at once, at the address that answered.
  advance(11_000)
  alice.endpoint.tick(); bob.endpoint.tick()
  assert.equal(bob.endpoint.peers().length, 0)
  assert.deepEqual(connectsFromBob(), ['alice'])
  pump()
  assert.equal(bob.endpoint.peers().length, 1)
})

test('transit: a member whose clock is too far off is refused, and the refusal says by how much', () => {
  const { alice, bob, wire, skews, pump } = pair({ aliceClockOffsetMs: 5 * 60_000 })
  bob.endpoint.connect(alice.identity.publicKey, alice.address)
  pump()
  assert.equal(alice.endpoint.peers().length, 0)
  assert.equal(alice.endpoint.stats.connectsClockSkewed, 1)
  assert.deepEqual(skews, [{ at: 'alice', peer: bob.endpoint.publicKey, skewMs: -5 * 60_000 }], 'bob is five minutes behind alice')
  assert.equal(wire.length, 0, 'no answer')
  // Within the allowed skew the same connect goes through.
  const close = pair({ aliceClockOffsetMs: 60_000 })
  close.bob.endpoint.connect(close.alice.identity.publicKey, close.alice.address)
  close.pump()
  assert.equal(close.bob.endpoint.peers().length, 1)
  assert.equal(close.alice.endpoint.stats.connectsClockSkewed, 0)
})

test('transit: a flood of bogus connects is refused by mac1 alone, without a public-key operation or an answer', () => {
  const { alice, bob, wire, pump } = pair()
  for (let i = 0; i < 1000; i++) {
    const bogus = randomBytes(CONNECT_DATAGRAM_BYTES)
    bogus[0] = DatagramKind.connect
    alice.endpoint.onDatagram(bogus, { host: '10.9.8.7', port: 1000 + i })
  }
  assert.equal(alice.endpoint.stats.connectsBadMac, 1000)
  assert.equal(alice.endpoint.stats.connectsOpened, 0)
  assert.equal(wire.length, 0)
  // A member still gets in.
  bob.endpoint.connect(alice.identity.publicKey, alice.address)
  pump()
  assert.equal(alice.endpoint.peers().length, 1)
  assert.equal(alice.endpoint.stats.connectsOpened, 1)
})

test('transit: under load a connect first gets a cookie bound to its source, and gets in with it', () => {
  const { alice, bob, wire, pump } = pair({ aliceLimits: { loadPerSecond: 0 } })
  bob.endpoint.connect(alice.identity.publicKey, alice.address)
  const first = wire[0]!
  alice.endpoint.onDatagram(new Uint8Array(first.bytes), first.from)
  wire.shift()
  assert.equal(alice.endpoint.stats.connectsOpened, 0, 'no public-key work before the cookie came back')
  assert.equal(wire.length, 1)
  assert.equal(wire[0]!.bytes.length, COOKIE_DATAGRAM_BYTES)
  assert.ok(COOKIE_DATAGRAM_BYTES < CONNECT_DATAGRAM_BYTES, 'the cookie is smaller than the connect: no amplification')
  pump()
  assert.equal(bob.endpoint.stats.cookiesReceived, 1)
  assert.equal(alice.endpoint.peers().length, 1, 'the connect with the cookie got in')
  assert.equal(alice.endpoint.stats.connectsOpened, 1)
  // The same cookie is worth nothing from another address.
  const beforeCookies = alice.endpoint.stats.cookiesSent
  bob.endpoint.connect(alice.identity.publicKey, alice.address)
  const withCookie = wire.shift()!
  alice.endpoint.onDatagram(withCookie.bytes, { host: '10.1.1.1', port: 2 })
  assert.equal(alice.endpoint.stats.cookiesSent, beforeCookies + 1)
  assert.equal(alice.endpoint.stats.connectsOpened, 1)
})

test('transit: connects from one source beyond its budget are dropped; another source still gets in', () => {
  const { alice, bob, wire } = pair({ aliceLimits: { perSourceBurst: 3, perSourcePerSecond: 0.001 } })
  for (let i = 0; i < 5; i++) {
    bob.endpoint.connect(alice.identity.publicKey, alice.address)
    const w = wire.pop()!
    alice.endpoint.onDatagram(w.bytes, w.from)
  }
  assert.equal(alice.endpoint.stats.connectsOpened, 3)
  assert.equal(alice.endpoint.stats.connectsRateLimited, 2)
  bob.endpoint.connect(alice.identity.publicKey, alice.address)
  alice.endpoint.onDatagram(wire.pop()!.bytes, { host: '10.2.2.2', port: 2 })
  assert.equal(alice.endpoint.stats.connectsOpened, 4)
})

test('transit: a replayed datagram from another address does not move the connection; a real move is validated first', () => {
  const { alice, bob, wire, delivered, pump } = pair()
  bob.endpoint.connect(alice.identity.publicKey, alice.address)
  pump()
  const bobPk = bob.endpoint.publicKey
  // A datagram of bob's that never reached alice, sent by an attacker from its own address.
  bob.endpoint.send(alice.endpoint.publicKey, new Uint8Array(EVENT_BYTES).fill(5))
  bob.endpoint.flush()
  const stolen = wire.pop()!
  alice.endpoint.onDatagram(stolen.bytes, { host: '127.0.0.1', port: 3 })
  assert.equal(delivered.filter(d => d.at === 'alice').length, 1, 'its events are authentic and count')
  assert.equal(alice.endpoint.stats.pathChallenges, 1)
  alice.endpoint.send(bobPk, new Uint8Array(EVENT_BYTES).fill(6))
  alice.endpoint.flush()
  const sent = wire.map(w => ({ to: w.to, kind: w.bytes[0] }))
  assert.deepEqual(sent, [{ to: 'nowhere', kind: DatagramKind.pathChallenge }, { to: 'bob', kind: DatagramKind.data }], 'answers still go to bob')
  pump()
  assert.equal(alice.endpoint.stats.pathsValidated, 0)
  // Bob's NAT gives it a new port: its datagrams come from there; the move waits for the challenge's answer.
  bob.address.port = 4
  bob.endpoint.send(alice.endpoint.publicKey, new Uint8Array(EVENT_BYTES).fill(7))
  bob.endpoint.flush()
  pump()
  assert.equal(alice.endpoint.stats.pathsValidated, 1)
  alice.endpoint.send(bobPk, new Uint8Array(EVENT_BYTES).fill(8))
  alice.endpoint.flush()
  assert.equal(wire.at(-1)!.to, 'bob')
  assert.equal(alice.endpoint.knownPeers()[0]!.address.port, 4)
})

test('transit: a peer counts as connected only once traffic went both ways, and not after it falls silent', () => {
  const { alice, bob, pump, advance } = pair()
  bob.endpoint.connect(alice.identity.publicKey, alice.address)
  // Nothing alice sends reaches bob: she hears his connect, but he never hears her accept.
  pump(w => w.to === 'alice')
  assert.deepEqual(alice.endpoint.peers(), [], 'a connect heard is not a connection')
  assert.deepEqual(bob.endpoint.peers(), [])
  for (let i = 0; i < 4; i++) { advance(500); alice.endpoint.tick(); bob.endpoint.tick(); pump(w => w.to === 'alice') }
  assert.deepEqual(alice.endpoint.peers(), [], 'still one way after keepalives')

  const fresh = pair()
  fresh.bob.endpoint.setKnownAddresses(fresh.alice.identity.publicKey, [fresh.alice.address])
  fresh.bob.endpoint.tick()
  fresh.pump()
  assert.deepEqual(fresh.alice.endpoint.peers(), [fresh.bob.endpoint.publicKey])
  assert.deepEqual(fresh.bob.endpoint.peers(), [fresh.alice.endpoint.publicKey])
  // Bob falls silent: within two seconds alice no longer counts him, though the connection is kept.
  for (let i = 0; i < 4; i++) { fresh.advance(500); fresh.alice.endpoint.tick(); fresh.bob.endpoint.tick(); fresh.pump(w => w.to === 'bob') }
  assert.deepEqual(fresh.alice.endpoint.peers(), [])
  assert.deepEqual(fresh.alice.endpoint.knownPeers().map(k => k.connected), [false])
  assert.deepEqual(fresh.bob.endpoint.knownPeers().map(k => k.connected), [true], 'bob still hears alice')
  assert.equal(fresh.alice.endpoint.connectionCount(), 1)
  // His keepalives get through again: connected again, on the same connection.
  fresh.advance(500); fresh.bob.endpoint.tick(); fresh.pump()
  assert.deepEqual(fresh.alice.endpoint.peers(), [fresh.bob.endpoint.publicKey])
})

test('transit: when both members connect at once, both send on the same one of the two connections', () => {
  for (const gapMs of [0, 30]) {
    const { alice, bob, wire, pump, advance } = pair()
    // Each connect is still on its way when the other is sent: each side hears the other's after sending its own.
    bob.endpoint.connect(alice.identity.publicKey, alice.address)
    advance(gapMs)
    alice.endpoint.connect(bob.identity.publicKey, bob.address)
    advance(5)
    pump()
    assert.equal(alice.endpoint.stats.connectsAccepted, 1)
    assert.equal(bob.endpoint.stats.connectsAccepted, 1)
    // Later sends, not answers to anything: each goes on the sender's chosen connection.
    alice.endpoint.send(bob.endpoint.publicKey, new Uint8Array(EVENT_BYTES).fill(1))
    bob.endpoint.send(alice.endpoint.publicKey, new Uint8Array(EVENT_BYTES).fill(2))
    alice.endpoint.flush(); bob.endpoint.flush()
    const idOf = (to: string): string => Buffer.from(wire.find(w => w.to === to)!.bytes.subarray(DataOffset.connectionId, DataOffset.nonce)).toString('hex')
    assert.equal(idOf('bob'), idOf('alice'), `connects ${gapMs} ms apart: alice sends on one connection, bob on another`)
    pump()
  }
})

test('with a larger MTU, paced slices leave in full datagrams: as many events as fit, not pairs, even at a slow pace', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-mtu-'))
  const daemons: Daemon[] = []
  try {
    const start = async (name: string, maxDownloadBytesPerS: number | null = null): Promise<Daemon> => {
      const dir = path.join(root, name)
      initIdentity(dir, name)
      const port = await freeUdpPort()
      const daemon = await Daemon.start({ dir, udpPort: port, httpPort: 0, announce: [{ host: '127.0.0.1', port }], mtu: 3000, voice: 'quiet', limits: { maxUploadBytesPerS: null, maxDownloadBytesPerS } })
      daemons.push(daemon)
      return daemon
    }
    const alice = await start('alice')
    // A slow pace: a datagram's worth is due every few milliseconds, and each goes on its own.
    const bob = await start('bob', 300_000)
    alice.createNetwork('mtu')
    bob.join(alice.invite().link)
    assert.equal(alice.transit!.eventsPerDatagram, 5)
    const { fileId } = await alice.requireNode().share(makeFile(root, 'big-datagrams.bin', 1024 * 1024, 12))
    const bobNode = bob.requireNode()
    for (let i = 0; i < 200 && !bobNode.files().some(f => f.fileId === fileId); i++) await new Promise(resolve => setTimeout(resolve, 50))
    const before = alice.transit!.stats.datagramsOut
    bobNode.requestFile(fileId, { priority: 8 })
    for (let i = 0; i < 600 && bobNode.progress(fileId).state !== 'complete'; i++) await new Promise(resolve => setTimeout(resolve, 50))
    assert.equal(bobNode.progress(fileId).state, 'complete')
    const slices = alice.requireNode().stats().slicesSent
    const datagrams = alice.transit!.stats.datagramsOut - before
    assert.ok(datagrams <= slices / 4, `${slices} slices went in ${datagrams} datagrams`)
  } finally {
    for (const daemon of daemons) await daemon.stop()
    fs.rmSync(root, { recursive: true, force: true })
  }
})
