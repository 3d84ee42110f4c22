import { bytesEqual, fromHex, toHex } from '../bytes.js'
import { sameAddress } from './address-book.js'
import type { PeerAddress } from './address-book.js'
import type { ControlMessage } from '../wire/transit-control.js'

/**
 * Getting through NATs, as a protocol machine: fed control messages and time, it says what
 * to send. A member that cannot reach another asks the members it is connected to for an
 * introduction; one connected to both tells each where it sees the other, and both send at
 * once for a few seconds (libp2p's DCUtR): each side's datagrams open its own NAT for the
 * other's. The side with the smaller key dials (one connect, sent again and again, so at
 * most one connection comes of it); the other sends small punch datagrams. When punching
 * fails, the dialer asks the introducer to relay, and punching is tried again now and then
 * while relayed.
 */

/** A member not connected is asked about this often (and an introduction's punch refreshed). */
export const INTRODUCE_RETRY_MS = 1_000
/** One punch round (the dialer's connect, or a punch datagram, to each target) this often. */
export const PUNCH_INTERVAL_MS = 100
/** A punch lasts this long; then the dialer asks the introducer for a relay, if it offered one. */
export const PUNCH_MS = 3_000
/** After a punch failed, the next one to the same member waits this long. */
export const PUNCH_BACKOFF_MS = 5_000
/** While relayed, an introduction (and so a punch) is asked for this often. */
export const REPUNCH_RELAYED_MS = 15_000
/** NATs that hand out ports in sequence map the next connection near the observed port. */
export const NEAR_PORT_OFFSETS = [1, -1, 2] as const
/** Punches at once at most (an introduction is a member's word: it cannot make us spray). */
export const MAX_PUNCHES = 8
/** An introduce request for the same pair is answered at most this often. */
export const INTRODUCTION_GAP_MS = 250
/** Observed addresses are kept from this many reporters at most. */
const MAX_REPORTERS = 32

export type Route = { kind: 'direct', address: PeerAddress } | { kind: 'relayed', via: string }

/** What the machine needs to know of the transit layer, read at the moment it asks. */
export interface TraversalView {
  /** How a peer is reached now (a responsive connection), or null. */
  route: (peer: string) => Route | null
  /** Where a connected peer's datagrams come from, as we see it (null: not connected, or relayed). */
  seenAt: (peer: string) => PeerAddress | null
  /** Peers with a responsive connection. */
  connected: () => string[]
  /** Members we want a connection to (from invites and address events). */
  wanted: () => Array<{ peer: string, peerPk: Uint8Array }>
  /** Whether we relay for others now. */
  relaying: () => boolean
}

export type TraversalAction =
  | { kind: 'control', peer: string, message: ControlMessage }
  /** The dialer's punch: its connect to the peer, the same datagram each round, to each target. */
  | { kind: 'dial', peer: string, peerPk: Uint8Array, targets: PeerAddress[] }
  | { kind: 'punch', targets: PeerAddress[] }
  /** Punching failed and the introducer offered to relay: ask it to. */
  | { kind: 'relay', peer: string, via: string }

interface Punch {
  peerPk: Uint8Array
  targets: PeerAddress[]
  via: string
  relays: boolean
  dialer: boolean
  startedMs: number
  nextRoundMs: number
}

export interface TraversalStats {
  introductionsAsked: number
  introductionsMade: number
  introductionsReceived: number
  punchesStarted: number
  punchesSucceeded: number
  punchesFailed: number
}

/** The target and the ports near it, for a NAT that allocates in sequence. */
export function punchTargets (address: PeerAddress): PeerAddress[] {
  const near = NEAR_PORT_OFFSETS.map(d => address.port + d).filter(p => p >= 1 && p <= 65535)
  return [address, ...near.map(port => ({ host: address.host, port }))]
}

export class Traversal {
  readonly stats: TraversalStats = { introductionsAsked: 0, introductionsMade: 0, introductionsReceived: 0, punchesStarted: 0, punchesSucceeded: 0, punchesFailed: 0 }
  /** Where each reporter sees us, newest last. */
  private readonly observed = new Map<string, PeerAddress>()
  private readonly punches = new Map<string, Punch>()
  private readonly askedMs = new Map<string, number>()
  private readonly introducedMs = new Map<string, number>()
  private readonly failedMs = new Map<string, number>()

  constructor (private readonly self: Uint8Array, private readonly view: TraversalView) {}

  // ---- observed addresses -------------------------------------------------------------------

  /** A connected peer says where it sees us. */
  onObserved (reporter: string, address: PeerAddress): void {
    this.observed.delete(reporter)
    this.observed.set(reporter, address)
    if (this.observed.size > MAX_REPORTERS) this.observed.delete(this.observed.keys().next().value!)
  }

  /** Where peers see us: distinct addresses, those reported by the most peers first. */
  observedAddresses (): PeerAddress[] {
    const counted: Array<{ address: PeerAddress, count: number }> = []
    for (const address of [...this.observed.values()].reverse()) {
      const entry = counted.find(c => sameAddress(c.address, address))
      if (entry === undefined) counted.push({ address, count: 1 })
      else entry.count++
    }
    return counted.sort((a, b) => b.count - a.count).map(c => c.address)
  }

