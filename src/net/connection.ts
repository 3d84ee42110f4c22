import { ReplayWindow } from './replay-window.js'
import { toHex } from '../bytes.js'
import type { GuardStats } from './connect-guard.js'
import type { PeerAddress } from './address-book.js'

export interface TransitStats extends GuardStats {
  datagramsIn: number
  datagramsOut: number
  connectsAccepted: number
  connectsRejected: number
  /** Connects from members whose clocks are too far off ours (also counted in connectsRejected). */
  connectsClockSkewed: number
  connectsReplayed: number
  unknownConnection: number
  replayedDatagrams: number
  undecryptable: number
  malformed: number
  eventsDroppedNoConnection: number
  /** Connects that reached the sealed-box open and signature check. */
  connectsOpened: number
  /** Path challenges sent to a new address a connection's datagrams came from. */
  pathChallenges: number
  /** Connections moved to a new address after it answered a challenge. */
  pathsValidated: number
  /** Punch datagrams from members opening their NATs towards us (dropped: they carry nothing). */
  punchesReceived: number
  /** Control messages that opened but did not decode. */
  controlMalformed: number
  /** Relayed datagrams for a channel whose relay is not connected, or from elsewhere than the relay. */
  relayedUnroutable: number
}

/** Connections live this long before a fresh connect replaces them. */
export const CONNECTION_TTL_MS = 10 * 60_000
/** A connect older or newer than this (clock skew included) is refused. */
export const CONNECT_FRESHNESS_MS = 120_000
/** Sent on an otherwise quiet connection this often, so silence means something within a second or two. */
export const KEEPALIVE_MS = 500
/** A peer heard from within this counts as connected: three keepalives missed in a row do not. */
export const RESPONSIVE_MS = 1_500
/** A connection silent this long is forgotten (a short stall keeps it, reported as not connected). */
export const DEAD_AFTER_MS = 10_000
export const CONNECT_RETRY_MS = 1_000
export const HANDSHAKE_TIMEOUT_MS = 5_000
/** A new address is challenged at most this often per connection. */
export const PATH_CHALLENGE_MS = 250

/** One transit connection: its key and nonce counters, where the peer is, and what waits to be sent. */
export interface Connection {
  id: Uint8Array
  idHex: string
  key: Uint8Array
  peer: string
  peerPk: Uint8Array
  address: PeerAddress
  /** The direction byte of our own nonces: 0 if we connected, 1 if they did. */
  direction: 0 | 1
  sendCounter: number
  replay: ReplayWindow
  established: boolean
  /**
   * A data datagram came on this connection. For the side that connected, that is the accept;
   * for the side that accepted, the other side only sends once it heard the accept. Either way,
   * traffic has gone both ways.
   */
  twoWay: boolean
  createdAtMs: number
  /**
   * When the connecting side made it, by that side's clock (it is in the connect). Both sides
   * know it, so both rank their connections to each other alike (see `preferredOf`).
   */
  stampMs: number
  lastHeardMs: number
  lastSentMs: number
  /** Events waiting to be packed into datagrams. */
  queue: Uint8Array[]
  /**
   * A challenge sent to another address the peer's datagrams came from: answers keep going to
   * `address` until the response comes back from there (a replayed datagram cannot move us).
   */
  probe: { address: PeerAddress, token: Uint8Array, sentAtMs: number } | null
  /** When the peer was last told where we see it (an `observed` control message). */
  observedSentMs: number
}

export function newConnection (id: Uint8Array, key: Uint8Array, peerPk: Uint8Array, address: PeerAddress, direction: 0 | 1, now: number, stampMs: number): Connection {
  return {
    id, idHex: toHex(id), key, peer: toHex(peerPk), peerPk, address, direction, sendCounter: 0,
    replay: new ReplayWindow(), established: false, twoWay: false, createdAtMs: now, stampMs, lastHeardMs: now, lastSentMs: now, queue: [], probe: null, observedSentMs: -Infinity
  }
}

/**
 * Of two connections between the same two members, the one both send on: the newer by its
 * connecting side's stamp, the larger id on a tie. Each side judging by its own clock would
 * disagree whenever both connected at once (each connect arrives after its own was sent), and
 * each would then send on a connection the other does not.
 */
export function preferredOf (a: Connection, b: Connection): Connection {
  if (a.stampMs !== b.stampMs) return a.stampMs > b.stampMs ? a : b
  return a.idHex > b.idHex ? a : b
}
