import { aeadEncryptInto } from '../crypto/index.js'
import { WindowHasher } from './hashing.js'
import { sliceCount } from './windows.js'
import { NONCE_PREFIX_BYTES, SLICE_PLAINTEXT_BYTES, SLICE_RECORD_BYTES, sliceNonce } from '../wire/slice.js'

/** Records handed to the sink at once: about 1 MB, large enough to make hashing and writes cheap. */
export const RECORDS_PER_BATCH = 2048

export interface EncryptResult {
  size: number
  slices: number
  /**
   * The window hashes (W × 32 bytes), worked out in the same pass when the size was known
   * beforehand and came true; null otherwise (hash the records again, see `WindowHasher`).
   */
  windowHashes: Uint8Array | null
}

/**
 * Turns a plaintext stream into slice records (`ciphertext ‖ tag`, 466 bytes each) in one pass,
 * hashing the records into window hashes as it goes when `expectedSize` says where the
 * windows end (they depend on the slice count). Memory stays at one batch.
 * `onBatch` receives a view that is reused afterwards: write or copy it before returning.
 */
export class SliceEncryptor {
  private readonly hasher: WindowHasher | null
  private readonly batch = new Uint8Array(RECORDS_PER_BATCH * SLICE_RECORD_BYTES)
  private readonly pending = new Uint8Array(SLICE_PLAINTEXT_BYTES)
  private readonly nonce = new Uint8Array(24)
  private pendingBytes = 0
  private batchRecords = 0
  private batchFirstSlice = 0
  private sliceNo = 0
  private size = 0
  private finished = false

  constructor (
    private readonly key: Uint8Array,
    private readonly noncePrefix: Uint8Array,
    private readonly onBatch: (firstSlice: number, records: Uint8Array) => void,
    private readonly expectedSize?: number
  ) {
    if (noncePrefix.length !== NONCE_PREFIX_BYTES) throw new RangeError('nonce prefix must be 20 bytes')
    this.hasher = expectedSize === undefined ? null : new WindowHasher(sliceCount(expectedSize))
  }

  push (chunk: Uint8Array): void {
    if (this.finished) throw new Error('SliceEncryptor.push after finish')
    this.size += chunk.length
    let offset = 0
    if (this.pendingBytes > 0) {
      const take = Math.min(SLICE_PLAINTEXT_BYTES - this.pendingBytes, chunk.length)
      this.pending.set(chunk.subarray(0, take), this.pendingBytes)
      this.pendingBytes += take
      offset = take
      if (this.pendingBytes < SLICE_PLAINTEXT_BYTES) return
      this.encryptSlice(this.pending)
      this.pendingBytes = 0
    }
    while (chunk.length - offset >= SLICE_PLAINTEXT_BYTES) {
      this.encryptSlice(chunk.subarray(offset, offset + SLICE_PLAINTEXT_BYTES))
      offset += SLICE_PLAINTEXT_BYTES
    }
    if (offset < chunk.length) {
      this.pending.set(chunk.subarray(offset), 0)
      this.pendingBytes = chunk.length - offset
    }
  }

  finish (): EncryptResult {
    if (this.finished) throw new Error('SliceEncryptor.finish called twice')
    if (this.pendingBytes > 0) {
      this.pending.fill(0, this.pendingBytes)
      this.encryptSlice(this.pending)
      this.pendingBytes = 0
    }
    this.flush()
    this.finished = true
    const hashed = this.hasher !== null && this.size === this.expectedSize && this.hasher.windowsDone === this.hasher.windows
    return { size: this.size, slices: this.sliceNo, windowHashes: hashed ? this.hasher!.hashes : null }
  }

  private encryptSlice (plaintext: Uint8Array): void {
    const at = this.batchRecords * SLICE_RECORD_BYTES
    aeadEncryptInto(
      this.batch.subarray(at, at + SLICE_PLAINTEXT_BYTES),
      this.batch.subarray(at + SLICE_PLAINTEXT_BYTES, at + SLICE_RECORD_BYTES),
      plaintext, sliceNonce(this.noncePrefix, this.sliceNo, this.nonce), this.key)
    this.sliceNo++
    if (++this.batchRecords === RECORDS_PER_BATCH) this.flush()
  }

  private flush (): void {
    if (this.batchRecords === 0) return
    const records = this.batch.subarray(0, this.batchRecords * SLICE_RECORD_BYTES)
    // More than expected (the source grew): the windows are hashed again afterwards.
    if (this.hasher !== null && this.hasher.slicesFed + this.batchRecords <= this.hasher.slices) this.hasher.update(records)
    this.onBatch(this.batchFirstSlice, records)
    this.batchFirstSlice = this.sliceNo
    this.batchRecords = 0
  }
}
