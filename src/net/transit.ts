import { ConnectGuard } from './connect-guard.js'
import { AddressBook, sameAddress } from './address-book.js'
import { CONNECTION_TTL_MS, CONNECT_FRESHNESS_MS, CONNECT_RETRY_MS, DEAD_AFTER_MS, HANDSHAKE_TIMEOUT_MS, KEEPALIVE_MS, PATH_CHALLENGE_MS, RESPONSIVE_MS, newConnection, preferredOf } from './connection.js'
import type { Connection, TransitStats } from './connection.js'
import type { PeerAddress } from './address-book.js'
import { AEAD_KEY_BYTES, randomBytes } from '../crypto/index.js'
import { bytesEqual, toHex } from '../bytes.js'
import { openConnect, openData, sealConnect, sealData } from './sealing.js'
import { EVENT_BYTES } from '../wire/constants.js'
import { WireError } from '../wire/errors.js'
import { CONNECT_DATAGRAM_BYTES, DATA_OVERHEAD_BYTES, DataOffset, DatagramKind, PATH_TOKEN_BYTES } from '../wire/transit.js'
import type { ConnectGuardOptions } from './connect-guard.js'
import type { KeyPair } from '../crypto/index.js'
import type { Transport } from './transport.js'
import { Crossing } from './crossing.js'
import type { CrossingStats, PeerRoute } from './crossing.js'
import type { RelayLimits } from './relay.js'
import { MAX_CONTROL_BYTES, PUNCH_DATAGRAM_BYTES, RELAY_HEADER_BYTES, decodeControl, encodeControl } from '../wire/transit-control.js'
import type { ControlMessage } from '../wire/transit-control.js'

export type { PeerAddress } from './address-book.js'
export { MAX_ADDRESSES_PER_PEER } from './address-book.js'
export { CONNECTION_TTL_MS, CONNECT_FRESHNESS_MS, CONNECT_RETRY_MS, DEAD_AFTER_MS, KEEPALIVE_MS, RESPONSIVE_MS } from './connection.js'
export type { TransitStats } from './connection.js'
export type { PeerRoute } from './crossing.js'

export interface TransitOptions {
  identity: KeyPair
  networkId: Uint8Array
  networkKey: Uint8Array
  /** Largest datagram to send (path MTU); default 1400, which carries two events. */
  mtu?: number
  sendDatagram: (bytes: Uint8Array, to: PeerAddress) => void
  deliver: (peer: string, event: Uint8Array) => void
  now: () => number
  /**
   * A member's connect was refused because its clock is off from ours by `skewMs` (positive:
   * ahead) by more than CONNECT_FRESHNESS_MS. Only a member can get this far: it is worth telling.
   */
  onClockSkew?: (peer: string, skewMs: number) => void
  /** Limits of the cheap checks before a connect's public-key work (defaults suit a team). */
  connectLimits?: Pick<ConnectGuardOptions, 'loadPerSecond' | 'perSourcePerSecond' | 'perSourceBurst'>
  /** Whether and how much this node relays for members who cannot meet (default: on, capped). */
  relay?: RelayLimits
}

/** What a data datagram may carry: whole events. */
const wholeEvents = (length: number): boolean => length % EVENT_BYTES === 0
/** What a path challenge or response carries: one token. */
const aPathToken = (length: number): boolean => length === PATH_TOKEN_BYTES
/** What a control datagram may carry: one control message. */
const aControlMessage = (length: number): boolean => length >= 1 && length <= MAX_CONTROL_BYTES

/**
 * The transit layer over any datagram socket: sealed connects with proof of network
 * membership, then every datagram encrypted with the connection's key. Strangers, replays
 * and unknown connections get no answer. It is the node's Transport on a real network.
 */
export class TransitEndpoint implements Transport {
  private readonly own = {
    datagramsIn: 0, datagramsOut: 0, connectsAccepted: 0, connectsRejected: 0, connectsClockSkewed: 0, connectsReplayed: 0,
    unknownConnection: 0, replayedDatagrams: 0, undecryptable: 0, malformed: 0, eventsDroppedNoConnection: 0,
    connectsOpened: 0, pathChallenges: 0, pathsValidated: 0, punchesReceived: 0, controlMalformed: 0
  }

