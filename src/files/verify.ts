import { HashStream, HASH_BYTES, ID_BYTES, aeadDecryptInto } from '../crypto/index.js'
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

/** Recomputes `file_id = id(C)` and `root_hash = hash32(C)` over records fed in slice order. */
export class CiphertextVerifier {
  private readonly idHash = new HashStream(ID_BYTES)
  private readonly rootHash = new HashStream(HASH_BYTES)

  update (records: Uint8Array): void {
    this.idHash.update(records)
    this.rootHash.update(records)
  }

  check (expectedFileId: Uint8Array, expectedRootHash: Uint8Array): WholeFileCheck {
    const fileId = this.idHash.digest()
    const rootHash = this.rootHash.digest()
    if (!bytesEqual(fileId, expectedFileId)) return { ok: false, reason: 'file id does not match the ciphertext' }
    if (!bytesEqual(rootHash, expectedRootHash)) return { ok: false, reason: 'root hash does not match the ciphertext' }
    return { ok: true }
  }
}
