import { toHex } from '../bytes.js'

export interface PeerAddress { host: string, port: number }

/** Addresses remembered per peer at most. */
export const MAX_ADDRESSES_PER_PEER = 8

export const sameAddress = (a: PeerAddress, b: PeerAddress): boolean => a.host === b.host && a.port === b.port

interface KnownPeer {
  peerPk: Uint8Array
  /** Where the peer said it can be reached; tried in turn until one answers. */
  addresses: PeerAddress[]
  /** Index of the address to try next: the one that answered last, once one has. */
  next: number
  lastAttemptMs: number
  /** Where a connection with the peer last worked, if one has. */
  answered?: PeerAddress
}

/**
 * Where each peer can be reached: the addresses it announced (or came from), tried in turn
 * until one answers, and the one that answered first in line after a restart or a cut.
 */
export class AddressBook {
  private readonly known = new Map<string, KnownPeer>()

  /** `self`: this endpoint's own key (hex), never a peer of its own. */
  constructor (private readonly self: string) {}

  /**
   * Remembers where a peer can be reached, replacing what was known of it, except the address
   * a connection last worked at: a peer announces one event per address, so a newer
   * announcement arrives an event at a time, and until its last one has, it lists only part
   * of the peer's addresses (an inviter's unreachable one, say, without the one in use).
   */
  set (peerPk: Uint8Array, addresses: PeerAddress[]): void {
    const peer = toHex(peerPk)
    if (peer === this.self || addresses.length === 0) return
    const existing = this.known.get(peer)
    const answered = existing?.answered
    const all = answered === undefined ? addresses : [...addresses, answered]
    const kept = all.filter((a, i) => all.findIndex(b => sameAddress(a, b)) === i).slice(0, MAX_ADDRESSES_PER_PEER)
    if (answered !== undefined && !kept.some(a => sameAddress(a, answered))) kept[kept.length - 1] = answered
    // The same addresses in another order (the store lists them sorted) change nothing.
    if (existing !== undefined && existing.addresses.length === kept.length && kept.every(a => existing.addresses.some(b => sameAddress(a, b)))) return
    // The address to try next stays first in line if it is still known.
    const current = existing?.addresses[existing.next % existing.addresses.length]
    const next = current === undefined ? 0 : Math.max(0, kept.findIndex(a => sameAddress(a, current)))
    this.known.set(peer, { peerPk, addresses: kept, next, lastAttemptMs: existing?.lastAttemptMs ?? -Infinity, answered })
  }

  /** A connection with the peer works at `address`: a peer that connected to us is known there from now on. */
  answered (peerPk: Uint8Array, address: PeerAddress): void {
    const peer = toHex(peerPk)
    if (!this.known.has(peer)) this.set(peerPk, [address])
    const known = this.known.get(peer)
    const at = known?.addresses.findIndex(a => sameAddress(a, address)) ?? -1
    if (known === undefined || at < 0) return
    known.next = at
    known.answered = address
  }

  /** Every known peer with its addresses and the one to try next. */
  list (): Array<{ peer: string, addresses: PeerAddress[], next: PeerAddress }> {
    return [...this.known.entries()].map(([peer, k]) => ({ peer, addresses: k.addresses, next: k.addresses[k.next % k.addresses.length]! }))
  }

  /**
   * The connects to make now: to each peer without a connection (`current` says which have
   * one, and whether it is due for renewal), at most once per `retryMs`. A renewal goes where
   * the current connection works; otherwise each try takes the next address.
   */
  attempts (now: number, retryMs: number, current: (peer: string) => { address: PeerAddress, renewing: boolean } | undefined): Array<{ peerPk: Uint8Array, address: PeerAddress }> {
    const due: Array<{ peerPk: Uint8Array, address: PeerAddress }> = []
    for (const [peer, known] of this.known) {
      const connection = current(peer)
      if ((connection !== undefined && !connection.renewing) || now - known.lastAttemptMs < retryMs) continue
      known.lastAttemptMs = now
      due.push({ peerPk: known.peerPk, address: connection?.address ?? known.addresses[known.next++ % known.addresses.length]! })
    }
    return due
  }
}