  private readonly guard: ConnectGuard

  private readonly connections = new Map<string, Connection>()
  /** The connection we send on, per peer: the newest established one. */
  private readonly current = new Map<string, Connection>()
  private readonly addresses: AddressBook
  private readonly seenConnects = new Map<string, number>()
  /** The connection whose datagram is being handled (answers go back on it). */
  private replyVia: Connection | null = null
  /** The connection the last datagram came on (forgotten with it in `drop`). */
  private lastLookup: Connection | null = null
  readonly eventsPerDatagram: number
  private readonly plain: Uint8Array
  readonly publicKey: string
  private readonly crossing: Crossing

  constructor (private readonly options: TransitOptions) {
    const mtu = options.mtu ?? 1400
    // Room for a relay's header too: the same datagram may go either way.
    this.eventsPerDatagram = Math.floor((mtu - DATA_OVERHEAD_BYTES - RELAY_HEADER_BYTES) / EVENT_BYTES)
    if (this.eventsPerDatagram < 1) throw new RangeError(`MTU ${mtu} cannot carry one ${EVENT_BYTES}-byte event`)
    this.plain = new Uint8Array(this.eventsPerDatagram * EVENT_BYTES)
    this.publicKey = toHex(options.identity.publicKey)
    this.addresses = new AddressBook(this.publicKey)
    this.guard = new ConnectGuard({ networkKey: options.networkKey, publicKey: options.identity.publicKey, now: options.now, ...options.connectLimits })
    this.crossing = new Crossing({
      selfPk: options.identity.publicKey,
      now: options.now,
      responsive: peer => { const c = this.current.get(peer); return c !== undefined && this.responsive(c, options.now()) ? c : undefined },
      current: peer => this.current.get(peer),
      known: () => this.addresses.list().map(k => k.peer),
      connected: () => this.peers(),
      sendControl: (connection, message) => this.sendControl(connection, message),
      connectDatagram: (peerPk, address) => this.connectDatagram(peerPk, address),
      isOpen: connection => this.connections.has(connection.idHex),
      connect: (peerPk, address) => this.connect(peerPk, address),
      send: (datagram, to) => this.output(datagram, to),
      receive: (datagram, from) => this.onDatagram(datagram, from)
    }, options.relay)
  }

  get stats (): TransitStats & CrossingStats {
    return { ...this.own, ...this.guard.stats, ...this.crossing.stats }
  }

  get relayLimits (): RelayLimits {
    return this.crossing.relayLimits
  }

  setRelayLimits (limits: RelayLimits): void {
    this.crossing.setRelayLimits(limits)
  }

  /** Where connected peers see us, those seen so by the most peers first. */
  observedAddresses (): PeerAddress[] {
    return this.crossing.observedAddresses()
  }

  // ---- Transport -------------------------------------------------------------------------

  /** The peers connected now: traffic went both ways and they were heard from lately. */
  peers (): string[] {
    const now = this.options.now()
    const connected: string[] = []
    for (const [peer, connection] of this.current) if (this.responsive(connection, now)) connected.push(peer)
    return connected
  }

  private responsive (connection: Connection, now: number): boolean {
    return connection.twoWay && now - connection.lastHeardMs <= RESPONSIVE_MS
  }

  session (peer: string): unknown {
    return this.replyVia?.peer === peer ? this.replyVia : this.current.get(peer)
  }

  /**
   * Queues an event for a peer. An answer given while a datagram from that peer is being
   * handled goes back on the connection the question came by: after a peer restarts,
   * answers meant for its old process must not reach the new one as duplicates.
   */
  send (peer: string, event: Uint8Array): void {
    const connection = this.replyVia?.peer === peer ? this.replyVia : this.current.get(peer)
    if (connection === undefined) { this.own.eventsDroppedNoConnection++; return }
    const queue = connection.queue
    queue.push(event)
    if (queue.length >= this.eventsPerDatagram) this.flushConnection(connection, false)
  }

  /** Sends whatever is queued, the last datagram of each connection possibly not full. */
  flush (): void {
    for (const connection of this.connections.values()) if (connection.queue.length > 0) this.flushConnection(connection, true)
  }

  // ---- connecting -------------------------------------------------------------------------

