import { fromHex, toHex } from '../bytes.js'
import { randomBytes } from '../crypto/index.js'
import { DatagramKind } from '../wire/transit.js'
import { CHANNEL_BYTES, PUNCH_DATAGRAM_BYTES, RELAY_HEADER_BYTES, isIpv4 } from '../wire/transit-control.js'
import { sameAddress } from './address-book.js'
import { Traversal } from './traversal.js'
import { DEFAULT_RELAY_LIMITS, RelayForwarder, RelayRoutes, relayAddress, relayOf } from './relay.js'
import type { PeerAddress } from './address-book.js'
import type { Connection } from './connection.js'
import type { Route, TraversalAction, TraversalStats } from './traversal.js'
import type { RelayLimits, RelayStats } from './relay.js'
import type { ControlMessage, RelayRefusalReason } from '../wire/transit-control.js'

/** How a known peer is reached now, and since when (ms). */
export type PeerRoute =
  | { kind: 'direct', sinceMs: number }
  | { kind: 'relayed', via: string, sinceMs: number }
  | { kind: 'unreachable', sinceMs: number, relayRefused?: RelayRefusalReason }

/** Where a connection's peer sees us is told again this often (a report may be lost). */
export const OBSERVED_REPORT_MS = 5_000
/** A relay asked for and not answered is asked again after this. */
const RELAY_ANSWER_MS = 2_000

const PUNCH_DATAGRAM = new Uint8Array(PUNCH_DATAGRAM_BYTES)
PUNCH_DATAGRAM[0] = DatagramKind.punch

/** What crossing NATs needs of the transit layer. */
export interface CrossingHost {
  selfPk: Uint8Array
  now: () => number
  /** The peer's current connection, if it answers. */
  responsive: (peer: string) => Connection | undefined
  current: (peer: string) => Connection | undefined
  /** Peers we want a connection to. */
  known: () => string[]
  connected: () => string[]
  sendControl: (connection: Connection, message: ControlMessage) => void
  /** A new connection to the peer and its connect datagram (not sent). */
  connectDatagram: (peerPk: Uint8Array, address: PeerAddress) => { connection: Connection, datagram: Uint8Array }
  isOpen: (connection: Connection) => boolean
  connect: (peerPk: Uint8Array, address: PeerAddress) => void
  /** To the socket, as is. */
  send: (datagram: Uint8Array, to: PeerAddress) => void
  /** A datagram that arrived inside a relayed one, as from `from`. */
  receive: (datagram: Uint8Array, from: PeerAddress) => void
}

export interface CrossingStats extends TraversalStats, RelayStats {
  /** Relayed datagrams for a channel whose relay is not connected, or from elsewhere than the relay. */
  relayedUnroutable: number
}

/**
 * Reaching members behind NATs: where peers see us, introductions and punches (the machine
 * in traversal.ts), relaying for others and through others (relay.ts), and how each known
 * peer is reached and since when.
 */
export class Crossing {
  private readonly traversal: Traversal
  private readonly forwarder: RelayForwarder
  private readonly relayRoutes = new RelayRoutes()
  /** Relays asked for, per peer: when, and the last refusal. */
  private readonly relayAsks = new Map<string, { atMs: number, refused?: RelayRefusalReason }>()
  /** The dialer's connect during a punch: one connection, its datagram sent again each round. */
  private readonly punchConnects = new Map<string, { connection: Connection, datagram: Uint8Array }>()
  private readonly routes = new Map<string, PeerRoute>()
  private relayedUnroutable = 0

  constructor (private readonly host: CrossingHost, relay: RelayLimits = DEFAULT_RELAY_LIMITS) {
    this.forwarder = new RelayForwarder(relay)
    this.traversal = new Traversal(host.selfPk, {
      route: peer => this.route(peer),
      seenAt: peer => { const route = this.route(peer); return route?.kind === 'direct' ? route.address : null },
      connected: host.connected,
      wanted: () => host.known().map(peer => ({ peer, peerPk: fromHex(peer, 32) })),
      relaying: () => this.forwarder.settings.enabled
    })
  }

  get stats (): CrossingStats {
    return { ...this.traversal.stats, ...this.forwarder.stats, relayedUnroutable: this.relayedUnroutable }
  }

  get relayLimits (): RelayLimits {
    return this.forwarder.settings
  }

  setRelayLimits (limits: RelayLimits): void {
    this.forwarder.setLimits(limits)
  }

  /** Where connected peers see us, those seen so by the most peers first. */
  observedAddresses (): PeerAddress[] {
    return this.traversal.observedAddresses()
  }

  /** How a peer is reached now, and since when (as of the last tick). */
  routeOf (peer: string): PeerRoute {
    return this.routes.get(peer) ?? { kind: 'unreachable', sinceMs: this.host.now() }
  }

  /** How a peer is reached now: over a responsive connection, directly or through a relay. */
  route (peer: string): Route | null {
    const connection = this.host.responsive(peer)
    if (connection === undefined) return null
    const relayed = relayOf(connection.address)
    return relayed === null ? { kind: 'direct', address: connection.address } : { kind: 'relayed', via: relayed.via }
  }

  /** A relayed connection replaced by a direct one is left to die: no keepalives through the relay. */
  keepsAlive (connection: Connection): boolean {
    return relayOf(connection.address) === null || this.host.current(connection.peer) === connection
  }

  /** Tells a peer where its datagrams come from, as we see them (not through a relay: that says nothing). */
  reportObserved (connection: Connection, now: number): void {
    if (!connection.twoWay || now - connection.observedSentMs < OBSERVED_REPORT_MS) return
    connection.observedSentMs = now
    if (relayOf(connection.address) !== null || !isIpv4(connection.address.host)) return
    this.host.sendControl(connection, { type: 'observed', address: connection.address })
  }

