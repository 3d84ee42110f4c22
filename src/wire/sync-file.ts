import { WireError, expectLength } from './errors.js'
import { PAYLOAD_BYTES, expectZero } from './signed-event.js'
import { ID_BYTES } from '../crypto/hash.js'

/**
 * `sync-file` request (type 0x0A) and reply (type 0x0B) payloads, inside the common header.
 *
 * Request payload:
 *   file_id 16 | request_id 4 | first_slice 4 | range_length 2 | limit 2 | have_bitmap 64 | pace 4 | zero 298
 * Reply payload:
 *   file_id 16 | request_id 4 | first_slice 4 | range_length 2 | sending 2 | responder_bitmap 64 | zero 302
 *
 * `pace` (u32, bytes of slice events per second; 0: none asked) is the rate at which the
 * requester asks the responder to send it slices, all its requests together: the requester
 * measures the path and the responder spreads its answers at that rate.
 *
 * Bit k of a bitmap (byte k>>3, mask 0x80>>(k&7)) stands for slice first_slice+k.
 * In a request it is set when the requester already has that slice; in a reply, when the
 * responder has it. The reply is followed by `sending` slice events.
 */
export const MAX_RANGE_SLICES = 512
export const BITMAP_BYTES = MAX_RANGE_SLICES / 8

export const SyncFileOffset = {
  fileId: 0,
  requestId: ID_BYTES,
  firstSlice: ID_BYTES + 4,
  rangeLength: ID_BYTES + 8,
  count: ID_BYTES + 10, // `limit` in a request, `sending` in a reply
  bitmap: ID_BYTES + 12,
  pace: ID_BYTES + 12 + BITMAP_BYTES,
  end: ID_BYTES + 12 + BITMAP_BYTES + 4
} as const

/** The highest pace a request can carry (u32). */
export const MAX_PACE = 0xffffffff

export interface SyncFileRange {
  fileId: Uint8Array
  requestId: number
  firstSlice: number
  rangeLength: number
  bitmap: Uint8Array
}
export interface SyncFileRequest extends SyncFileRange {
  limit: number
  /** Bytes of slice events per second the responder should keep to; 0: none asked. */
  pace: number
}
export interface SyncFileReply extends SyncFileRange { sending: number }

function encodeRange (range: SyncFileRange, count: number, pace: number): Uint8Array {
  expectLength(range.fileId, ID_BYTES, 'file id')
  expectLength(range.bitmap, BITMAP_BYTES, 'bitmap')
  if (!Number.isInteger(range.rangeLength) || range.rangeLength < 1 || range.rangeLength > MAX_RANGE_SLICES) throw new WireError('field', 'range length must be 1..512')
  if (!Number.isInteger(range.firstSlice) || range.firstSlice < 0 || range.firstSlice + range.rangeLength > 0x100000000) throw new WireError('field', 'range out of u32')
  if (!Number.isInteger(range.requestId) || range.requestId < 0 || range.requestId > 0xffffffff) throw new WireError('field', 'request id must be a u32')
  if (!Number.isInteger(count) || count < 0 || count > range.rangeLength) throw new WireError('field', 'count must be 0..range length')
  if (!Number.isInteger(pace) || pace < 0 || pace > MAX_PACE) throw new WireError('field', 'pace must be a u32')
  checkBitmapTail(range.bitmap, range.rangeLength)
  const out = new Uint8Array(PAYLOAD_BYTES)
  const view = new DataView(out.buffer)
  out.set(range.fileId, SyncFileOffset.fileId)
  view.setUint32(SyncFileOffset.requestId, range.requestId)
  view.setUint32(SyncFileOffset.firstSlice, range.firstSlice)
  view.setUint16(SyncFileOffset.rangeLength, range.rangeLength)
  view.setUint16(SyncFileOffset.count, count)
  out.set(range.bitmap, SyncFileOffset.bitmap)
  view.setUint32(SyncFileOffset.pace, pace)
  return out
}

function decodeRange (payload: Uint8Array): SyncFileRange & { count: number, pace: number } {
  expectLength(payload, PAYLOAD_BYTES, 'sync-file payload')
  expectZero(payload.subarray(SyncFileOffset.end), 'sync-file reserved bytes')
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  const rangeLength = view.getUint16(SyncFileOffset.rangeLength)
  const firstSlice = view.getUint32(SyncFileOffset.firstSlice)
  const count = view.getUint16(SyncFileOffset.count)
  if (rangeLength < 1 || rangeLength > MAX_RANGE_SLICES) throw new WireError('field', 'range length must be 1..512')
  if (firstSlice + rangeLength > 0x100000000) throw new WireError('field', 'range out of u32')
  if (count > rangeLength) throw new WireError('field', 'count larger than range')
  const bitmap = payload.slice(SyncFileOffset.bitmap, SyncFileOffset.pace)
  checkBitmapTail(bitmap, rangeLength)
  return {
    fileId: payload.slice(SyncFileOffset.fileId, SyncFileOffset.requestId),
    requestId: view.getUint32(SyncFileOffset.requestId),
    firstSlice,
    rangeLength,
    count,
    bitmap,
    pace: view.getUint32(SyncFileOffset.pace)
  }
}

function checkBitmapTail (bitmap: Uint8Array, rangeLength: number): void {
  for (let k = rangeLength; k < MAX_RANGE_SLICES; k++) {
    if ((bitmap[k >> 3]! & (0x80 >> (k & 7))) !== 0) throw new WireError('field', 'bitmap has bits past the range')
  }
}

export function encodeSyncFileRequestPayload (request: SyncFileRequest): Uint8Array {
  if (request.limit < 1) throw new WireError('field', 'limit must be at least 1')
  return encodeRange(request, request.limit, request.pace)
}

export function decodeSyncFileRequestPayload (payload: Uint8Array): SyncFileRequest {
  const { count, ...range } = decodeRange(payload)
  if (count < 1) throw new WireError('field', 'limit must be at least 1')
  return { ...range, limit: count }
}

export function encodeSyncFileReplyPayload (reply: SyncFileReply): Uint8Array {
  return encodeRange(reply, reply.sending, 0)
}

export function decodeSyncFileReplyPayload (payload: Uint8Array): SyncFileReply {
  const { count, pace, ...range } = decodeRange(payload)
  if (pace !== 0) throw new WireError('field', 'sync-file reserved bytes must be zero')
  return { ...range, sending: count }
}
