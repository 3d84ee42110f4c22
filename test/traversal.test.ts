import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Traversal, MAX_PUNCHES, PUNCH_BACKOFF_MS, PUNCH_INTERVAL_MS, PUNCH_MS, punchTargets } from '../src/net/traversal.js'
import { RelayForwarder, RelayRoutes, relayAddress, relayOf } from '../src/net/relay.js'
import { decodeControl, encodeControl } from '../src/wire/transit-control.js'
import { WireError } from '../src/wire/errors.js'
import { toHex } from '../src/bytes.js'
import type { ControlMessage } from '../src/wire/transit-control.js'
import type { Route, TraversalAction, TraversalView } from '../src/net/traversal.js'
import { AddressBook } from '../src/net/address-book.js'
import type { PeerAddress } from '../src/net/address-book.js'

const key = (byte: number): Uint8Array => new Uint8Array(32).fill(byte)
const A = key(1)
const B = key(2)
const M = key(9)
const hex = (k: Uint8Array): string => toHex(k)
const at = (host: string, port: number): PeerAddress => ({ host, port })

// ---- wire -----------------------------------------------------------------------------------

test('control messages: each kind round-trips; wrong lengths, unknown kinds, flags and reasons are refused', () => {
  const messages: ControlMessage[] = [
    { type: 'observed', address: at('203.0.113.7', 40000) },
    { type: 'introduce', peerPk: B },
    { type: 'introduction', peerPk: B, address: at('10.80.0.11', 7300), relays: true },
    { type: 'introduction', peerPk: A, address: at('1.2.3.4', 1), relays: false },
    { type: 'relayRequest', peerPk: B },
    { type: 'relayOpen', peerPk: B, channel: new Uint8Array(8).fill(5) },
    { type: 'relayRefused', peerPk: B, reason: 'full' }
  ]
  for (const message of messages) assert.deepEqual(decodeControl(encodeControl(message)), message)
  assert.equal(encodeControl(messages[0]!).length, 7)
  assert.equal(encodeControl(messages[2]!).length, 40)
  assert.equal(encodeControl(messages[5]!).length, 41)
  const bad = (bytes: Uint8Array): void => assert.throws(() => decodeControl(bytes), WireError)
  bad(new Uint8Array(0))
  bad(Uint8Array.of(0x7f, 1, 2))
  bad(encodeControl(messages[1]!).subarray(0, 20))
  const flags = encodeControl(messages[2]!); flags[39] = 2; bad(flags)
  const reason = encodeControl(messages[6]!); reason[33] = 9; bad(reason)
  const portZero = encodeControl(messages[0]!); portZero[5] = 0; portZero[6] = 0; bad(portZero)
  assert.throws(() => encodeControl({ type: 'observed', address: at('fe80::1', 1) }), WireError)
  assert.throws(() => encodeControl({ type: 'observed', address: at('10.0.0.256', 1) }), WireError)
})

// ---- the traversal machine ------------------------------------------------------------------

class World implements TraversalView {
  routes = new Map<string, Route>()
  wantedPeers: Uint8Array[] = []
  relayingNow = true
  route = (peer: string): Route | null => this.routes.get(peer) ?? null
  seenAt = (peer: string): PeerAddress | null => { const r = this.routes.get(peer); return r?.kind === 'direct' ? r.address : null }
  connected = (): string[] => [...this.routes.keys()]
  wanted = (): Array<{ peer: string, peerPk: Uint8Array }> => this.wantedPeers.map(pk => ({ peer: hex(pk), peerPk: pk }))
  relaying = (): boolean => this.relayingNow
}

const controls = (actions: TraversalAction[]): Array<{ peer: string, message: ControlMessage }> =>
  actions.flatMap(a => a.kind === 'control' ? [{ peer: a.peer, message: a.message }] : [])

