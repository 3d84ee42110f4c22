import { WireError, expectLength } from './errors.js'
import { expectZero } from './signed-event.js'
import { NONCE_PREFIX_BYTES } from './slice.js'
import { HASH_BYTES, ID_BYTES } from '../crypto/hash.js'
import { AEAD_KEY_BYTES } from '../crypto/aead.js'
import { CONTENT_PLAINTEXT_BYTES } from './content.js'
import { readU64be, writeU64be } from '../bytes.js'

/**
 * Attachment descriptor: everything needed to fetch and decrypt one file.
 *
 * Event payload: a content payload (see content.ts) around this plaintext.
 * Plaintext (354):
 *   file_id 16 | size 8 | nonce_prefix 20 | key 32 | root_hash 32 |
 *   name_length 1 | name 180 (UTF-8, zero-padded) | media_type_length 1 | media_type 64 (ASCII, zero-padded)
 */
export const DESCRIPTOR_PLAINTEXT_BYTES = CONTENT_PLAINTEXT_BYTES
export const MAX_NAME_BYTES = 180
export const MAX_MEDIA_TYPE_BYTES = 64

export const DescriptorOffset = {
  fileId: 0,
  size: ID_BYTES,
  noncePrefix: ID_BYTES + 8,
  key: ID_BYTES + 8 + NONCE_PREFIX_BYTES,
  rootHash: ID_BYTES + 8 + NONCE_PREFIX_BYTES + AEAD_KEY_BYTES,
  nameLength: ID_BYTES + 8 + NONCE_PREFIX_BYTES + AEAD_KEY_BYTES + HASH_BYTES,
  name: ID_BYTES + 8 + NONCE_PREFIX_BYTES + AEAD_KEY_BYTES + HASH_BYTES + 1,
  mediaTypeLength: ID_BYTES + 8 + NONCE_PREFIX_BYTES + AEAD_KEY_BYTES + HASH_BYTES + 1 + MAX_NAME_BYTES,
  mediaType: ID_BYTES + 8 + NONCE_PREFIX_BYTES + AEAD_KEY_BYTES + HASH_BYTES + 2 + MAX_NAME_BYTES,
  end: ID_BYTES + 8 + NONCE_PREFIX_BYTES + AEAD_KEY_BYTES + HASH_BYTES + 2 + MAX_NAME_BYTES + MAX_MEDIA_TYPE_BYTES
} as const
if (DescriptorOffset.end !== DESCRIPTOR_PLAINTEXT_BYTES) throw new Error('descriptor layout does not fill its payload')

export interface Descriptor {
  fileId: Uint8Array
  size: number
  noncePrefix: Uint8Array
  key: Uint8Array
  rootHash: Uint8Array
  name: string
  mediaType: string
}

/** Cuts a UTF-8 string to at most `maxBytes` without splitting a character. */
export function truncateUtf8 (text: string, maxBytes: number): string {
  let bytes = Buffer.from(text, 'utf8')
  if (bytes.length <= maxBytes) return text
  let end = maxBytes
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--
  bytes = bytes.subarray(0, end)
  return bytes.toString('utf8')
}

export function encodeDescriptorPlaintext (d: Descriptor): Uint8Array {
  expectLength(d.fileId, ID_BYTES, 'file id')
  expectLength(d.noncePrefix, NONCE_PREFIX_BYTES, 'nonce prefix')
  expectLength(d.key, AEAD_KEY_BYTES, 'file key')
  expectLength(d.rootHash, HASH_BYTES, 'root hash')
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw new WireError('field', 'size must be a non-negative safe integer')
  const name = Buffer.from(d.name, 'utf8')
  const mediaType = Buffer.from(d.mediaType, 'ascii')
  if (name.length > MAX_NAME_BYTES) throw new WireError('field', `name longer than ${MAX_NAME_BYTES} bytes`)
  if (mediaType.length > MAX_MEDIA_TYPE_BYTES || !/^[\x20-\x7e]*$/.test(d.mediaType)) throw new WireError('field', 'media type must be printable ASCII of at most 64 bytes')
  const out = new Uint8Array(DESCRIPTOR_PLAINTEXT_BYTES)
  out.set(d.fileId, DescriptorOffset.fileId)
  writeU64be(out, DescriptorOffset.size, d.size)
  out.set(d.noncePrefix, DescriptorOffset.noncePrefix)
  out.set(d.key, DescriptorOffset.key)
  out.set(d.rootHash, DescriptorOffset.rootHash)
  out[DescriptorOffset.nameLength] = name.length
  out.set(name, DescriptorOffset.name)
  out[DescriptorOffset.mediaTypeLength] = mediaType.length
  out.set(mediaType, DescriptorOffset.mediaType)
  return out
}

export function decodeDescriptorPlaintext (plain: Uint8Array): Descriptor {
  expectLength(plain, DESCRIPTOR_PLAINTEXT_BYTES, 'descriptor')
  const size = readU64be(plain, DescriptorOffset.size)
  if (size === null) throw new WireError('field', 'size out of range')
  const nameLength = plain[DescriptorOffset.nameLength]!
  const mediaTypeLength = plain[DescriptorOffset.mediaTypeLength]!
  if (nameLength > MAX_NAME_BYTES || mediaTypeLength > MAX_MEDIA_TYPE_BYTES) throw new WireError('field', 'descriptor string too long')
  expectZero(plain.subarray(DescriptorOffset.name + nameLength, DescriptorOffset.mediaTypeLength), 'name padding')
  expectZero(plain.subarray(DescriptorOffset.mediaType + mediaTypeLength, DescriptorOffset.end), 'media type padding')
  const nameBytes = plain.subarray(DescriptorOffset.name, DescriptorOffset.name + nameLength)
  const name = new TextDecoder('utf-8', { fatal: false }).decode(nameBytes)
  const mediaType = Buffer.from(plain.subarray(DescriptorOffset.mediaType, DescriptorOffset.mediaType + mediaTypeLength)).toString('ascii')
  if (!/^[\x20-\x7e]*$/.test(mediaType)) throw new WireError('field', 'media type must be printable ASCII')
  return {
    fileId: plain.slice(DescriptorOffset.fileId, DescriptorOffset.size),
    size,
    noncePrefix: plain.slice(DescriptorOffset.noncePrefix, DescriptorOffset.key),
    key: plain.slice(DescriptorOffset.key, DescriptorOffset.rootHash),
    rootHash: plain.slice(DescriptorOffset.rootHash, DescriptorOffset.nameLength),
    name,
    mediaType
  }
}

