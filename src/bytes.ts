/** Small byte helpers shared by every layer. */

export function toHex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/** Parses lowercase or uppercase hex of an exact byte length; throws on anything else. */
export function fromHex (hex: string, expectedBytes?: number): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new TypeError('not a hex string')
  const out = new Uint8Array(Buffer.from(hex, 'hex'))
  if (expectedBytes !== undefined && out.length !== expectedBytes) {
    throw new RangeError(`expected ${expectedBytes} bytes of hex, got ${out.length}`)
  }
  return out
}

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** The big-endian u32 at `offset`, without a DataView (hot paths handle one per slice). */
export function readU32be (bytes: Uint8Array, offset: number): number {
  return ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0
}

/** 2^32, the weight of the high half of a u64. */
const U32_RANGE = 0x1_0000_0000

/**
 * Reads the big-endian u64 at `offset` as a number, or null when it is above
 * Number.MAX_SAFE_INTEGER (2^53 - 1, whose high half is 0x1fffff).
 */
export function readU64be (bytes: Uint8Array, offset: number): number | null {
  const high = readU32be(bytes, offset)
  if (high > 0x1fffff) return null
  return high * U32_RANGE + readU32be(bytes, offset + 4)
}

/** Writes a safe non-negative integer as a big-endian u64 at `offset`. */
export function writeU64be (bytes: Uint8Array, offset: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`not a u64 this code can hold: ${value}`)
  writeU32be(bytes, offset, Math.floor(value / U32_RANGE))
  writeU32be(bytes, offset + 4, value >>> 0)
}

/** Writes `value` as a big-endian u32 at `offset`. */
export function writeU32be (bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value >>> 24
  bytes[offset + 1] = (value >>> 16) & 0xff
  bytes[offset + 2] = (value >>> 8) & 0xff
  bytes[offset + 3] = value & 0xff
}
