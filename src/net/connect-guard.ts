import { AEAD_NONCE_BYTES, HASH_BYTES, HashStream, aeadDecryptInto, aeadEncryptInto, keyedHash, keyedHashInto, macsEqual, randomBytes } from '../crypto/index.js'
import { bytesEqual } from '../bytes.js'
import {
  CONNECT_DATAGRAM_BYTES, COOKIE_BYTES, COOKIE_DATAGRAM_BYTES, COOKIE_LABEL, ConnectMacOffset, CookieOffset, DatagramKind, MAC1_LABEL, MAC_BYTES
} from '../wire/transit.js'
import type { PeerAddress } from './address-book.js'

export interface ConnectGuardOptions {
  networkKey: Uint8Array
  /** This endpoint's public key: what a connect to it is MACed with. */
  publicKey: Uint8Array
  now: () => number
  /** Connects with a valid mac1 per second above which a cookie is asked for first. */
  loadPerSecond?: number
  /** Connects per second (and burst) handled from one source host. */
  perSourcePerSecond?: number
  perSourceBurst?: number
}

export interface GuardStats {
  /** Connects whose mac1 did not check out: refused before any public-key work. */
  connectsBadMac: number
  /** Connects answered with a cookie instead (under load, without a valid mac2). */
  cookiesSent: number
  /** Connects from a source over its budget. */
  connectsRateLimited: number
  cookiesReceived: number
}

export type GuardVerdict = 'pass' | 'bad-mac' | 'cookie' | 'rate-limited'

export const DEFAULT_LOAD_PER_SECOND = 64
export const DEFAULT_PER_SOURCE_PER_SECOND = 10
export const DEFAULT_PER_SOURCE_BURST = 20
/** How long a cookie secret (and so a cookie) lasts. */
export const COOKIE_SECRET_MS = 120_000
/** Sources remembered by the rate limiter at most; past that the oldest buckets go. */
const MAX_SOURCES = 4096

/** `BLAKE2b-256(label ‖ network_key ‖ public_key)`: the mac1 and cookie keys. */
const labelled = (label: Uint8Array, networkKey: Uint8Array, publicKey: Uint8Array): Uint8Array =>
  new HashStream(HASH_BYTES).update(label).update(networkKey).update(publicKey).digest()

const addressBytes = (a: PeerAddress): Uint8Array => new TextEncoder().encode(`${a.host}:${a.port}`)
const addressKey = (a: PeerAddress): string => `${a.host}:${a.port}`

/**
 * The cheap checks a connect passes before the sealed-box open and the signature check (about
 * 160 µs), after WireGuard's mac1 and cookies: a keyed MAC only members who know the
 * recipient's key can make; under load, a cookie bound to the source address; and a budget
 * of connects per source host. It also stamps outgoing connects and takes cookies for them.
 */
export class ConnectGuard {
  readonly stats: GuardStats = { connectsBadMac: 0, cookiesSent: 0, connectsRateLimited: 0, cookiesReceived: 0 }
  private readonly ownMac1Key: Uint8Array
  private readonly ownCookieKey: Uint8Array
  private secrets: Uint8Array[] = [randomBytes(32)]
  private secretSinceMs: number
  private loadSecond = 0
  private loadCount = 0
  private readonly buckets = new Map<string, { tokens: number, atMs: number }>()
  /** Per address we connected to: what our last connect's mac1 was and to whom; the cookie it got. */
  private readonly sent = new Map<string, { peerPk: Uint8Array, mac1: Uint8Array, cookie: Uint8Array | null, cookieAtMs: number }>()
  private readonly mac = new Uint8Array(MAC_BYTES)

  constructor (private readonly options: ConnectGuardOptions) {
    this.ownMac1Key = labelled(MAC1_LABEL, options.networkKey, options.publicKey)
    this.ownCookieKey = labelled(COOKIE_LABEL, options.networkKey, options.publicKey)
    this.secretSinceMs = options.now()
  }

  // ---- outgoing ---------------------------------------------------------------------------

  /** Writes mac1 (and mac2, with a cookie from `to` that is still fresh) into a sealed connect. */
  stamp (datagram: Uint8Array, peerPk: Uint8Array, to: PeerAddress): void {
    const mac1 = keyedHash(datagram.subarray(0, ConnectMacOffset.mac1), labelled(MAC1_LABEL, this.options.networkKey, peerPk), MAC_BYTES)
    datagram.set(mac1, ConnectMacOffset.mac1)
    const key = addressKey(to)
    const previous = this.sent.get(key)
    const cookie = previous !== undefined && bytesEqual(previous.peerPk, peerPk) && this.options.now() - previous.cookieAtMs < COOKIE_SECRET_MS ? previous.cookie : null
    datagram.fill(0, ConnectMacOffset.mac2)
    if (cookie !== null) datagram.set(keyedHash(datagram.subarray(0, ConnectMacOffset.mac2), cookie, MAC_BYTES), ConnectMacOffset.mac2)
    this.sent.set(key, { peerPk, mac1, cookie, cookieAtMs: previous?.cookieAtMs ?? 0 })
    if (this.sent.size > MAX_SOURCES) this.sent.delete(this.sent.keys().next().value!)
  }