test('an introducer connected to both tells each where it sees the other, at most once per pair in a short while', () => {
  const world = new World()
  world.routes.set(hex(A), { kind: 'direct', address: at('10.80.0.11', 7300) })
  world.routes.set(hex(B), { kind: 'direct', address: at('10.80.0.12', 41234) })
  const introducer = new Traversal(M, world)
  const sent = controls(introducer.onControl(hex(A), { type: 'introduce', peerPk: B }, 0))
  assert.deepEqual(sent, [
    { peer: hex(A), message: { type: 'introduction', peerPk: B, address: at('10.80.0.12', 41234), relays: true } },
    { peer: hex(B), message: { type: 'introduction', peerPk: A, address: at('10.80.0.11', 7300), relays: true } }
  ])
  // B asking for A at the same moment adds nothing; nor does a member asking for itself or for us.
  assert.deepEqual(introducer.onControl(hex(B), { type: 'introduce', peerPk: A }, 10), [])
  assert.deepEqual(introducer.onControl(hex(A), { type: 'introduce', peerPk: A }, 1000), [])
  assert.deepEqual(introducer.onControl(hex(A), { type: 'introduce', peerPk: M }, 1000), [])
  // A target it does not reach directly is not introduced.
  world.routes.set(hex(B), { kind: 'relayed', via: hex(key(7)) })
  assert.deepEqual(introducer.onControl(hex(A), { type: 'introduce', peerPk: B }, 2000), [])
  world.relayingNow = false
  world.routes.set(hex(B), { kind: 'direct', address: at('10.80.0.12', 41234) })
  const later = controls(introducer.onControl(hex(A), { type: 'introduce', peerPk: B }, 3000))
  assert.equal(later.length, 2)
  assert.ok(later.every(c => c.message.type === 'introduction' && !c.message.relays), 'no relay offered when relaying is off')
})

test('a punch: the smaller key dials, the other sends punch datagrams, to the observed port and those next to it, every 100 ms', () => {
  const dialerWorld = new World()
  const dialer = new Traversal(A, dialerWorld)
  const listener = new Traversal(B, new World())
  const introduction = (peerPk: Uint8Array, port: number): ControlMessage => ({ type: 'introduction', peerPk, address: at('10.80.0.12', port), relays: true })
  dialer.onControl(hex(M), introduction(B, 41234), 0)
  listener.onControl(hex(M), introduction(A, 7300), 0)
  const first = dialer.poll(0)
  assert.deepEqual(first, [{ kind: 'dial', peer: hex(B), peerPk: B, targets: punchTargets(at('10.80.0.12', 41234)) }])
  assert.deepEqual(punchTargets(at('10.80.0.12', 41234)).map(a => a.port), [41234, 41235, 41233, 41236])
  assert.deepEqual(punchTargets(at('1.1.1.1', 65535)).map(a => a.port), [65535, 65534])
  assert.deepEqual(listener.poll(0), [{ kind: 'punch', targets: punchTargets(at('10.80.0.12', 7300)) }])
  assert.deepEqual(dialer.poll(PUNCH_INTERVAL_MS - 1), [], 'not before the next round')
  assert.equal(dialer.poll(PUNCH_INTERVAL_MS).length, 1)
  // Once a direct connection is up, the punch stops and counts as a success.
  dialerWorld.routes.set(hex(B), { kind: 'direct', address: at('10.80.0.12', 41234) })
  assert.deepEqual(dialer.poll(2 * PUNCH_INTERVAL_MS), [])
  assert.equal(dialer.stats.punchesSucceeded, 1)
  assert.equal(dialer.punching(hex(B)), null)
})