  /**
   * Remembers where a peer can be reached, replacing what was known of it; `tick` keeps a
   * connection to it up, trying the addresses in turn until one answers.
   */
  setKnownAddresses (peerPk: Uint8Array, addresses: PeerAddress[]): void {
    this.addresses.set(peerPk, addresses)
  }

  knownPeers (): Array<{ peer: string, addresses: PeerAddress[], address: PeerAddress, connected: boolean, route: PeerRoute }> {
    const now = this.options.now()
    return this.addresses.list().map(({ peer, addresses, next }) => {
      const current = this.current.get(peer)
      return { peer, addresses, address: current?.address ?? next, connected: current !== undefined && this.responsive(current, now), route: this.crossing.routeOf(peer) }
    })
  }

  connectionCount (): number {
    return this.current.size
  }

  /** Opens a connection: a sealed connect to the peer's key at `address`. */
  connect (peerPk: Uint8Array, address: PeerAddress): void {
    this.output(this.connectDatagram(peerPk, address).datagram, address)
  }

  /** A new connection to the peer and the connect that opens it, sent to `address` or elsewhere. */
  private connectDatagram (peerPk: Uint8Array, address: PeerAddress): { connection: Connection, datagram: Uint8Array } {
    const now = this.options.now()
    const connection = this.newConnection(randomBytes(16), randomBytes(AEAD_KEY_BYTES), peerPk, address, 0, now, Math.floor(now))
    const datagram = sealConnect(this.options, peerPk, connection.id, connection.key, connection.stampMs)
    this.guard.stamp(datagram, peerPk, address)
    return { connection, datagram }
  }

  /** Keepalives, reconnects to known peers, and forgetting dead connections. */
  tick (): void {
    const now = this.options.now()
    for (const connection of this.connections.values()) {
      const silentFor = now - connection.lastHeardMs
      const expired = now - connection.createdAtMs > CONNECTION_TTL_MS + DEAD_AFTER_MS
      if ((!connection.established && silentFor > HANDSHAKE_TIMEOUT_MS) || silentFor > DEAD_AFTER_MS || expired) {
        this.drop(connection)
      } else if (connection.established && now - connection.lastSentMs >= KEEPALIVE_MS && this.crossing.keepsAlive(connection)) {
        this.sendData(connection, this.plain.subarray(0, 0))
      }
      this.crossing.reportObserved(connection, now)
    }
    const attempts = this.addresses.attempts(now, CONNECT_RETRY_MS, peer => {
      const current = this.current.get(peer)
      return current === undefined ? undefined : { address: current.address, renewing: now - current.createdAtMs > CONNECTION_TTL_MS }
    })
    for (const { peerPk, address } of attempts) this.connect(peerPk, address)
    for (const [id, until] of this.seenConnects) if (until < now) this.seenConnects.delete(id)
    this.crossing.tick(now)
  }

  private sendControl (connection: Connection, message: ControlMessage): void {
    this.sendData(connection, encodeControl(message), DatagramKind.control)
  }

  // ---- input ------------------------------------------------------------------------------

  /**
   * One datagram from the socket, whose buffer this takes over (data is decrypted in place).
   * Anything that does not check out is dropped and counted.
   */
  onDatagram (bytes: Uint8Array, from: PeerAddress): void {
    this.own.datagramsIn++
    const kind = bytes[0]
    if (kind === DatagramKind.connect && bytes.length === CONNECT_DATAGRAM_BYTES) this.onConnect(bytes, from)
    else if (kind === DatagramKind.data && bytes.length >= DATA_OVERHEAD_BYTES) this.onData(bytes, from)
    else if (kind === DatagramKind.cookie) this.onCookie(bytes, from)
    else if ((kind === DatagramKind.pathChallenge || kind === DatagramKind.pathResponse) && bytes.length === DATA_OVERHEAD_BYTES + PATH_TOKEN_BYTES) this.onPath(bytes, from)
    else if (kind === DatagramKind.control) this.onControl(bytes)
    // Relayed datagrams come from a socket address, never from inside another relayed one.
    else if (kind === DatagramKind.relayed && bytes.length > RELAY_HEADER_BYTES && from.port !== 0) this.crossing.onRelayed(bytes, from)
    else if (kind === DatagramKind.punch && bytes.length === PUNCH_DATAGRAM_BYTES) this.own.punchesReceived++
    else this.own.malformed++
  }

