import { WireError, expectLength } from './errors.js'
import { PAYLOAD_BYTES, expectZero } from './signed-event.js'

/**
 * Ordinary `sync` request (type 0x07) payload, inside the common header:
 *   window_bits 1 | window 4 | request_nonce 16 | limit 2 | bloom 64 | zero 307
 * The window holds the events whose `hash32(event_id)` starts with the `window_bits`-bit
 * number `window`. The bloom filter (512 bits, k = 5) holds the ids the requester has in
 * it, salted with `id(requester_pk ‖ window_bits ‖ u32be(window) ‖ request_nonce)`; a
 * fresh nonce per request means a false positive never repeats. The responder sends, as
 * plain events, up to `limit` events of the window that are not in the filter.
 */
export const SYNC_NONCE_BYTES = 16
export const BLOOM_BYTES = 64
export const MAX_WINDOW_BITS = 24

export const SyncOffset = { windowBits: 0, window: 1, nonce: 5, limit: 21, bloom: 23, end: 23 + BLOOM_BYTES } as const

export interface SyncRequest {
  windowBits: number
  window: number
  nonce: Uint8Array
  limit: number
  bloom: Uint8Array
}

export function encodeSyncPayload (request: SyncRequest): Uint8Array {
  if (!Number.isInteger(request.windowBits) || request.windowBits < 0 || request.windowBits > MAX_WINDOW_BITS) throw new WireError('field', 'window bits must be 0..24')
  if (!Number.isInteger(request.window) || request.window < 0 || request.window >= 2 ** request.windowBits) throw new WireError('field', 'window out of range')
  expectLength(request.nonce, SYNC_NONCE_BYTES, 'sync nonce')
  expectLength(request.bloom, BLOOM_BYTES, 'bloom filter')
  const out = new Uint8Array(PAYLOAD_BYTES)
  const view = new DataView(out.buffer)
  out[SyncOffset.windowBits] = request.windowBits
  view.setUint32(SyncOffset.window, request.window)
  out.set(request.nonce, SyncOffset.nonce)
  view.setUint16(SyncOffset.limit, request.limit)
  out.set(request.bloom, SyncOffset.bloom)
  return out
}

export function decodeSyncPayload (payload: Uint8Array): SyncRequest {
  expectLength(payload, PAYLOAD_BYTES, 'sync payload')
  expectZero(payload.subarray(SyncOffset.end), 'sync reserved bytes')
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength)
  const windowBits = payload[SyncOffset.windowBits]!
  const window = view.getUint32(SyncOffset.window)
  if (windowBits > MAX_WINDOW_BITS || window >= 2 ** windowBits) throw new WireError('field', 'window out of range')
  return {
    windowBits,
    window,
    nonce: payload.slice(SyncOffset.nonce, SyncOffset.limit),
    limit: view.getUint16(SyncOffset.limit),
    bloom: payload.slice(SyncOffset.bloom, SyncOffset.end)
  }
}
