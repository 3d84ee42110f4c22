import sodium from 'sodium-native'

/** Length of every id in the protocol: BLAKE2b with a 16-byte output. */
export const ID_BYTES = 16
/** Length of every content hash: BLAKE2b with a 32-byte output. */
export const HASH_BYTES = 32

/** BLAKE2b of `data` with an output of `outputLength` bytes. */
export function blake2b (data: Uint8Array, outputLength: number): Uint8Array {
  const out = new Uint8Array(outputLength)
  sodium.crypto_generichash(out, data)
  return out
}

/** Keyed BLAKE2b (a MAC): only holders of `key` (16–64 bytes) can compute it. */
export function keyedHash (data: Uint8Array, key: Uint8Array, outputLength = HASH_BYTES): Uint8Array {
  const out = new Uint8Array(outputLength)
  sodium.crypto_generichash(out, data, key)
  return out
}

/** Keyed BLAKE2b into `out` (its length is the output length): no allocation, for per-datagram checks. */
export function keyedHashInto (out: Uint8Array, data: Uint8Array, key: Uint8Array): Uint8Array {
  sodium.crypto_generichash(out, data, key)
  return out
}

/** Whether two MACs of the same length are equal, in time that does not depend on where they differ. */
export function macsEqual (a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && sodium.sodium_memcmp(a, b)
}

/** `id(x)`: the 16-byte BLAKE2b of x. */
export function id (data: Uint8Array): Uint8Array {
  return blake2b(data, ID_BYTES)
}

/** `hash32(x)`: the 32-byte BLAKE2b of x. */
export function hash32 (data: Uint8Array): Uint8Array {
  return blake2b(data, HASH_BYTES)
}

/** Streaming BLAKE2b: feed any number of chunks, then `digest()` once. */
export class HashStream {
  private readonly state = new Uint8Array(sodium.crypto_generichash_STATEBYTES)
  private finished = false

  constructor (readonly outputLength: number) {
    sodium.crypto_generichash_init(this.state, null, outputLength)
  }

  update (chunk: Uint8Array): this {
    if (this.finished) throw new Error('HashStream.update after digest')
    sodium.crypto_generichash_update(this.state, chunk)
    return this
  }

  digest (): Uint8Array {
    if (this.finished) throw new Error('HashStream.digest called twice')
    this.finished = true
    const out = new Uint8Array(this.outputLength)
    sodium.crypto_generichash_final(this.state, out)
    return out
  }
}