  /**
   * A cookie from an address we sent a connect to: kept for the next connect there. Returns
   * the peer to connect to again at once, or null when the cookie does not check out.
   */
  takeCookie (datagram: Uint8Array, from: PeerAddress): Uint8Array | null {
    if (datagram.length !== COOKIE_DATAGRAM_BYTES) return null
    const sent = this.sent.get(addressKey(from))
    if (sent === undefined) return null
    const cookie = new Uint8Array(COOKIE_BYTES)
    const ok = aeadDecryptInto(cookie, datagram.subarray(CookieOffset.ciphertext, CookieOffset.ciphertext + COOKIE_BYTES),
      datagram.subarray(CookieOffset.ciphertext + COOKIE_BYTES), datagram.subarray(CookieOffset.nonce, CookieOffset.ciphertext),
      labelled(COOKIE_LABEL, this.options.networkKey, sent.peerPk), sent.mac1)
    if (!ok) return null
    sent.cookie = cookie
    sent.cookieAtMs = this.options.now()
    this.stats.cookiesReceived++
    return sent.peerPk
  }

  // ---- incoming ---------------------------------------------------------------------------

  /**
   * Whether a connect datagram may go on to the expensive checks. 'cookie' comes with the
   * datagram to send back to `from`.
   */
  check (datagram: Uint8Array, from: PeerAddress): { verdict: GuardVerdict, reply?: Uint8Array } {
    if (datagram.length !== CONNECT_DATAGRAM_BYTES) { this.stats.connectsBadMac++; return { verdict: 'bad-mac' } }
    const mac1 = datagram.subarray(ConnectMacOffset.mac1, ConnectMacOffset.mac2)
    if (!this.macMatches(datagram.subarray(0, ConnectMacOffset.mac1), this.ownMac1Key, mac1)) { this.stats.connectsBadMac++; return { verdict: 'bad-mac' } }
    const now = this.options.now()
    if (this.underLoad(now) && !this.mac2Valid(datagram, from, now)) {
      this.stats.cookiesSent++
      return { verdict: 'cookie', reply: this.cookieReply(from, mac1, now) }
    }
    if (!this.spend(from.host, now)) { this.stats.connectsRateLimited++; return { verdict: 'rate-limited' } }
    return { verdict: 'pass' }
  }

  private macMatches (data: Uint8Array, key: Uint8Array, given: Uint8Array): boolean {
    keyedHashInto(this.mac, data, key)
    return macsEqual(this.mac, given)
  }

  /** Counts this connect (its mac1 was valid) and says whether more came this second than the load allows. */
  private underLoad (now: number): boolean {
    const second = Math.floor(now / 1000)
    if (second !== this.loadSecond) {
      // The last second's count carries over when it was high, so load is seen at once.
      this.loadCount = second === this.loadSecond + 1 && this.loadCount > this.loadLimit ? this.loadLimit + 1 : 0
      this.loadSecond = second
    }
    return ++this.loadCount > this.loadLimit
  }

  private get loadLimit (): number {
    return this.options.loadPerSecond ?? DEFAULT_LOAD_PER_SECOND
  }

  private cookieFor (from: PeerAddress, secret: Uint8Array): Uint8Array {
    return keyedHash(addressBytes(from), secret, COOKIE_BYTES)
  }

  private rotateSecret (now: number): void {
    if (now - this.secretSinceMs < COOKIE_SECRET_MS) return
    this.secrets = [randomBytes(32), this.secrets[0]!]
    this.secretSinceMs = now
  }

  private mac2Valid (datagram: Uint8Array, from: PeerAddress, now: number): boolean {
    this.rotateSecret(now)
    const mac2 = datagram.subarray(ConnectMacOffset.mac2)
    return this.secrets.some(secret => this.macMatches(datagram.subarray(0, ConnectMacOffset.mac2), this.cookieFor(from, secret), mac2))
  }

  private cookieReply (from: PeerAddress, mac1: Uint8Array, now: number): Uint8Array {
    this.rotateSecret(now)
    const reply = new Uint8Array(COOKIE_DATAGRAM_BYTES)
    reply[CookieOffset.kind] = DatagramKind.cookie
    reply.set(randomBytes(AEAD_NONCE_BYTES), CookieOffset.nonce)
    aeadEncryptInto(reply.subarray(CookieOffset.ciphertext, CookieOffset.ciphertext + COOKIE_BYTES), reply.subarray(CookieOffset.ciphertext + COOKIE_BYTES),
      this.cookieFor(from, this.secrets[0]!), reply.subarray(CookieOffset.nonce, CookieOffset.ciphertext), this.ownCookieKey, mac1)
    return reply
  }

  /** A token bucket per source host: connects from one place cannot take all the handling. */
  private spend (host: string, now: number): boolean {
    const rate = this.options.perSourcePerSecond ?? DEFAULT_PER_SOURCE_PER_SECOND
    const burst = this.options.perSourceBurst ?? DEFAULT_PER_SOURCE_BURST
    let bucket = this.buckets.get(host)
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_SOURCES) this.buckets.delete(this.buckets.keys().next().value!)
      bucket = { tokens: burst, atMs: now }
      this.buckets.set(host, bucket)
    }
    bucket.tokens = Math.min(burst, bucket.tokens + (now - bucket.atMs) * rate / 1000)
    bucket.atMs = now
    if (bucket.tokens < 1) return false
    bucket.tokens--
    return true
  }
}

