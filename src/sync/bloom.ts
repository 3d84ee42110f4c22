import { id } from '../crypto/hash.js'
import { BLOOM_BYTES } from '../wire/sync.js'

export const BLOOM_BITS = BLOOM_BYTES * 8
export const BLOOM_HASHES = 5

/** The per-request salt: `id(requester_pk ‖ window_bits ‖ u32be(window) ‖ nonce)`. */
export function bloomSalt (requesterPk: Uint8Array, windowBits: number, window: number, nonce: Uint8Array): Uint8Array {
  const input = new Uint8Array(requesterPk.length + 5 + nonce.length)
  input.set(requesterPk, 0)
  input[requesterPk.length] = windowBits
  new DataView(input.buffer).setUint32(requesterPk.length + 1, window)
  input.set(nonce, requesterPk.length + 5)
  return id(input)
}

/** The k bit positions of an id: the first five 16-bit words of id(salt ‖ event_id), each mod 512. */
function positions (salt: Uint8Array, eventId: Uint8Array): number[] {
  const input = new Uint8Array(salt.length + eventId.length)
  input.set(salt, 0)
  input.set(eventId, salt.length)
  const digest = id(input)
  const out: number[] = []
  for (let i = 0; i < BLOOM_HASHES; i++) out.push(((digest[2 * i]! << 8) | digest[2 * i + 1]!) % BLOOM_BITS)
  return out
}

export function bloomBuild (salt: Uint8Array, eventIds: Iterable<Uint8Array>): Uint8Array {
  const bloom = new Uint8Array(BLOOM_BYTES)
  for (const eventId of eventIds) for (const p of positions(salt, eventId)) bloom[p >> 3]! |= 0x80 >> (p & 7)
  return bloom
}

export function bloomHas (bloom: Uint8Array, salt: Uint8Array, eventId: Uint8Array): boolean {
  return positions(salt, eventId).every(p => (bloom[p >> 3]! & (0x80 >> (p & 7))) !== 0)
}

/** About 100 events per window: the smallest w with 2^w · 100 ≥ count. */
export function windowBitsFor (eventCount: number): number {
  let bits = 0
  while ((2 ** bits) * 100 < eventCount && bits < 24) bits++
  return bits
}

/** The window of an event: the top `bits` bits of the 32-bit sync key (first 4 bytes of hash32(event_id)). */
export function windowOf (syncKey: number, bits: number): number {
  return bits === 0 ? 0 : Math.floor(syncKey / 2 ** (32 - bits))
}
