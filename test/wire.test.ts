import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { SliceEncryptor } from '../src/files/encrypt.js'
import { openSliceRecord } from '../src/files/verify.js'
import { windowCount, windowStart } from '../src/files/windows.js'
import { WindowHasher, fileIdOf, rootHashOf } from '../src/files/hashing.js'
import { fromHex, readU64be, toHex, writeU64be } from '../src/bytes.js'
import { hash32, signKeyPair } from '../src/crypto/index.js'
import {
  EVENT_BYTES, EventType, WireError, SLICE_RECORD_BYTES,
  decodeSliceEvent, encodeSliceEvent, encodeSignedEvent, decodeSignedEvent, openSignedEvent,
  encodeSyncFileRequestPayload, decodeSyncFileRequestPayload, encodeSyncFileReplyPayload, decodeSyncFileReplyPayload,
  encodeDescriptorPlaintext, decodeDescriptorPlaintext, sealContentPayload, openContentPayload, truncateUtf8,
  encodeWantPayload, decodeWantPayload, PAYLOAD_BYTES,
  encodeWindowHashes, decodeWindowHashes, encodeWindowHashesRequest, decodeWindowHashesRequest
} from '../src/wire/index.js'

const here = path.dirname(fileURLToPath(import.meta.url))
// Compiled tests live in dist/test; the vectors stay in the source tree.
const vectorsPath = path.resolve(here, '../../test/vectors/windows.json')

interface Vector {
  name: string
  file_bytes: number
  plaintext_hex?: string
  plaintext_rule?: string
  key_hex: string
  nonce_prefix_hex: string
  sharer_pk_hex: string
  file_name: string
  media_type: string
  window_hashes_hex: Array<{ window: number, first_slice: number, slices: number, hash: string }>
  all_window_hashes_blake2b256_hex: string
  slices: number
  windows: number
  file_id_hex: string
  root_hash_hex: string
  slice_events_hex: string[] | { first: string, last: string }
}

function plaintextOf (v: Vector): Uint8Array {
  if (v.plaintext_hex !== undefined) return fromHex(v.plaintext_hex)
  assert.equal(v.plaintext_rule, 'byte k = (k * 31 + 7) mod 251')
  const out = new Uint8Array(v.file_bytes)
  for (let k = 0; k < out.length; k++) out[k] = (k * 31 + 7) % 251
  return out
}

const vectors = (JSON.parse(fs.readFileSync(vectorsPath, 'utf8')) as { vectors: Vector[] }).vectors

for (const v of vectors) {
  test(`window vector "${v.name}": slice events, window hashes, root hash and file id reproduce byte for byte`, () => {
    const key = fromHex(v.key_hex)
    const prefix = fromHex(v.nonce_prefix_hex)
    const records: Array<{ slice: number, bytes: Uint8Array }> = []
    const plain = plaintextOf(v)
    // The size known beforehand: the windows are hashed in the same pass as the encryption.
    const encryptor = new SliceEncryptor(key, prefix, (first, batch) => {
      for (let k = 0; k * SLICE_RECORD_BYTES < batch.length; k++) records.push({ slice: first + k, bytes: batch.slice(k * SLICE_RECORD_BYTES, (k + 1) * SLICE_RECORD_BYTES) })
    }, plain.length)
    // Odd chunk sizes exercise the carry-over between pushes.
    for (let at = 0; at < plain.length; at += 1001) encryptor.push(plain.subarray(at, at + 1001))
    const result = encryptor.finish()
    assert.equal(result.slices, v.slices)
    assert.equal(records.length, v.slices)
    assert.equal(windowCount(result.slices), v.windows)
    const windowHashes = result.windowHashes!
    assert.equal(windowHashes.length, v.windows * 32)
    for (const w of v.window_hashes_hex) {
      assert.equal(windowStart(w.window, v.slices, v.windows), w.first_slice)
      assert.equal(toHex(windowHashes.subarray(w.window * 32, (w.window + 1) * 32)), w.hash, `window ${w.window}`)
    }
    assert.equal(toHex(hash32(windowHashes)), v.all_window_hashes_blake2b256_hex)
    // The same hashes from the records fed again in other chunkings (a receiver's view).
    const again = new WindowHasher(v.slices)
    for (let i = 0; i < records.length; i += 37) again.update(concatRecords(records.slice(i, i + 37).map(r => r.bytes)))
    assert.deepEqual(again.hashes, windowHashes)
    const rootHash = rootHashOf(v.file_bytes, windowHashes)
    assert.equal(toHex(rootHash), v.root_hash_hex)
    const fileId = fileIdOf({ sharerPk: fromHex(v.sharer_pk_hex), size: v.file_bytes, noncePrefix: prefix, key, rootHash, name: v.file_name, mediaType: v.media_type })
    assert.equal(toHex(fileId), v.file_id_hex)
    const events = records.map(r => toHex(encodeSliceEvent(fileId, r.slice, prefix, r.bytes)))
    if (Array.isArray(v.slice_events_hex)) assert.deepEqual(events, v.slice_events_hex)
    else {
      assert.equal(events[0], v.slice_events_hex.first)
      assert.equal(events[events.length - 1], v.slice_events_hex.last)
    }
    if (records.length > 0) {
      const decoded = decodeSliceEvent(encodeSliceEvent(fileId, records.length - 1, prefix, records[records.length - 1]!.bytes))
      assert.equal(decoded.sliceNo, records.length - 1)
      const out = new Uint8Array(450)
      assert.ok(openSliceRecord(decoded.record, decoded.sliceNo, { key, noncePrefix: prefix }, out))
      assert.ok(!openSliceRecord(decoded.record, decoded.sliceNo + 1, { key, noncePrefix: prefix }, out), 'a slice cannot move to another position')
    }
    // A size that does not come true leaves the hashing to a second pass.
    const wrong = new SliceEncryptor(key, prefix, () => {}, plain.length + 1)
    wrong.push(plain)
    assert.equal(wrong.finish().windowHashes, null)
  })
}

