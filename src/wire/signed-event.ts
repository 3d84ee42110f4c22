import { EVENT_BYTES, PROTOCOL_VERSION, isKnownEventType, EventType } from './constants.js'
import { WireError, expectLength } from './errors.js'
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, sign, verify } from '../crypto/sign.js'
import { readU32be, readU64be, writeU32be, writeU64be } from '../bytes.js'

/**
 * Common-header signed event, 512 bytes:
 *   version 1 | type 1 | count 4 | created_at_ms 8 | ttl_ms 8 | signer_pk 32   (header, 54)
 *   payload 394
 *   signature 64   (Ed25519 over bytes 0–447)
 */
export const HeaderOffset = {
  version: 0,
  type: 1,
  count: 2,
  createdAtMs: 6,
  ttlMs: 14,
  signerPk: 22,
  payload: 22 + PUBLIC_KEY_BYTES
} as const
export const HEADER_BYTES = HeaderOffset.payload
export const SIGNED_BYTES = EVENT_BYTES - SIGNATURE_BYTES
export const PAYLOAD_BYTES = SIGNED_BYTES - HEADER_BYTES

export interface EventHeader {
  type: number
  /** Per-signer sequence number. */
  count: number
  createdAtMs: number
  /** 0 means no expiry. */
  ttlMs: number
  signerPk: Uint8Array
}

export interface SignedEvent {
  header: EventHeader
  /** View into the decoded bytes. */
  payload: Uint8Array
  signature: Uint8Array
  /** The whole 512-byte event. */
  bytes: Uint8Array
}

function checkU64 (value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new WireError('field', `${what} must be a non-negative safe integer`)
}

/** The 54 header bytes alone; encrypted payloads bind them as associated data. */
export function encodeHeader (header: EventHeader): Uint8Array {
  expectLength(header.signerPk, PUBLIC_KEY_BYTES, 'signer public key')
  if (!Number.isInteger(header.count) || header.count < 0 || header.count > 0xffffffff) throw new WireError('field', 'count must be a u32')
  checkU64(header.createdAtMs, 'created_at_ms')
  checkU64(header.ttlMs, 'ttl_ms')
  const out = new Uint8Array(HEADER_BYTES)
  out[HeaderOffset.version] = PROTOCOL_VERSION
  out[HeaderOffset.type] = header.type
  writeU32be(out, HeaderOffset.count, header.count)
  writeU64be(out, HeaderOffset.createdAtMs, header.createdAtMs)
  writeU64be(out, HeaderOffset.ttlMs, header.ttlMs)
  out.set(header.signerPk, HeaderOffset.signerPk)
  return out
}

export function encodeSignedEvent (header: EventHeader, payload: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (payload.length > PAYLOAD_BYTES) throw new WireError('length', `payload must be at most ${PAYLOAD_BYTES} bytes`)
  const out = new Uint8Array(EVENT_BYTES)
  out.set(encodeHeader(header), 0)
  out.set(payload, HEADER_BYTES)
  out.set(sign(out.subarray(0, SIGNED_BYTES), secretKey), SIGNED_BYTES)
  return out
}

/** Checks layout only (length, version, type). Use `verifySignedEvent` before trusting it. */
export function decodeSignedEvent (bytes: Uint8Array, expectedType?: number): SignedEvent {
  expectLength(bytes, EVENT_BYTES, 'event')
  if (bytes[HeaderOffset.version] !== PROTOCOL_VERSION) throw new WireError('version', `unsupported version ${bytes[HeaderOffset.version]}`)
  const type = bytes[HeaderOffset.type]!
  if (!isKnownEventType(type) || type === EventType.slice) throw new WireError('type', `unknown signed event type ${type}`)
  if (expectedType !== undefined && type !== expectedType) throw new WireError('type', `expected type ${expectedType}, got ${type}`)
  const createdAt = readU64be(bytes, HeaderOffset.createdAtMs)
  const ttl = readU64be(bytes, HeaderOffset.ttlMs)
  if (createdAt === null || ttl === null) throw new WireError('field', 'timestamp out of range')
  return {
    header: {
      type,
      count: readU32be(bytes, HeaderOffset.count),
      createdAtMs: createdAt,
      ttlMs: ttl,
      signerPk: bytes.subarray(HeaderOffset.signerPk, HEADER_BYTES)
    },
    payload: bytes.subarray(HEADER_BYTES, SIGNED_BYTES),
    signature: bytes.subarray(SIGNED_BYTES, EVENT_BYTES),
    bytes
  }
}

export function verifySignedEvent (event: SignedEvent): boolean {
  return verify(event.signature, event.bytes.subarray(0, SIGNED_BYTES), event.header.signerPk)
}

/** Decode and verify in one step: throws WireError('signature') when the signature is wrong. */
export function openSignedEvent (bytes: Uint8Array, expectedType?: number): SignedEvent {
  const event = decodeSignedEvent(bytes, expectedType)
  if (!verifySignedEvent(event)) throw new WireError('signature', 'bad event signature')
  return event
}

/** Reserved tail bytes of a payload must be zero, so one event has exactly one encoding. */
export function expectZero (bytes: Uint8Array, what: string): void {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) throw new WireError('field', `${what} must be zero`)
}
