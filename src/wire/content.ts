import { WireError, expectLength } from './errors.js'
import { HEADER_BYTES, PAYLOAD_BYTES, encodeHeader } from './signed-event.js'
import { AEAD_NONCE_BYTES, AEAD_TAG_BYTES, aeadDecrypt, aeadEncrypt } from '../crypto/aead.js'
import { randomBytes } from '../crypto/random.js'
import type { EventHeader } from './signed-event.js'

/**
 * Content payload of an event that carries network content (descriptors, peers, addresses,
 * messages), 394 bytes:
 *   nonce 24 | XChaCha20-Poly1305(network_key, plaintext 354, ad = header bytes 0–53) | tag 16
 */
export const CONTENT_PLAINTEXT_BYTES = PAYLOAD_BYTES - AEAD_NONCE_BYTES - AEAD_TAG_BYTES

/** Seals a content payload with the network key, binding the event header. */
export function sealContentPayload (header: EventHeader, plaintext: Uint8Array, networkKey: Uint8Array): Uint8Array {
  expectLength(plaintext, CONTENT_PLAINTEXT_BYTES, 'content plaintext')
  const nonce = randomBytes(AEAD_NONCE_BYTES)
  const out = new Uint8Array(PAYLOAD_BYTES)
  out.set(nonce, 0)
  out.set(aeadEncrypt(plaintext, nonce, networkKey, encodeHeader(header)), AEAD_NONCE_BYTES)
  return out
}

/** Opens a content payload; throws WireError('decrypt') if it is not for this network key or was altered. */
export function openContentPayload (eventBytes: Uint8Array, payload: Uint8Array, networkKey: Uint8Array): Uint8Array {
  expectLength(payload, PAYLOAD_BYTES, 'content payload')
  const plain = aeadDecrypt(payload.subarray(AEAD_NONCE_BYTES), payload.subarray(0, AEAD_NONCE_BYTES), networkKey, eventBytes.subarray(0, HEADER_BYTES))
  if (plain === null) throw new WireError('decrypt', 'payload does not decrypt with this network key')
  return plain
}

/** A UTF-8 string in a length-prefixed, zero-padded field; `lengthBytes` is 1 or 2. */
export function writeString (out: Uint8Array, offset: number, lengthBytes: 1 | 2, capacity: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8')
  if (bytes.length > capacity) throw new WireError('field', `text longer than ${capacity} bytes`)
  if (lengthBytes === 1) out[offset] = bytes.length
  else new DataView(out.buffer, out.byteOffset, out.byteLength).setUint16(offset, bytes.length)
  out.set(bytes, offset + lengthBytes)
}

export function readString (plain: Uint8Array, offset: number, lengthBytes: 1 | 2, capacity: number): string {
  const length = lengthBytes === 1 ? plain[offset]! : new DataView(plain.buffer, plain.byteOffset, plain.byteLength).getUint16(offset)
  if (length > capacity) throw new WireError('field', 'string length past its field')
  const start = offset + lengthBytes
  for (let i = start + length; i < start + capacity; i++) if (plain[i] !== 0) throw new WireError('field', 'string padding must be zero')
  return new TextDecoder('utf-8', { fatal: false }).decode(plain.subarray(start, start + length))
}
