import { HashStream, HASH_BYTES, ID_BYTES } from '../crypto/index.js'
import { writeU32be, writeU64be } from '../bytes.js'
import { SLICE_RECORD_BYTES } from '../wire/slice.js'
import { windowCount, windowStart } from './windows.js'
import type { Descriptor } from '../wire/descriptor.js'

/**
 * File hashing v2 (verified windows). With record_i = slice i's `ciphertext ‖ tag`:
 *   window_hash_w = BLAKE2b-256(0x00 ‖ u32(w) ‖ records of window w)
 *   root_hash     = BLAKE2b-256(0x01 ‖ u64(size) ‖ u32(W) ‖ window_hash_0 ‖ … ‖ window_hash_{W−1})
 *   file_id       = BLAKE2b-128(0x02 ‖ sharer_pk ‖ u64(size) ‖ nonce_prefix ‖ file_key ‖ root_hash ‖
 *                               u8(len name) ‖ name ‖ u8(len media_type) ‖ media_type)
 * The domain bytes keep the three kinds of input apart.
 */
export const HashDomain = { window: 0x00, root: 0x01, fileId: 0x02 } as const

/**
 * Window hashes over records fed in slice order, in any chunking: each window's hash is
 * done as soon as its last record went in. `hashes` holds W × 32 bytes.
 */
export class WindowHasher {
  readonly windows: number
  readonly hashes: Uint8Array
  private window = 0
  private fed = 0
  private windowEnd: number
  private stream: HashStream

  constructor (readonly slices: number) {
    this.windows = windowCount(slices)
    this.hashes = new Uint8Array(this.windows * HASH_BYTES)
    this.windowEnd = windowStart(1, slices, this.windows)
    this.stream = this.open(0)
    this.closeFullWindows()
  }

  /** Windows whose hash is done. */
  get windowsDone (): number {
    return this.window
  }

  /** Slices fed so far. */
  get slicesFed (): number {
    return this.fed
  }

  /** Takes whole records, the next ones in slice order. */
  update (records: Uint8Array): void {
    if (records.length % SLICE_RECORD_BYTES !== 0) throw new RangeError('partial slice record')
    let at = 0
    while (at < records.length) {
      if (this.window >= this.windows) throw new RangeError('more records than the file has slices')
      const take = Math.min((records.length - at) / SLICE_RECORD_BYTES, this.windowEnd - this.fed)
      this.stream.update(records.subarray(at, at + take * SLICE_RECORD_BYTES))
      at += take * SLICE_RECORD_BYTES
      this.fed += take
      this.closeFullWindows()
    }
  }

  /** The hash of window `w` (done windows only). */
  hash (w: number): Uint8Array {
    return this.hashes.subarray(w * HASH_BYTES, (w + 1) * HASH_BYTES)
  }

  /** Closes every window that has all its records (an empty file's one window has none, so at once). */
  private closeFullWindows (): void {
    while (this.window < this.windows && this.fed === this.windowEnd) {
      this.hashes.set(this.stream.digest(), this.window * HASH_BYTES)
      this.window++
      if (this.window < this.windows) {
        this.windowEnd = windowStart(this.window + 1, this.slices, this.windows)
        this.stream = this.open(this.window)
      }
    }
  }

  private open (w: number): HashStream {
    return new HashStream(HASH_BYTES).update(windowPrefix(w))
  }
}

/** `0x00 ‖ u32(w)`: what a window's hash starts with. */
function windowPrefix (w: number): Uint8Array {
  const prefix = new Uint8Array(5)
  prefix[0] = HashDomain.window
  writeU32be(prefix, 1, w)
  return prefix
}

/** The hash of one window from all its records. */
export function windowHashOf (w: number, records: Uint8Array): Uint8Array {
  return new HashStream(HASH_BYTES).update(windowPrefix(w)).update(records).digest()
}

/** The root over a file's window hashes (W × 32 bytes). */
export function rootHashOf (size: number, windowHashes: Uint8Array): Uint8Array {
  const header = new Uint8Array(13)
  header[0] = HashDomain.root
  writeU64be(header, 1, size)
  writeU32be(header, 9, windowHashes.length / HASH_BYTES)
  return new HashStream(HASH_BYTES).update(header).update(windowHashes).digest()
}

/** What a file id commits to: every field of the descriptor but the id, and who shared it. */
export type FileIdFields = Omit<Descriptor, 'fileId'> & { sharerPk: Uint8Array }

/** The file id: it commits to every field of the descriptor and to who shared it. */
export function fileIdOf (fields: FileIdFields): Uint8Array {
  const name = new TextEncoder().encode(fields.name)
  const mediaType = new TextEncoder().encode(fields.mediaType)
  if (name.length > 255 || mediaType.length > 255) throw new RangeError('name and media type must fit in 255 bytes')
  const size = new Uint8Array(8)
  writeU64be(size, 0, fields.size)
  return new HashStream(ID_BYTES)
    .update(Uint8Array.of(HashDomain.fileId)).update(fields.sharerPk).update(size)
    .update(fields.noncePrefix).update(fields.key).update(fields.rootHash)
    .update(Uint8Array.of(name.length)).update(name)
    .update(Uint8Array.of(mediaType.length)).update(mediaType)
    .digest()
}