function concatRecords (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

test('u64 fields: big-endian, exact up to 2^53 - 1, and anything larger read as out of range', () => {
  const bytes = new Uint8Array(10)
  for (const value of [0, 1, 0xffffffff, 0x1_0000_0000, 1_764_000_000_000, Number.MAX_SAFE_INTEGER]) {
    writeU64be(bytes, 2, value)
    assert.equal(readU64be(bytes, 2), value)
    assert.equal(Buffer.from(bytes).readBigUInt64BE(2), BigInt(value), 'the same bytes as a big-endian u64')
  }
  Buffer.from(bytes.buffer).writeBigUInt64BE(2n ** 53n, 2)
  assert.equal(readU64be(bytes, 2), null)
  Buffer.from(bytes.buffer).writeBigUInt64BE(2n ** 64n - 1n, 2)
  assert.equal(readU64be(bytes, 2), null)
  assert.throws(() => writeU64be(bytes, 2, -1), RangeError)
  assert.throws(() => writeU64be(bytes, 2, 2 ** 53), RangeError)
  assert.throws(() => writeU64be(bytes, 2, 1.5), RangeError)
})

test('slice decoder rejects wrong length, version and type with a typed error', () => {
  const event = encodeSliceEvent(new Uint8Array(16), 7, new Uint8Array(20), new Uint8Array(SLICE_RECORD_BYTES))
  assert.throws(() => decodeSliceEvent(event.subarray(0, 511)), (e: unknown) => e instanceof WireError && e.code === 'length')
  const badVersion = event.slice(); badVersion[0] = 2
  assert.throws(() => decodeSliceEvent(badVersion), (e: unknown) => e instanceof WireError && e.code === 'version')
  const badType = event.slice(); badType[1] = EventType.syncFile
  assert.throws(() => decodeSliceEvent(badType), (e: unknown) => e instanceof WireError && e.code === 'type')
})

const signer = signKeyPair()
const header = (type: number) => ({ type, count: 3, createdAtMs: 1_700_000_000_000, ttlMs: 0, signerPk: signer.publicKey })

test('signed events round-trip, and any flipped bit breaks the signature', () => {
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(5)
  const bytes = encodeSignedEvent(header(EventType.wantControl), payload, signer.secretKey)
  assert.equal(bytes.length, EVENT_BYTES)
  const event = openSignedEvent(bytes, EventType.wantControl)
  assert.equal(event.header.count, 3)
  assert.equal(event.header.createdAtMs, 1_700_000_000_000)
  assert.deepEqual(event.payload, payload)
  for (const at of [0 + 6, 100, 447, 500]) {
    const tampered = bytes.slice(); tampered[at]! ^= 1
    assert.throws(() => openSignedEvent(tampered), WireError)
  }
  const unknown = bytes.slice(); unknown[1] = 0x7f
  assert.throws(() => decodeSignedEvent(unknown), (e: unknown) => e instanceof WireError && e.code === 'type')
  assert.throws(() => decodeSignedEvent(new Uint8Array(513)), (e: unknown) => e instanceof WireError && e.code === 'length')
})

test('sync-file request and reply payloads round-trip and reject bad fields', () => {
  const bitmap = new Uint8Array(64); bitmap[0] = 0b1010_0000
  const request = { fileId: new Uint8Array(16).fill(9), requestId: 77, firstSlice: 1000, rangeLength: 57, limit: 55, bitmap, pace: 3_000_000 }
  assert.deepEqual(decodeSyncFileRequestPayload(encodeSyncFileRequestPayload(request)), request)
  const reply = { fileId: request.fileId, requestId: 77, firstSlice: 1000, rangeLength: 57, sending: 12, bitmap }
  assert.deepEqual(decodeSyncFileReplyPayload(encodeSyncFileReplyPayload(reply)), reply)
  const payload = encodeSyncFileRequestPayload(request)
  const bitPastRange = payload.slice(); bitPastRange[28 + 7]! |= 0x01 // bit 63 > range length 57
  assert.throws(() => decodeSyncFileRequestPayload(bitPastRange), WireError)
  const reserved = payload.slice(); reserved[200] = 1
  assert.throws(() => decodeSyncFileRequestPayload(reserved), WireError)
  assert.equal(new DataView(payload.buffer).getUint32(92), 3_000_000, 'the pace sits right after the bitmap')
  const pacedReply = encodeSyncFileReplyPayload(reply); pacedReply[95] = 1
  assert.throws(() => decodeSyncFileReplyPayload(pacedReply), WireError, 'a reply carries no pace')
  assert.throws(() => encodeSyncFileRequestPayload({ ...request, pace: 2 ** 32 }), WireError)
  const zeroLength = payload.slice(); zeroLength[24] = 0; zeroLength[25] = 0
  assert.throws(() => decodeSyncFileRequestPayload(zeroLength), WireError)
  assert.throws(() => encodeSyncFileRequestPayload({ ...request, rangeLength: 513 }), WireError)
})

test('descriptor payload is encrypted to the network key and bound to its header', () => {
  const networkKey = new Uint8Array(32).fill(8)
  const descriptor = {
    fileId: new Uint8Array(16).fill(1), size: 52_428_800, noncePrefix: new Uint8Array(20).fill(2), key: new Uint8Array(32).fill(3),
    rootHash: new Uint8Array(32).fill(4), name: 'holiday 🏖.mp4', mediaType: 'video/mp4'
  }
  const h = header(EventType.attachmentDescriptor)
  const bytes = encodeSignedEvent(h, sealContentPayload(h, encodeDescriptorPlaintext(descriptor), networkKey), signer.secretKey)
  const event = openSignedEvent(bytes)
  assert.deepEqual(decodeDescriptorPlaintext(openContentPayload(bytes, event.payload, networkKey)), descriptor)
  assert.throws(() => openContentPayload(bytes, event.payload, new Uint8Array(32)), (e: unknown) => e instanceof WireError && e.code === 'decrypt')
  const otherHeader = bytes.slice(); otherHeader[5]! ^= 1
  assert.throws(() => openContentPayload(otherHeader, event.payload, networkKey), WireError)
  assert.equal(Buffer.byteLength(truncateUtf8('é'.repeat(200), 180)), 180)
  assert.equal(Buffer.byteLength(truncateUtf8('a' + 'é'.repeat(200), 180)), 179, 'never splits a character')
})

test('want-control payload round-trips and rejects unknown actions', () => {
  const want = { fileId: new Uint8Array(16).fill(6), action: 'pause' as const, priority: 7 }
  assert.deepEqual(decodeWantPayload(encodeWantPayload(want)), want)
  const bad = encodeWantPayload(want); bad[16] = 99
  assert.throws(() => decodeWantPayload(bad), WireError)
})

test('window-hash events round-trip, at most 15 hashes each, and reject non-zero padding', () => {
  const fileId = new Uint8Array(16).fill(9)
  const request = { fileId, firstWindow: 30, count: 4096 }
  assert.deepEqual(decodeWindowHashesRequest(encodeWindowHashesRequest(request)), request)
  const hashes = new Uint8Array(15 * 32).map((_, i) => i & 0xff)
  const event = encodeWindowHashes(fileId, 45, hashes)
  assert.equal(event.length, 512)
  assert.deepEqual(decodeWindowHashes(event), { fileId, firstWindow: 45, hashes })
  assert.deepEqual(decodeWindowHashes(encodeWindowHashes(fileId, 0, new Uint8Array(0))).hashes, new Uint8Array(0), 'count 0: the sender has none')
  assert.throws(() => encodeWindowHashes(fileId, 0, new Uint8Array(16 * 32)), WireError)
  const padded = encodeWindowHashes(fileId, 0, hashes.subarray(0, 64)); padded[200] = 1
  assert.throws(() => decodeWindowHashes(padded), WireError)
  const tooMany = event.slice(); tooMany[22] = 16
  assert.throws(() => decodeWindowHashes(tooMany), WireError)
  const request2 = encodeWindowHashesRequest(request); request2[300] = 1
  assert.throws(() => decodeWindowHashesRequest(request2), WireError)
})
