import { BITMAP_BYTES } from '../wire/sync-file.js'

/** A fixed-size set of slice numbers, bit i = byte i>>3, mask 0x80>>(i&7) (the wire's bit order). */
export class Bitset {
  readonly bytes: Uint8Array

  constructor (readonly size: number, bytes?: Uint8Array) {
    this.bytes = bytes ?? new Uint8Array(Math.ceil(size / 8))
  }

  has (i: number): boolean {
    return (this.bytes[i >> 3]! & (0x80 >> (i & 7))) !== 0
  }

  /** Sets bit i; returns false if it was already set. */
  add (i: number): boolean {
    const mask = 0x80 >> (i & 7)
    const byte = this.bytes[i >> 3]!
    if ((byte & mask) !== 0) return false
    this.bytes[i >> 3] = byte | mask
    return true
  }

  /** Clears bit i; returns false if it was not set. */
  remove (i: number): boolean {
    const mask = 0x80 >> (i & 7)
    const byte = this.bytes[i >> 3]!
    if ((byte & mask) === 0) return false
    this.bytes[i >> 3] = byte & ~mask
    return true
  }

  /** How many of `[first, first+length)` are set. */
  countIn (first: number, length: number): number {
    let n = 0
    for (let i = first; i < first + length; i++) if (this.has(i)) n++
    return n
  }

  /** The 64-byte wire bitmap of `[first, first+length)` (length ≤ 512). */
  rangeBitmap (first: number, length: number): Uint8Array {
    const out = new Uint8Array(BITMAP_BYTES)
    for (let k = 0; k < length; k++) if (this.has(first + k)) out[k >> 3]! |= 0x80 >> (k & 7)
    return out
  }
}

/** Tests bit k of a wire bitmap. */
export function bitmapHas (bitmap: Uint8Array, k: number): boolean {
  return (bitmap[k >> 3]! & (0x80 >> (k & 7))) !== 0
}
