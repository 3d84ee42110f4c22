import { encodeSignedEvent } from '../wire/index.js'
import type { KeyPair } from '../crypto/index.js'
import type { Transport } from '../net/transport.js'
import type { RequesterOptions } from '../sync/requester.js'
import type { Store } from '../store/store.js'
import type { EventHeader } from '../wire/index.js'
import type { FileTable } from './file-table.js'

export interface NodeOptions {
  /** Directory holding the database and the slice files; created if missing. */
  dataDir: string
  identity: KeyPair
  /** The network's symmetric key: descriptors are encrypted with it. */
  networkKey: Uint8Array
  transport?: Transport
  /** fdatasync slice files before recording slices as held (default true). */
  durable?: boolean
  /**
   * Run the periodic fdatasync on the thread pool instead of blocking (default false: the
   * simulations step time by hand and expect the store to follow within the step).
   */
  backgroundSync?: boolean
  requester?: Partial<RequesterOptions>
  /** Rate caps, in file bytes per second (null: none). */
  limits?: Limits
  /**
   * How much late pacing time is made up at once (see Pacer): a host that calls `pace`
   * between ticks on a fine timer sets it low, keeping bursts small; default a tick's worth.
   */
  paceCatchUpMs?: number
  /** Clock value until the first tick. */
  startMs?: number
}

/** Bandwidth caps in file bytes per second, all peers together; null for none. */
export interface Limits {
  maxUploadBytesPerS: number | null
  maxDownloadBytesPerS: number | null
}

export interface PeerCounters {
  slicesAccepted: number
  slicesRejected: number
  requestsAnswered: number
  /** Windows (or window-hash lists) it supplied that failed their hash. */
  badWindows: number
  lastSeenMs: number
}

/** Counters of what this node saw; dropped input is counted here, never thrown. */
export interface NodeStats {
  malformedEvents: number
  slicesAccepted: number
  slicesDuplicate: number
  /** Slices queued for a peer that went away before its pace let them go. */
  slicesUnsent: number
  slicesRejected: number
  slicesUnsolicited: number
  slicesSent: number
  requestsSent: number
  requestsAnswered: number
  /** Requests given up with slices missing, all causes; and by cause (see Requester.expire). */
  requestsTimedOut: number
  requestsOvertaken: number
  requestsDrained: number
  requestsUnanswered: number
  /** Slices taken after their request was given up for lost: the loss was called too soon. */
  slicesLate: number
  repliesReceived: number
  eventsAccepted: number
  eventsRejected: number
  syncRequestsSent: number
  syncEventsSent: number
  localRecordsDamaged: number
  /** Slices that arrived while their file could not be written (a full disk). */
  slicesDroppedStalled: number
  /** Windows whose records did not match their hash (dropped whole and fetched again). */
  windowsFailed: number
  /** Window hashes from a peer nobody asked for them. */
  windowHashesUnsolicited: number
}

export function emptyStats (): NodeStats {
  return {
    malformedEvents: 0, slicesAccepted: 0, slicesDuplicate: 0, slicesUnsent: 0, slicesRejected: 0, slicesUnsolicited: 0, slicesSent: 0,
    requestsSent: 0, requestsAnswered: 0, requestsTimedOut: 0, requestsOvertaken: 0, requestsDrained: 0, requestsUnanswered: 0, slicesLate: 0, repliesReceived: 0,
    eventsAccepted: 0, eventsRejected: 0, syncRequestsSent: 0, syncEventsSent: 0, localRecordsDamaged: 0, slicesDroppedStalled: 0, windowsFailed: 0, windowHashesUnsolicited: 0
  }
}

const EVENT_COUNT_KEY = 'event_count'

/**
 * Signs this node's events. Every event carries a count that never repeats, kept in the
 * store (written with the next flush, or at once with `save`).
 */
export class Signer {
  private count: number
  private saved: number

  constructor (private readonly store: Store, private readonly identity: KeyPair, private readonly clock: () => number) {
    this.count = store.getMeta(EVENT_COUNT_KEY) ?? 0
    this.saved = this.count
  }

  header (type: number, ttlMs: number): EventHeader {
    return { type, count: this.count++, createdAtMs: Math.floor(this.clock()), ttlMs, signerPk: this.identity.publicKey }
  }

  /** A signed event of `type` with `payload` (ttl 0). */
  sign (type: number, payload: Uint8Array, header: EventHeader = this.header(type, 0)): Uint8Array {
    return encodeSignedEvent(header, payload, this.identity.secretKey)
  }

  get unsaved (): boolean {
    return this.count !== this.saved
  }

  save (): void {
    this.store.setMeta(EVENT_COUNT_KEY, this.count)
    this.saved = this.count
  }
}

export interface PeerDelta { accepted: number, rejected: number, answered: number, badWindows: number }

/** Per peer, what changed since the store last heard: written with each flush. */
export class PeerLedger {
  readonly deltas = new Map<string, PeerDelta>()

  of (peer: string): PeerDelta {
    let delta = this.deltas.get(peer)
    if (delta === undefined) { delta = { accepted: 0, rejected: 0, answered: 0, badWindows: 0 }; this.deltas.set(peer, delta) }
    return delta
  }
}

/** What every part of a node shares: handed to each by `Node`, which owns it. */
export interface NodeContext {
  readonly dataDir: string
  readonly identity: KeyPair
  readonly networkKey: Uint8Array
  readonly store: Store
  readonly files: FileTable
  readonly signer: Signer
  readonly counters: NodeStats
  readonly ledger: PeerLedger
  /** The node's clock: the latest `t_ms` it was given. */
  now: () => number
  /** The peers connected now. */
  peers: () => readonly string[]
  send: (peer: string, event: Uint8Array) => void
  /** The connection an event to `peer` would take now (see Transport.session). */
  session: (peer: string) => unknown
  /** Events one datagram carries: a paced sender releases that many together, so each datagram goes full. */
  eventsPerDatagram: () => number
}