  private onConnect (bytes: Uint8Array, from: PeerAddress): void {
    // The cheap checks first: a flood of connects must not cost a public-key operation each.
    const { verdict, reply } = this.guard.check(bytes, from)
    if (reply !== undefined) this.output(reply, from)
    if (verdict !== 'pass') return
    this.own.connectsOpened++
    const now = this.options.now()
    const opened = openConnect(bytes, this.options, now)
    if ('refused' in opened) {
      this.own.connectsRejected++
      if (opened.refused === 'skewed') {
        this.own.connectsClockSkewed++
        this.options.onClockSkew?.(toHex(opened.senderPk), opened.skewMs)
      }
      return
    }
    const { connect } = opened
    const idHex = toHex(connect.connectionId)
    if (this.seenConnects.has(idHex) || this.connections.has(idHex)) { this.own.connectsReplayed++; return }
    this.seenConnects.set(idHex, connect.createdAtMs + 2 * CONNECT_FRESHNESS_MS)
    const connection = this.newConnection(connect.connectionId, connect.transitKey, connect.senderPk, from, 1, now, connect.createdAtMs)
    this.establish(connection)
    this.own.connectsAccepted++
    // The accept: an empty data datagram, smaller than the connect that asked for it.
    this.sendData(connection, this.plain.subarray(0, 0))
  }

  /** A cookie for a connect we sent while the peer was under load: connect again with it at once. */
  private onCookie (bytes: Uint8Array, from: PeerAddress): void {
    const peerPk = this.guard.takeCookie(bytes, from)
    if (peerPk === null) { this.own.malformed++; return }
    this.connect(peerPk, from)
  }

  /**
   * Opens a datagram sealed with a connection's key, in place (the datagram's buffer is ours):
   * its connection and plaintext, or null (counted) when it does not check out or is replayed.
   */
  private open (bytes: Uint8Array, payloadOk: (length: number) => boolean): { connection: Connection, plain: Uint8Array } | null {
    const connection = this.connectionOf(bytes.subarray(DataOffset.connectionId, DataOffset.nonce))
    if (connection === undefined) { this.own.unknownConnection++; return null }
    const plain = openData(bytes, connection, payloadOk)
    if (plain === 'malformed') { this.own.malformed++; return null }
    if (plain === 'undecryptable') { this.own.undecryptable++; return null }
    if (plain === 'replayed') { this.own.replayedDatagrams++; return null }
    connection.lastHeardMs = this.options.now()
    return { connection, plain }
  }

  /**
   * One data datagram; the events handed on are views into it (receivers copy what they keep).
   * The first one establishes the connection at the address it came from; after that, another
   * address is only challenged (see `onPath`).
   */
  private onData (bytes: Uint8Array, from: PeerAddress): void {
    const opened = this.open(bytes, wholeEvents)
    if (opened === null) return
    const { connection, plain } = opened
    const length = plain.length
    if (!connection.established) {
      connection.address = from
      this.establish(connection)
    } else if (!sameAddress(connection.address, from)) {
      this.challengePath(connection, from)
    }
    if (!connection.twoWay) {
      connection.twoWay = true
      // Our connect was accepted: say at once that the accept arrived, so the other side may count us connected.
      if (connection.direction === 0) this.sendData(connection, this.plain.subarray(0, 0))
    }
    this.replyVia = connection
    try {
      for (let at = 0; at < length; at += EVENT_BYTES) this.options.deliver(connection.peer, plain.subarray(at, at + EVENT_BYTES))
    } finally {
      this.replyVia = null
    }
  }

  // ---- getting through NATs ----------------------------------------------------------------

  /** A control message from a connected peer: NAT traversal and relaying. */
  private onControl (bytes: Uint8Array): void {
    const opened = this.open(bytes, aControlMessage)
    if (opened === null) return
    const { connection, plain } = opened
    let message: ControlMessage
    try {
      message = decodeControl(plain)
    } catch (err) {
      if (!(err instanceof WireError)) throw err
      this.own.controlMalformed++
      return
    }
    this.crossing.onControl(connection, message)
  }

