import { test } from 'node:test'
import assert from 'node:assert/strict'
import { TransitEndpoint } from '../src/net/transit.js'
import { randomBytes, signKeyPair } from '../src/crypto/index.js'
import { EVENT_BYTES } from '../src/wire/constants.js'
import type { PeerAddress } from '../src/net/transit.js'

interface Wire { to: string, bytes: Uint8Array, from: PeerAddress }

function pair (options: { bobKey?: Uint8Array, aliceClockOffsetMs?: number } = {}) {
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
      // Port 1 is alice, port 2 bob; anything else reaches nobody.
      sendDatagram: (bytes, to) => wire.push({ to: to.port === 1 ? 'alice' : to.port === 2 ? 'bob' : 'nowhere', bytes, from: address }),
      deliver: (peer, event) => {
        // Events are plain views (the datagram may be a Buffer, whose slice() would not copy).
        assert.equal(Buffer.isBuffer(event), false)
        delivered.push({ at: name, peer, event: event.slice() })
      },
      now: () => now + (name === 'alice' ? options.aliceClockOffsetMs ?? 0 : 0),
      onClockSkew: (peer, skewMs) => skews.push({ at: name, peer, skewMs })
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
  assert.equal(wire[0]!.bytes.length, 286)
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
  assert.equal(stranger.alice.endpoint.stats.connectsRejected, 1)
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
