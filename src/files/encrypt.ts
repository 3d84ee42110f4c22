import { HashStream, HASH_BYTES, ID_BYTES, aeadEncryptInto } from '../crypto/index.js'
import { NONCE_PREFIX_BYTES, SLICE_PLAINTEXT_BYTES, SLICE_RECORD_BYTES, sliceNonce } from '../wire/slice.js'

/** Records handed to the sink at once: about 1 MB, large enough to make hashing and writes cheap. */
export const RECORDS_PER_BATCH = 2048

export interface EncryptResult {
  fileId: Uint8Array
  rootHash: Uint8Array
  size: number
  slices: number
}

/**
 * Turns a plaintext stream into slice records (`ciphertext ‖ tag`, 466 bytes each) in one pass,
 * hashing the records into the file id and root hash as it goes. Memory stays at one batch.
 * `onBatch` receives a view that is reused afterwards: write or copy it before returning.
 */
export class SliceEncryptor {
  private readonly idHash = new HashStream(ID_BYTES)
  private readonly rootHash = new HashStream(HASH_BYTES)
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
    private readonly onBatch: (firstSlice: number, records: Uint8Array) => void
  ) {
    if (noncePrefix.length !== NONCE_PREFIX_BYTES) throw new RangeError('nonce prefix must be 20 bytes')
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
    return { fileId: this.idHash.digest(), rootHash: this.rootHash.digest(), size: this.size, slices: this.sliceNo }
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
    this.idHash.update(records)
    this.rootHash.update(records)
    this.onBatch(this.batchFirstSlice, records)
    this.batchFirstSlice = this.sliceNo
    this.batchRecords = 0
  }
}
