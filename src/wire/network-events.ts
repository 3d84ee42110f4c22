import { WireError, expectLength } from './errors.js'
import { CONTENT_PLAINTEXT_BYTES, readString, writeString } from './content.js'
import { expectZero } from './signed-event.js'
import { ID_BYTES } from '../crypto/hash.js'

/**
 * Plaintexts (354 bytes, inside a content payload) of the small network events.
 *
 * peer (0x01):    name_length 1 | name 64 (UTF-8) | zero 289        — the signer is the peer
 * address (0x02): host_length 1 | host 253 (ASCII) | port 2 | zero 98 — where the signer listens
 * message (0x04): file_id 16 (all zero: none) | text_length 2 | text 336 (UTF-8)
 */
export const MAX_PEER_NAME_BYTES = 64
export const MAX_HOST_BYTES = 253
export const MAX_MESSAGE_BYTES = 336

export const PeerOffset = { nameLength: 0, end: 1 + MAX_PEER_NAME_BYTES } as const
export const AddressOffset = { hostLength: 0, port: 1 + MAX_HOST_BYTES, end: 3 + MAX_HOST_BYTES } as const
export const MessageOffset = { fileId: 0, textLength: ID_BYTES, end: ID_BYTES + 2 + MAX_MESSAGE_BYTES } as const
if (MessageOffset.end !== CONTENT_PLAINTEXT_BYTES) throw new Error('message layout does not fill its payload')

export function encodePeerPlaintext (name: string): Uint8Array {
  const out = new Uint8Array(CONTENT_PLAINTEXT_BYTES)
  writeString(out, PeerOffset.nameLength, 1, MAX_PEER_NAME_BYTES, name)
  return out
}

export function decodePeerPlaintext (plain: Uint8Array): { name: string } {
  expectLength(plain, CONTENT_PLAINTEXT_BYTES, 'peer plaintext')
  expectZero(plain.subarray(PeerOffset.end), 'peer reserved bytes')
  return { name: readString(plain, PeerOffset.nameLength, 1, MAX_PEER_NAME_BYTES) }
}

export interface Address { host: string, port: number }

export function encodeAddressPlaintext (address: Address): Uint8Array {
  if (!/^[\x21-\x7e]{1,253}$/.test(address.host)) throw new WireError('field', 'host must be 1–253 printable ASCII characters')
  if (!Number.isInteger(address.port) || address.port < 1 || address.port > 65535) throw new WireError('field', 'port must be 1–65535')
  const out = new Uint8Array(CONTENT_PLAINTEXT_BYTES)
  writeString(out, AddressOffset.hostLength, 1, MAX_HOST_BYTES, address.host)
  new DataView(out.buffer).setUint16(AddressOffset.port, address.port)
  return out
}

export function decodeAddressPlaintext (plain: Uint8Array): Address {
  expectLength(plain, CONTENT_PLAINTEXT_BYTES, 'address plaintext')
  expectZero(plain.subarray(AddressOffset.end), 'address reserved bytes')
  const host = readString(plain, AddressOffset.hostLength, 1, MAX_HOST_BYTES)
  const port = new DataView(plain.buffer, plain.byteOffset, plain.byteLength).getUint16(AddressOffset.port)
  if (!/^[\x21-\x7e]{1,253}$/.test(host) || port === 0) throw new WireError('field', 'bad address')
  return { host, port }
}

export interface Message { fileId: Uint8Array | null, text: string }

export function encodeMessagePlaintext (message: Message): Uint8Array {
  const out = new Uint8Array(CONTENT_PLAINTEXT_BYTES)
  if (message.fileId !== null) {
    expectLength(message.fileId, ID_BYTES, 'file id')
    out.set(message.fileId, MessageOffset.fileId)
  }
  writeString(out, MessageOffset.textLength, 2, MAX_MESSAGE_BYTES, message.text)
  return out
}

export function decodeMessagePlaintext (plain: Uint8Array): Message {
  expectLength(plain, CONTENT_PLAINTEXT_BYTES, 'message plaintext')
  const fileId = plain.slice(MessageOffset.fileId, MessageOffset.textLength)
  return { fileId: fileId.every(b => b === 0) ? null : fileId, text: readString(plain, MessageOffset.textLength, 2, MAX_MESSAGE_BYTES) }
}
