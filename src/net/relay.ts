import { fromHex, toHex } from '../bytes.js'
import { sameAddress } from './address-book.js'
import type { PeerAddress } from './address-book.js'
import type { RelayRefusalReason } from '../wire/transit-control.js'

/**
 * Relaying for members who cannot meet: a channel per pair, opened on request of one of them
 * (over its encrypted connection to us), after which relayed datagrams (`kind | channel |
 * transit datagram`) from one member's address go on unchanged to the other's. The relay
 * sees only the transit datagrams, which stay encrypted end to end. Forwarding is capped in
 * bytes per second and in channels, and can be off.
 */

export interface RelayLimits {
  /** Relays at all (`--no-relay` turns it off). */
  enabled: boolean
  /** Forwarded bytes per second, all channels together. */
  maxBytesPerS: number
  /** Channels open at once. */
  maxChannels: number
}

export const DEFAULT_RELAY_LIMITS: RelayLimits = { enabled: true, maxBytesPerS: 8_000_000, maxChannels: 16 }
/** A channel nobody sent on for this long is closed. */
export const RELAY_IDLE_MS = 30_000
/** The policer holds this much time of its rate: short bursts pass, a sustained excess is dropped. */
const RELAY_BURST_MS = 50

export interface RelayStats {
  relayChannels: number
  relayedDatagrams: number
  relayedBytes: number
  /** Over the byte cap, from an address not the channel's, or for a channel not open. */
  relayDropped: number
  relayRefused: number
}

interface Channel { a: string, b: string, lastMs: number }

/** Where the transit layer sends a datagram for `peer` by `via`: no socket address, a route. */
export function relayAddress (via: string, peer: string): PeerAddress {
  return { host: `relay:${via}:${peer}`, port: 0 }
}

/** The relay and the member behind a relayed address, or null for a socket address. */
export function relayOf (address: PeerAddress): { via: string, peer: string } | null {
  if (address.port !== 0 || !address.host.startsWith('relay:')) return null
  const [, via, peer] = address.host.split(':')
  return via === undefined || peer === undefined ? null : { via, peer }
}

/** The relay's side: channels between pairs of members, and the cap. */
export class RelayForwarder {
  private readonly channels = new Map<string, Channel>()
  private readonly byPair = new Map<string, string>()
  private tokens = 0
  private lastMs = -Infinity
  private readonly own = { relayedDatagrams: 0, relayedBytes: 0, relayDropped: 0, relayRefused: 0 }

  constructor (private limits: RelayLimits = DEFAULT_RELAY_LIMITS) {}

  get stats (): RelayStats {
    return { relayChannels: this.channels.size, ...this.own }
  }

  get settings (): RelayLimits {
    return { ...this.limits }
  }

  setLimits (limits: RelayLimits): void {
    this.limits = { ...limits }
    if (!limits.enabled) for (const id of [...this.channels.keys()]) this.close(id)
  }

  /**
   * `requester` asks for a channel to `target`; `connected` says whether we reach the target.
   * The channel (new or the pair's open one), or why not.
   */
  open (requester: string, target: string, connected: boolean, newChannel: () => Uint8Array, now: number): { channel: Uint8Array } | { refused: RelayRefusalReason } {
    const refused = (reason: RelayRefusalReason): { refused: RelayRefusalReason } => { this.own.relayRefused++; return { refused: reason } }
    if (!this.limits.enabled) return refused('off')
    if (!connected || requester === target) return refused('unreachable')
    const pair = requester < target ? `${requester}:${target}` : `${target}:${requester}`
    const existing = this.byPair.get(pair)
    if (existing !== undefined) {
      this.channels.get(existing)!.lastMs = now
      return { channel: fromHex(existing) }
    }
    if (this.channels.size >= this.limits.maxChannels) return refused('full')
    const channel = newChannel()
    const id = toHex(channel)
    this.channels.set(id, { a: requester, b: target, lastMs: now })
    this.byPair.set(pair, id)
    return { channel }
  }

  /** Whether a channel id is one of ours. */
  has (channelId: string): boolean {
    return this.channels.has(channelId)
  }

  /**
   * A relayed datagram for one of our channels, from `from`: where to pass it on, or null
   * (dropped and counted). `addressOf` says where a member's connection to us is now.
   */
  forward (channelId: string, from: PeerAddress, bytes: number, addressOf: (peer: string) => PeerAddress | null, now: number): PeerAddress | null {
    const channel = this.channels.get(channelId)
    const a = channel === undefined ? null : addressOf(channel.a)
    const b = channel === undefined ? null : addressOf(channel.b)
    const to = a !== null && sameAddress(a, from) ? b : b !== null && sameAddress(b, from) ? a : null
    if (channel === undefined || to === null || !this.admit(bytes, now)) { this.own.relayDropped++; return null }
    channel.lastMs = now
    this.own.relayedDatagrams++
    this.own.relayedBytes += bytes
    return to
  }

  /** Closes idle channels and those whose members are gone; `connected` says who is there. */
  sweep (now: number, connected: (peer: string) => boolean): void {
    for (const [id, channel] of this.channels) {
      if (now - channel.lastMs > RELAY_IDLE_MS || !connected(channel.a) || !connected(channel.b)) this.close(id)
    }
  }

  private close (id: string): void {
    const channel = this.channels.get(id)
    if (channel === undefined) return
    this.channels.delete(id)
    this.byPair.delete(channel.a < channel.b ? `${channel.a}:${channel.b}` : `${channel.b}:${channel.a}`)
  }

  /** A token bucket that polices (drops) rather than paces: a relay holds no queue. */
  private admit (bytes: number, now: number): boolean {
    const rate = this.limits.maxBytesPerS
    const depth = Math.max(64 * 1024, (rate * RELAY_BURST_MS) / 1000)
    this.tokens = Math.min(depth, this.tokens + (Math.max(0, now - this.lastMs) * rate) / 1000)
    this.lastMs = now
    if (this.tokens < bytes) return false
    this.tokens -= bytes
    return true
  }
}

/** A member's side: the channels relays opened for it, to which member and through whom. */
export class RelayRoutes {
  private readonly byChannel = new Map<string, { via: string, peer: string, channel: Uint8Array }>()
  private readonly byRoute = new Map<string, string>()

  set (via: string, peer: string, channel: Uint8Array): void {
    this.delete(via, peer)
    const id = toHex(channel)
    this.byChannel.set(id, { via, peer, channel })
    this.byRoute.set(`${via}:${peer}`, id)
  }

  delete (via: string, peer: string): void {
    const id = this.byRoute.get(`${via}:${peer}`)
    if (id === undefined) return
    this.byRoute.delete(`${via}:${peer}`)
    this.byChannel.delete(id)
  }

  /** The relay and member of a channel id. */
  ofChannel (channelId: string): { via: string, peer: string } | undefined {
    return this.byChannel.get(channelId)
  }

  /** The channel to `peer` through `via`. */
  channel (via: string, peer: string): Uint8Array | undefined {
    const id = this.byRoute.get(`${via}:${peer}`)
    return id === undefined ? undefined : this.byChannel.get(id)!.channel
  }

  /** Forgets the channels through a relay that is gone. */
  dropVia (via: string): void {
    for (const { via: v, peer } of [...this.byChannel.values()]) if (v === via) this.delete(v, peer)
  }
}
