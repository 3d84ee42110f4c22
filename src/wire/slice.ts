import { EVENT_BYTES, EventType, PROTOCOL_VERSION } from './constants.js'
import { WireError, expectLength } from './errors.js'
import { ID_BYTES } from '../crypto/hash.js'
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from '../crypto/aead.js'
import { readU32be, writeU32be } from '../bytes.js'

/**
 * Slice event (type 0x03), 512 bytes, no signature:
 *   version 1 | type 1 | file_id 16 | slice_no 4 | nonce 24 | ciphertext 450 | tag 16
 */
export const SLICE_PLAINTEXT_BYTES = 450
export const NONCE_PREFIX_BYTES = 20
/** `ciphertext ‖ tag` of one slice: the unit that is stored, hashed into its window hash, and sent. */
export const SLICE_RECORD_BYTES = SLICE_PLAINTEXT_BYTES + AEAD_TAG_BYTES

export const SliceOffset = {
  version: 0,
  type: 1,
  fileId: 2,
  sliceNo: 2 + ID_BYTES,
  nonce: 2 + ID_BYTES + 4,
  ciphertext: 2 + ID_BYTES + 4 + AEAD_NONCE_BYTES,
  tag: 2 + ID_BYTES + 4 + AEAD_NONCE_BYTES + SLICE_PLAINTEXT_BYTES
} as const
if (SliceOffset.tag + AEAD_TAG_BYTES !== EVENT_BYTES) throw new Error('slice layout does not fill an event')

/** Largest slice number representable in the u32 field. */
export const MAX_SLICE_NO = 0xffffffff

export interface SliceEvent {
  fileId: Uint8Array
  sliceNo: number
  nonce: Uint8Array
  /** `ciphertext ‖ tag`, 466 bytes. */
  record: Uint8Array
}

/** `nonce_i = nonce_prefix(20) ‖ u32be(i)` */
export function sliceNonce (noncePrefix: Uint8Array, sliceNo: number, out: Uint8Array = new Uint8Array(AEAD_NONCE_BYTES)): Uint8Array {
  if (noncePrefix.length !== NONCE_PREFIX_BYTES) throw new RangeError(`nonce prefix must be ${NONCE_PREFIX_BYTES} bytes`)
  out.set(noncePrefix, 0)
  writeU32be(out, NONCE_PREFIX_BYTES, sliceNo)
  return out
}

/** Writes a slice event into `out` (512 bytes) from its parts. */
export function encodeSliceEventInto (out: Uint8Array, fileId: Uint8Array, sliceNo: number, noncePrefix: Uint8Array, record: Uint8Array): Uint8Array {
  expectLength(out, EVENT_BYTES, 'slice event buffer')
  expectLength(fileId, ID_BYTES, 'file id')
  expectLength(record, SLICE_RECORD_BYTES, 'slice record')
  out[SliceOffset.version] = PROTOCOL_VERSION
  out[SliceOffset.type] = EventType.slice
  out.set(fileId, SliceOffset.fileId)
  writeU32be(out, SliceOffset.sliceNo, sliceNo)
  sliceNonce(noncePrefix, sliceNo, out.subarray(SliceOffset.nonce, SliceOffset.ciphertext))
  out.set(record, SliceOffset.ciphertext)
  return out
}

export function encodeSliceEvent (fileId: Uint8Array, sliceNo: number, noncePrefix: Uint8Array, record: Uint8Array): Uint8Array {
  return encodeSliceEventInto(new Uint8Array(EVENT_BYTES), fileId, sliceNo, noncePrefix, record)
}

/** Decodes a slice event. The returned fields are views into `bytes`: copy before keeping them. */
export function decodeSliceEvent (bytes: Uint8Array): SliceEvent {
  expectLength(bytes, EVENT_BYTES, 'slice event')
  if (bytes[SliceOffset.version] !== PROTOCOL_VERSION) throw new WireError('version', `unsupported version ${bytes[SliceOffset.version]}`)
  if (bytes[SliceOffset.type] !== EventType.slice) throw new WireError('type', `not a slice event (type ${bytes[SliceOffset.type]})`)
  return {
    fileId: bytes.subarray(SliceOffset.fileId, SliceOffset.sliceNo),
    sliceNo: readU32be(bytes, SliceOffset.sliceNo),
    nonce: bytes.subarray(SliceOffset.nonce, SliceOffset.ciphertext),
    record: bytes.subarray(SliceOffset.ciphertext, EVENT_BYTES)
  }
}
