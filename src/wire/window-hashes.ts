import { EVENT_BYTES, EventType, PROTOCOL_VERSION } from './constants.js'
import { WireError, expectLength } from './errors.js'
import { HASH_BYTES, ID_BYTES } from '../crypto/hash.js'
import { readU32be, writeU32be } from '../bytes.js'

/**
 * Window-hash events, 512 bytes, no signature (the hashes are checked against the root hash
 * the signed descriptor carries, so nobody can pass off others):
 *
 * request (0x0c): version 1 | type 1 | file_id 16 | first_window 4 | count 4 | zero 486
 * hashes  (0x0d): version 1 | type 1 | file_id 16 | first_window 4 | count 1 | hashes 15 × 32 | zero 9
 *
 * A request asks for windows `[first_window, first_window + count)`; the answer is one
 * hashes event per run of at most 15 of them. A `count` of 0 in a hashes event says the
 * sender does not have the file's window hashes.
 */
export const WINDOW_HASHES_PER_EVENT = 15

export const WindowHashesOffset = {
  version: 0,
  type: 1,
  fileId: 2,
  firstWindow: 2 + ID_BYTES,
  count: 6 + ID_BYTES,
  hashes: 7 + ID_BYTES,
  end: 7 + ID_BYTES + WINDOW_HASHES_PER_EVENT * HASH_BYTES
} as const
const REQUEST_END = 10 + ID_BYTES

export interface WindowHashesRequest { fileId: Uint8Array, firstWindow: number, count: number }
export interface WindowHashes { fileId: Uint8Array, firstWindow: number, hashes: Uint8Array }

function header (type: number, fileId: Uint8Array, firstWindow: number): Uint8Array {
  expectLength(fileId, ID_BYTES, 'file id')
  const out = new Uint8Array(EVENT_BYTES)
  out[0] = PROTOCOL_VERSION
  out[1] = type
  out.set(fileId, WindowHashesOffset.fileId)
  writeU32be(out, WindowHashesOffset.firstWindow, firstWindow)
  return out
}

function checkHeader (bytes: Uint8Array, type: number, paddingFrom: number): void {
  expectLength(bytes, EVENT_BYTES, 'window-hashes event')
  if (bytes[0] !== PROTOCOL_VERSION) throw new WireError('version', 'unsupported version')
  if (bytes[1] !== type) throw new WireError('type', 'not a window-hashes event')
  for (let i = paddingFrom; i < EVENT_BYTES; i++) if (bytes[i] !== 0) throw new WireError('field', 'padding must be zero')
}

export function encodeWindowHashesRequest (request: WindowHashesRequest): Uint8Array {
  const out = header(EventType.windowHashesRequest, request.fileId, request.firstWindow)
  writeU32be(out, WindowHashesOffset.count, request.count)
  return out
}

export function decodeWindowHashesRequest (bytes: Uint8Array): WindowHashesRequest {
  checkHeader(bytes, EventType.windowHashesRequest, REQUEST_END)
  return {
    fileId: bytes.slice(WindowHashesOffset.fileId, WindowHashesOffset.firstWindow),
    firstWindow: readU32be(bytes, WindowHashesOffset.firstWindow),
    count: readU32be(bytes, WindowHashesOffset.count)
  }
}

/** `hashes`: at most 15 window hashes, 32 bytes each (none: "I do not have them"). */
export function encodeWindowHashes (fileId: Uint8Array, firstWindow: number, hashes: Uint8Array): Uint8Array {
  const count = hashes.length / HASH_BYTES
  if (!Number.isInteger(count) || count > WINDOW_HASHES_PER_EVENT) throw new WireError('field', `at most ${WINDOW_HASHES_PER_EVENT} whole window hashes per event`)
  const out = header(EventType.windowHashes, fileId, firstWindow)
  out[WindowHashesOffset.count] = count
  out.set(hashes, WindowHashesOffset.hashes)
  return out
}

export function decodeWindowHashes (bytes: Uint8Array): WindowHashes {
  expectLength(bytes, EVENT_BYTES, 'window-hashes event')
  const count = bytes[WindowHashesOffset.count]!
  if (count > WINDOW_HASHES_PER_EVENT) throw new WireError('field', 'too many window hashes')
  const end = WindowHashesOffset.hashes + count * HASH_BYTES
  checkHeader(bytes, EventType.windowHashes, end)
  return {
    fileId: bytes.slice(WindowHashesOffset.fileId, WindowHashesOffset.firstWindow),
    firstWindow: readU32be(bytes, WindowHashesOffset.firstWindow),
    hashes: bytes.slice(WindowHashesOffset.hashes, end)
  }
}