  /** A peer is gone: what it reported of us is no longer fresh. */
  forget (peer: string): void {
    this.observed.delete(peer)
  }

  // ---- introductions ----------------------------------------------------------------------

  /** A control message about traversal from a connected peer; what to send in answer. */
  onControl (from: string, message: ControlMessage, now: number): TraversalAction[] {
    if (message.type === 'introduce') return this.introduce(from, toHex(message.peerPk), message.peerPk, now)
    if (message.type === 'introduction') { this.onIntroduction(from, message, now); return [] }
    return []
  }

  /** `requester` wants `target`: if both are connected to us, each is told where the other is. */
  private introduce (requester: string, target: string, targetPk: Uint8Array, now: number): TraversalAction[] {
    if (target === requester || bytesEqual(targetPk, this.self)) return []
    const targetAt = this.view.seenAt(target)
    const requesterAt = this.view.seenAt(requester)
    if (targetAt === null || requesterAt === null) return []
    const pair = requester < target ? `${requester}:${target}` : `${target}:${requester}`
    if (now - (this.introducedMs.get(pair) ?? -Infinity) < INTRODUCTION_GAP_MS) return []
    this.introducedMs.set(pair, now)
    this.stats.introductionsMade++
    const relays = this.view.relaying()
    const requesterPk = fromHex(requester, 32)
    return [
      { kind: 'control', peer: requester, message: { type: 'introduction', peerPk: targetPk, address: targetAt, relays } },
      { kind: 'control', peer: target, message: { type: 'introduction', peerPk: requesterPk, address: requesterAt, relays } }
    ]
  }

  private onIntroduction (via: string, message: { peerPk: Uint8Array, address: PeerAddress, relays: boolean }, now: number): void {
    this.stats.introductionsReceived++
    const peer = toHex(message.peerPk)
    if (peer === toHex(this.self) || this.view.route(peer)?.kind === 'direct') return
    const existing = this.punches.get(peer)
    if (existing !== undefined) {
      // A punch under way aims at the newest address; it still ends on time.
      existing.targets = punchTargets(message.address)
      existing.via = via
      existing.relays = message.relays
      return
    }
    if (now - (this.failedMs.get(peer) ?? -Infinity) < PUNCH_BACKOFF_MS || this.punches.size >= MAX_PUNCHES) return
    this.stats.punchesStarted++
    this.punches.set(peer, {
      peerPk: message.peerPk, targets: punchTargets(message.address), via, relays: message.relays,
      dialer: compareKeys(this.self, message.peerPk) < 0, startedMs: now, nextRoundMs: now
    })
  }

  /** The punch under way to a peer, if any: who introduced us and since when. */
  punching (peer: string): { via: string, sinceMs: number, dialer: boolean } | null {
    const punch = this.punches.get(peer)
    return punch === undefined ? null : { via: punch.via, sinceMs: punch.startedMs, dialer: punch.dialer }
  }

  // ---- time -------------------------------------------------------------------------------

  /** What is due now: introduce requests, punch rounds, and punches that ended. */
  poll (now: number): TraversalAction[] {
    const actions: TraversalAction[] = []
    this.askForIntroductions(now, actions)
    for (const [peer, punch] of this.punches) {
      const route = this.view.route(peer)
      if (route?.kind === 'direct') {
        this.punches.delete(peer)
        this.stats.punchesSucceeded++
        continue
      }
      if (now - punch.startedMs > PUNCH_MS) {
        this.punches.delete(peer)
        this.failedMs.set(peer, now)
        this.stats.punchesFailed++
        if (punch.dialer && punch.relays && route === null) actions.push({ kind: 'relay', peer, via: punch.via })
        continue
      }
      if (now < punch.nextRoundMs) continue
      punch.nextRoundMs = now + PUNCH_INTERVAL_MS
      actions.push(punch.dialer ? { kind: 'dial', peer, peerPk: punch.peerPk, targets: punch.targets } : { kind: 'punch', targets: punch.targets })
    }
    for (const [pair, atMs] of this.introducedMs) if (now - atMs > INTRODUCTION_GAP_MS) this.introducedMs.delete(pair)
    for (const [peer, atMs] of this.failedMs) if (now - atMs > PUNCH_BACKOFF_MS) this.failedMs.delete(peer)
    return actions
  }

  /**
   * Members we want but cannot reach, or reach only by relay: every connected member is asked
   * for an introduction (once a second; while relayed, every REPUNCH_RELAYED_MS).
   */
  private askForIntroductions (now: number, actions: TraversalAction[]): void {
    const connected = this.view.connected()
    for (const { peer, peerPk } of this.view.wanted()) {
      const route = this.view.route(peer)
      if (route?.kind === 'direct') { this.askedMs.delete(peer); continue }
      const gap = route === null ? INTRODUCE_RETRY_MS : REPUNCH_RELAYED_MS
      if (now - (this.askedMs.get(peer) ?? -Infinity) < gap) continue
      const introducers = connected.filter(p => p !== peer)
      if (introducers.length === 0) continue
      this.askedMs.set(peer, now)
      this.stats.introductionsAsked++
      for (const introducer of introducers) actions.push({ kind: 'control', peer: introducer, message: { type: 'introduce', peerPk } })
    }
  }
}

function compareKeys (a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}