  // ---- path validation --------------------------------------------------------------------

  /** As QUIC does: a new address gets a fresh token and must send it back before it is used. */
  private challengePath (connection: Connection, to: PeerAddress): void {
    const now = this.options.now()
    const probe = connection.probe
    if (probe !== null && sameAddress(probe.address, to) && now - probe.sentAtMs < PATH_CHALLENGE_MS) return
    connection.probe = { address: to, token: randomBytes(PATH_TOKEN_BYTES), sentAtMs: now }
    this.own.pathChallenges++
    this.sendData(connection, connection.probe.token, DatagramKind.pathChallenge, to)
  }

  /** A challenge is answered to where it came from; a matching response moves the connection there. */
  private onPath (bytes: Uint8Array, from: PeerAddress): void {
    const kind = bytes[0]
    const opened = this.open(bytes, aPathToken)
    if (opened === null) return
    const { connection, plain } = opened
    if (kind === DatagramKind.pathChallenge) {
      this.sendData(connection, plain, DatagramKind.pathResponse, from)
      return
    }
    const probe = connection.probe
    if (probe === null || !sameAddress(probe.address, from) || !bytesEqual(probe.token, plain)) { this.own.malformed++; return }
    connection.probe = null
    connection.address = from
    this.own.pathsValidated++
    if (this.current.get(connection.peer) === connection) this.establish(connection)
  }

  // ---- helpers ----------------------------------------------------------------------------

  /** The connection a datagram names; a burst comes on one connection, so the last one is tried first. */
  private connectionOf (id: Uint8Array): Connection | undefined {
    const last = this.lastLookup
    if (last !== null && bytesEqual(last.id, id)) return last
    const found = this.connections.get(toHex(id))
    if (found !== undefined) this.lastLookup = found
    return found
  }

  private newConnection (id: Uint8Array, key: Uint8Array, peerPk: Uint8Array, address: PeerAddress, direction: 0 | 1, now: number, stampMs: number): Connection {
    const connection = newConnection(id, key, peerPk, address, direction, now, stampMs)
    this.connections.set(connection.idHex, connection)
    return connection
  }

  private establish (connection: Connection): void {
    connection.established = true
    const current = this.current.get(connection.peer)
    if (current === undefined || preferredOf(current, connection) === connection) this.current.set(connection.peer, connection)
    // The next attempt, after a restart or a cut, goes first to the address that answered.
    this.addresses.answered(connection.peerPk, connection.address)
  }

  private drop (connection: Connection): void {
    this.connections.delete(connection.idHex)
    if (this.lastLookup === connection) this.lastLookup = null
    this.own.eventsDroppedNoConnection += connection.queue.length
    if (this.current.get(connection.peer) !== connection) return
    this.current.delete(connection.peer)
    for (const other of this.connections.values()) {
      if (other.peer === connection.peer && other.established) this.establish(other)
    }
    if (!this.current.has(connection.peer)) this.crossing.lost(connection.peer)
  }

  private flushConnection (connection: Connection, all: boolean): void {
    const queue = connection.queue
    let at = 0
    while (queue.length - at >= this.eventsPerDatagram || (all && at < queue.length)) {
      const count = Math.min(this.eventsPerDatagram, queue.length - at)
      for (let k = 0; k < count; k++) this.plain.set(queue[at + k]!, k * EVENT_BYTES)
      this.sendData(connection, this.plain.subarray(0, count * EVENT_BYTES))
      at += count
    }
    queue.splice(0, at)
  }

  /** Seals `payload` on the connection (events, or a path token) and sends it, by default to its address. */
  private sendData (connection: Connection, payload: Uint8Array, kind: number = DatagramKind.data, to: PeerAddress = connection.address): void {
    const datagram = sealData(connection, payload, kind)
    connection.lastSentMs = this.options.now()
    this.output(datagram, to)
  }

  /** Sends a datagram to a socket address, or through the relay a relayed address names. */
  private output (datagram: Uint8Array, to: PeerAddress): void {
    const routed = this.crossing.outgoing(datagram, to)
    if (routed === null) return
    this.own.datagramsOut++
    this.options.sendDatagram(routed.datagram, routed.to)
  }
}