test('a failed punch: the dialer asks the introducer to relay; the next punch waits; while relayed, no relay is asked again', () => {
  const world = new World()
  world.routes.set(hex(M), { kind: 'direct', address: at('10.80.0.10', 7300) })
  world.wantedPeers = [B]
  const dialer = new Traversal(A, world)
  // Wanting B and not reaching it, A asks every member it is connected to for an introduction.
  assert.deepEqual(controls(dialer.poll(0)), [{ peer: hex(M), message: { type: 'introduce', peerPk: B } }])
  dialer.onControl(hex(M), { type: 'introduction', peerPk: B, address: at('10.80.0.12', 41234), relays: true }, 5)
  let asked: TraversalAction[] = []
  for (let t = 10; t <= PUNCH_MS + 200; t += 10) asked = asked.concat(dialer.poll(t).filter(a => a.kind === 'relay'))
  assert.deepEqual(asked, [{ kind: 'relay', peer: hex(B), via: hex(M) }])
  assert.equal(dialer.stats.punchesFailed, 1)
  // An introduction during the backoff starts nothing.
  dialer.onControl(hex(M), { type: 'introduction', peerPk: B, address: at('10.80.0.12', 41234), relays: true }, PUNCH_MS + 300)
  assert.equal(dialer.punching(hex(B)), null)
  // Relayed now: the next punch (after the backoff) ends without asking for a relay again.
  world.routes.set(hex(B), { kind: 'relayed', via: hex(M) })
  const again = PUNCH_MS + 200 + PUNCH_BACKOFF_MS
  dialer.onControl(hex(M), { type: 'introduction', peerPk: B, address: at('10.80.0.12', 41234), relays: true }, again)
  assert.notEqual(dialer.punching(hex(B)), null)
  const after = dialer.poll(again + PUNCH_MS + 1)
  assert.ok(!after.some(a => a.kind === 'relay'))
  // Without an offer to relay, a failed punch asks nobody.
  const lone = new Traversal(A, new World())
  lone.onControl(hex(M), { type: 'introduction', peerPk: B, address: at('10.80.0.12', 1), relays: false }, 0)
  lone.poll(0)
  assert.ok(!lone.poll(PUNCH_MS + 1).some(a => a.kind === 'relay'))
})

test('introductions cannot make a member spray: at most MAX_PUNCHES at once, each for PUNCH_MS', () => {
  const member = new Traversal(A, new World())
  for (let i = 0; i < 50; i++) member.onControl(hex(M), { type: 'introduction', peerPk: key(100 + i), address: at('198.51.100.1', 1000 + i), relays: false }, 0)
  assert.equal(member.stats.punchesStarted, MAX_PUNCHES)
  let datagrams = 0
  for (let t = 0; t <= 2 * PUNCH_MS; t += 10) {
    for (const a of member.poll(t)) if (a.kind === 'dial' || a.kind === 'punch') datagrams += a.targets.length
  }
  const rounds = Math.floor(PUNCH_MS / PUNCH_INTERVAL_MS) + 1
  assert.ok(datagrams <= MAX_PUNCHES * rounds * 4, `${datagrams} datagrams`)
  assert.equal(member.stats.punchesFailed, MAX_PUNCHES)
})

test('observed addresses: those reported by the most peers come first; a peer that is gone no longer counts', () => {
  const t = new Traversal(A, new World())
  t.onObserved('p1', at('203.0.113.7', 40000))
  t.onObserved('p2', at('203.0.113.7', 40000))
  t.onObserved('p3', at('203.0.113.7', 51000))
  assert.deepEqual(t.observedAddresses(), [at('203.0.113.7', 40000), at('203.0.113.7', 51000)])
  t.forget('p1'); t.forget('p2')
  assert.deepEqual(t.observedAddresses(), [at('203.0.113.7', 51000)])
})

// ---- relaying ---------------------------------------------------------------------------------

test('a relay forwards only between the two members of a channel, from their own addresses, within its cap', () => {
  const addresses = new Map([[hex(A), at('10.81.0.1', 5000)], [hex(B), at('10.82.0.1', 6000)]])
  const addressOf = (peer: string): PeerAddress | null => addresses.get(peer) ?? null
  const relay = new RelayForwarder({ enabled: true, maxBytesPerS: 100_000, maxChannels: 1 })
  let n = 0
  const channel = (): Uint8Array => new Uint8Array(8).fill(++n)
  const opened = relay.open(hex(A), hex(B), true, channel, 0)
  assert.ok('channel' in opened)
  const id = toHex(opened.channel)
  // The same pair gets the same channel; another pair finds the relay full; an unreachable target is refused.
  assert.deepEqual(relay.open(hex(B), hex(A), true, channel, 0), opened)
  assert.deepEqual(relay.open(hex(A), hex(M), true, channel, 0), { refused: 'full' })
  assert.deepEqual(relay.open(hex(M), hex(B), false, channel, 0), { refused: 'unreachable' })
  assert.deepEqual(relay.forward(id, at('10.81.0.1', 5000), 1200, addressOf, 1), at('10.82.0.1', 6000))
  assert.deepEqual(relay.forward(id, at('10.82.0.1', 6000), 1200, addressOf, 1), at('10.81.0.1', 5000))
  // From anywhere else, or on a channel never opened: dropped.
  assert.equal(relay.forward(id, at('10.81.0.1', 5001), 1200, addressOf, 1), null)
  assert.equal(relay.forward('00'.repeat(8), at('10.81.0.1', 5000), 1200, addressOf, 1), null)
  // The cap: over ten seconds, what passes is about 100 kB/s.
  let passed = 0
  for (let t = 0; t < 10_000; t += 1) if (relay.forward(id, at('10.81.0.1', 5000), 1200, addressOf, 1000 + t) !== null) passed += 1200
  assert.ok(passed >= 0.9 * 1_000_000 && passed <= 1.1 * 1_000_000 + 64 * 1024, `${passed} bytes passed in 10 s`)
  assert.equal(relay.stats.relayDropped > 0, true)
  // Off: refused, and open channels are closed.
  relay.setLimits({ enabled: false, maxBytesPerS: 100_000, maxChannels: 1 })
  assert.deepEqual(relay.open(hex(A), hex(B), true, channel, 20_000), { refused: 'off' })
  assert.equal(relay.forward(id, at('10.81.0.1', 5000), 1200, addressOf, 20_000), null)
})

