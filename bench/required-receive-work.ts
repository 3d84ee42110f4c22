/**
 * The work the protocol itself asks of a receiver for each data datagram of a focused sync,
 * and nothing else: open the transit seal, authenticate both slice records, and feed them
 * (in batches, as the node does) to the window hashes (file hashing v2: one BLAKE2b pass over every record; the root
 * over the window hashes is a rounding error).
 * The raw baseline's receiver runs it in its `crypto` mode: that rate bounds what any
 * single-threaded receiver on `dgram` can reach on this machine, however lean its own code.
 */
import { AEAD_NONCE_BYTES, HASH_BYTES, HashStream, ID_BYTES, aeadDecryptInto, aeadEncryptInto } from '../src/crypto/index.js'
import { DATA_OVERHEAD_BYTES, DataOffset, DatagramKind } from '../src/wire/transit.js'
import { EVENT_BYTES } from '../src/wire/constants.js'
import { SLICE_PLAINTEXT_BYTES, SLICE_RECORD_BYTES, SliceOffset, encodeSliceEvent, sliceNonce } from '../src/wire/slice.js'
import { openSliceRecord } from '../src/files/verify.js'
import { RECORDS_PER_BATCH } from '../src/files/encrypt.js'

const TRANSIT_KEY = new Uint8Array(32).fill(0x11)
const FILE = { key: new Uint8Array(32).fill(0x22), noncePrefix: new Uint8Array(20).fill(0x33) }
const FILE_ID = new Uint8Array(ID_BYTES).fill(0x44)
const SLICES_PER_DATAGRAM = 2

/** One data datagram carrying slices 0 and 1 of a file, sealed as a connection seals it. */
export function sealedSliceDatagram (): Uint8Array {
  const plain = new Uint8Array(SLICES_PER_DATAGRAM * EVENT_BYTES)
  for (let i = 0; i < SLICES_PER_DATAGRAM; i++) {
    const record = new Uint8Array(SLICE_RECORD_BYTES)
    aeadEncryptInto(record.subarray(0, SLICE_PLAINTEXT_BYTES), record.subarray(SLICE_PLAINTEXT_BYTES),
      new Uint8Array(SLICE_PLAINTEXT_BYTES).fill(i), sliceNonce(FILE.noncePrefix, i), FILE.key)
    plain.set(encodeSliceEvent(FILE_ID, i, FILE.noncePrefix, record), i * EVENT_BYTES)
  }
  const datagram = new Uint8Array(DATA_OVERHEAD_BYTES + plain.length)
  datagram[DataOffset.kind] = DatagramKind.data
  datagram.set(new Uint8Array(ID_BYTES).fill(0x55), DataOffset.connectionId)
  aeadEncryptInto(datagram.subarray(DataOffset.ciphertext, DataOffset.ciphertext + plain.length), datagram.subarray(DataOffset.ciphertext + plain.length),
    plain, datagram.subarray(DataOffset.nonce, DataOffset.ciphertext), TRANSIT_KEY, datagram.subarray(0, DataOffset.ciphertext))
  return datagram
}

export class RequiredReceiveWork {
  /** Datagrams or slices that did not authenticate: 0 when the work was really done. */
  failures = 0
  private readonly windowHash = new HashStream(HASH_BYTES)
  private readonly plaintext = new Uint8Array(SLICE_PLAINTEXT_BYTES)
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES)
  private readonly batch = new Uint8Array(RECORDS_PER_BATCH * SLICE_RECORD_BYTES)
  private batched = 0

  onDatagram (bytes: Uint8Array): void {
    const length = bytes.length - DATA_OVERHEAD_BYTES
    const plain = bytes.subarray(DataOffset.ciphertext, DataOffset.ciphertext + length)
    const sealed = aeadDecryptInto(plain, plain, bytes.subarray(DataOffset.ciphertext + length),
      bytes.subarray(DataOffset.nonce, DataOffset.ciphertext), TRANSIT_KEY, bytes.subarray(0, DataOffset.ciphertext))
    if (!sealed) { this.failures++; return }
    for (let at = 0, sliceNo = 0; at < length; at += EVENT_BYTES, sliceNo++) {
      const record = plain.subarray(at + SliceOffset.ciphertext, at + EVENT_BYTES)
      if (!openSliceRecord(record, sliceNo, FILE, this.plaintext, this.nonce)) { this.failures++; continue }
      this.batch.set(record, this.batched++ * SLICE_RECORD_BYTES)
      if (this.batched === RECORDS_PER_BATCH) this.hashBatch()
    }
  }

  hashBatch (): void {
    const records = this.batch.subarray(0, this.batched * SLICE_RECORD_BYTES)
    this.windowHash.update(records)
    this.batched = 0
  }
}
