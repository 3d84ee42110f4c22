import { aeadDecryptInto } from '../crypto/index.js'
import { WindowHasher, rootHashOf } from './hashing.js'
import { bytesEqual } from '../bytes.js'
import { SLICE_PLAINTEXT_BYTES, SLICE_RECORD_BYTES, sliceNonce } from '../wire/slice.js'

export interface SliceKey {
  key: Uint8Array
  noncePrefix: Uint8Array
}

/**
 * Authenticates one record (`ciphertext ‖ tag`) as slice `sliceNo` of the file and writes the
 * 450 plaintext bytes into `plaintext`. Returns false when it does not authenticate.
 */
export function openSliceRecord (record: Uint8Array, sliceNo: number, file: SliceKey, plaintext: Uint8Array, nonceScratch?: Uint8Array): boolean {
  if (record.length !== SLICE_RECORD_BYTES) return false
  return aeadDecryptInto(
    plaintext.subarray(0, SLICE_PLAINTEXT_BYTES),
    record.subarray(0, SLICE_PLAINTEXT_BYTES),
    record.subarray(SLICE_PLAINTEXT_BYTES),
    sliceNonce(file.noncePrefix, sliceNo, nonceScratch), file.key)
}

export type WholeFileCheck = { ok: true } | { ok: false, reason: string }

/**
 * Hashes records fed in slice order into window hashes and, once the last one is in, checks
 * the root over them against the descriptor's (whose file id already committed to it).
 */
export class CiphertextVerifier {
  private readonly hasher: WindowHasher

  constructor (slices: number, private readonly size: number) {
    this.hasher = new WindowHasher(slices)
  }

  update (records: Uint8Array): void {
    this.hasher.update(records)
  }

  check (expectedRootHash: Uint8Array): WholeFileCheck {
    if (this.hasher.windowsDone < this.hasher.windows) return { ok: false, reason: 'records are missing' }
    if (!bytesEqual(rootHashOf(this.size, this.hasher.hashes), expectedRootHash)) return { ok: false, reason: 'root hash does not match the ciphertext' }
    return { ok: true }
  }
}