  tick (now: number): void {
    for (const action of this.traversal.poll(now)) this.act(action, now)
    this.forwarder.sweep(now, peer => this.route(peer)?.kind === 'direct')
    for (const peer of this.host.known()) this.routes.set(peer, this.nextRoute(peer, now))
  }

  /** A peer's connection is gone: channels through it and what it reported of us go too. */
  lost (peer: string): void {
    this.relayRoutes.dropVia(peer)
    this.traversal.forget(peer)
  }

  private nextRoute (peer: string, now: number): PeerRoute {
    const route = this.route(peer)
    const before = this.routes.get(peer)
    if (route === null) {
      const refused = this.relayAsks.get(peer)?.refused
      return { kind: 'unreachable', sinceMs: before?.kind === 'unreachable' ? before.sinceMs : now, ...(refused === undefined ? {} : { relayRefused: refused }) }
    }
    if (route.kind === 'direct') return { kind: 'direct', sinceMs: before?.kind === 'direct' ? before.sinceMs : now }
    return { kind: 'relayed', via: route.via, sinceMs: before?.kind === 'relayed' && before.via === route.via ? before.sinceMs : now }
  }

  private act (action: TraversalAction, now: number): void {
    switch (action.kind) {
      case 'control': {
        const connection = this.host.current(action.peer)
        if (connection?.established === true) this.host.sendControl(connection, action.message)
        return
      }
      case 'punch':
        for (const to of action.targets) this.host.send(PUNCH_DATAGRAM, to)
        return
      case 'dial': {
        let punch = this.punchConnects.get(action.peer)
        if (punch === undefined || !this.host.isOpen(punch.connection) || punch.connection.established) {
          punch = this.host.connectDatagram(action.peerPk, action.targets[0]!)
          this.punchConnects.set(action.peer, punch)
        }
        // The same connect each time: whichever copy gets through first is the connection; the rest are replays.
        for (const to of action.targets) this.host.send(punch.datagram, to)
        return
      }
      case 'relay': {
        const asked = this.relayAsks.get(action.peer)
        if (asked !== undefined && asked.refused === undefined && now - asked.atMs < RELAY_ANSWER_MS) return
        this.relayAsks.set(action.peer, { atMs: now })
        const via = this.host.current(action.via)
        if (via !== undefined) this.host.sendControl(via, { type: 'relayRequest', peerPk: fromHex(action.peer, 32) })
      }
    }
  }

  /** A control message from a connected peer. */
  onControl (connection: Connection, message: ControlMessage): void {
    const now = this.host.now()
    const peer = connection.peer
    switch (message.type) {
      case 'observed':
        if (relayOf(connection.address) === null) this.traversal.onObserved(peer, message.address)
        return
      case 'relayRequest': {
        const target = toHex(message.peerPk)
        const opened = this.forwarder.open(peer, target, this.route(target)?.kind === 'direct', () => randomBytes(CHANNEL_BYTES), now)
        if ('refused' in opened) { this.host.sendControl(connection, { type: 'relayRefused', peerPk: message.peerPk, reason: opened.refused }); return }
        this.host.sendControl(connection, { type: 'relayOpen', peerPk: message.peerPk, channel: opened.channel })
        this.host.sendControl(this.host.current(target)!, { type: 'relayOpen', peerPk: connection.peerPk, channel: opened.channel })
        return
      }
      case 'relayOpen': {
        const target = toHex(message.peerPk)
        this.relayRoutes.set(peer, target, message.channel)
        // The side that asked connects through it; the other waits for that connect.
        if (this.relayAsks.has(target) && this.route(target) === null) this.host.connect(message.peerPk, relayAddress(peer, target))
        this.relayAsks.delete(target)
        return
      }
      case 'relayRefused':
        this.relayAsks.set(toHex(message.peerPk), { atMs: now, refused: message.reason })
        return
      default:
        for (const action of this.traversal.onControl(peer, message, now)) this.act(action, now)
    }
  }

  /**
   * A relayed datagram: for a channel a relay opened for us, the transit datagram inside is
   * handled as from the member behind it; for a channel we relay, it is passed on.
   */
  onRelayed (bytes: Uint8Array, from: PeerAddress): void {
    const channelId = toHex(bytes.subarray(1, RELAY_HEADER_BYTES))
    const ours = this.relayRoutes.ofChannel(channelId)
    if (ours !== undefined) {
      const via = this.route(ours.via)
      if (via?.kind !== 'direct' || !sameAddress(via.address, from)) { this.relayedUnroutable++; return }
      this.host.receive(bytes.subarray(RELAY_HEADER_BYTES), relayAddress(ours.via, ours.peer))
      return
    }
    const to = this.forwarder.forward(channelId, from, bytes.length, peer => {
      const route = this.route(peer)
      return route?.kind === 'direct' ? route.address : null
    }, this.host.now())
    if (to !== null) this.host.send(bytes, to)
  }

  /** A datagram for `to`: as is to a socket address, wrapped for the relay a relayed address names (null: no route). */
  outgoing (datagram: Uint8Array, to: PeerAddress): { datagram: Uint8Array, to: PeerAddress } | null {
    const relayed = relayOf(to)
    if (relayed === null) return { datagram, to }
    const channel = this.relayRoutes.channel(relayed.via, relayed.peer)
    const via = this.route(relayed.via)
    if (channel === undefined || via?.kind !== 'direct') { this.relayedUnroutable++; return null }
    const wrapped = Buffer.allocUnsafe(RELAY_HEADER_BYTES + datagram.length)
    wrapped[0] = DatagramKind.relayed
    wrapped.set(channel, 1)
    wrapped.set(datagram, RELAY_HEADER_BYTES)
    return { datagram: wrapped, to: via.address }
  }
}