test('a relay closes idle channels and those whose members left', () => {
  const relay = new RelayForwarder({ enabled: true, maxBytesPerS: 1e9, maxChannels: 4 })
  const opened = relay.open(hex(A), hex(B), true, () => new Uint8Array(8).fill(1), 0)
  assert.ok('channel' in opened)
  relay.sweep(1000, () => true)
  assert.equal(relay.stats.relayChannels, 1)
  relay.sweep(2000, peer => peer !== hex(B))
  assert.equal(relay.stats.relayChannels, 0)
  relay.open(hex(A), hex(B), true, () => new Uint8Array(8).fill(2), 0)
  relay.sweep(31_000, () => true)
  assert.equal(relay.stats.relayChannels, 0)
})

test('relayed addresses name the relay and the member; socket addresses are not taken for them', () => {
  const address = relayAddress(hex(M), hex(B))
  assert.deepEqual(relayOf(address), { via: hex(M), peer: hex(B) })
  assert.equal(relayOf(at('10.0.0.1', 7300)), null)
  assert.equal(relayOf({ host: 'relay:x', port: 7300 }), null)
  const routes = new RelayRoutes()
  routes.set(hex(M), hex(B), new Uint8Array(8).fill(3))
  assert.deepEqual(routes.ofChannel('03'.repeat(8)), { via: hex(M), peer: hex(B), channel: new Uint8Array(8).fill(3) })
  routes.dropVia(hex(M))
  assert.equal(routes.channel(hex(M), hex(B)), undefined)
})

test('address book: a newer announcement that has so far listed only part of a peer\'s addresses does not drop the one a connection works at', () => {
  const book = new AddressBook(hex(key(1)))
  const peer = key(2)
  const unreachable = { host: '192.0.2.1', port: 9 }
  const working = { host: '127.0.0.1', port: 4000 }
  const show = (): string[] => book.list()[0]!.addresses.map(a => `${a.host}:${a.port}`).sort()
  book.set(peer, [unreachable, working])
  book.answered(peer, working)
  // Its announcement is one event per address; the first has come, the second not yet.
  book.set(peer, [unreachable])
  assert.deepEqual(show(), ['127.0.0.1:4000', '192.0.2.1:9'])
  assert.deepEqual(book.list()[0]!.next, working, 'the working address is still first in line')
  // A peer that moved: its new addresses join the one that works, which is tried first.
  const moved = { host: '198.51.100.7', port: 4000 }
  book.set(peer, [moved])
  assert.deepEqual(show(), ['127.0.0.1:4000', '198.51.100.7:4000'])
  // Once a connection works at the new one, the old one is no longer kept.
  book.answered(peer, moved)
  book.set(peer, [moved])
  assert.deepEqual(show(), ['198.51.100.7:4000'])
  // An address that answered but was never announced is not kept for it.
  book.answered(peer, { host: '203.0.113.5', port: 1 })
  assert.deepEqual(book.list()[0]!.next, moved)
})
