import { WireError, expectLength } from './errors.js'
import { ID_BYTES } from '../crypto/hash.js'
import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from '../crypto/aead.js'
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, sign, verify } from '../crypto/sign.js'
import { SEAL_OVERHEAD_BYTES } from '../crypto/box.js'
import { readU32be, readU64be, writeU32be, writeU64be } from '../bytes.js'

/**
 * Transit layer: what travels in a UDP datagram. Byte 0 says which kind.
 *
 * connect (0x51): kind 1 | crypto_box_seal(recipient, connect body 237) 285 | mac1 16 | mac2 16 = 318 bytes
 * data    (0x52): kind 1 | connection_id 16 | nonce 24 | XChaCha20-Poly1305(transit_key,
 *                 zero or more whole 512-byte events, ad = bytes 0–40) | tag 16
 * cookie  (0x53): kind 1 | nonce 24 | XChaCha20-Poly1305(cookie_key, cookie 16, ad = the connect's mac1) | tag 16 = 57 bytes
 * path challenge (0x54), path response (0x55): as data, with a 16-byte token for payload
 *
 * mac1 = BLAKE2b-128 keyed with mac1_key over bytes 0–285 of the connect, where
 * mac1_key = BLAKE2b-256(MAC1_LABEL ‖ network_key ‖ recipient_pk): only a member that knows
 * the recipient's key can make it, and it is checked before any public-key operation.
 * mac2 = BLAKE2b-128 keyed with a cookie over bytes 0–301, zeros when the sender holds none.
 * A recipient under load answers a connect without a valid mac2 with a cookie instead:
 * cookie = BLAKE2b-128 keyed with a secret it replaces every two minutes over the source
 * address, sealed with cookie_key = BLAKE2b-256(COOKIE_LABEL ‖ network_key ‖ recipient_pk).
 * A path challenge to a new address must come back as a path response from it before
 * answers go there.
 * control (0x56): as data, with a control message for payload (src/wire/transit-control.ts);
 * punch (0x57) and relayed (0x58) are laid out there too.
 *
 * Connect body:
 *   version 1 | connection_id 16 | transit_key 32 | created_at_ms 8 | ttl_ms 4 |
 *   sender_pk 32 | recipient_pk 32 | network_id 16 | proof 32 | signature 64
 * proof = BLAKE2b-256 keyed with the network key over CONNECT_PROOF_LABEL ‖ body bytes 1–124
 * (connection id through network id, transit key excluded); signature = Ed25519 by the
 * sender over bytes 0–172.
 *
 * Data nonce: direction 1 (0 from the connecting side, 1 back) | zero 15 | counter 8.
 * A data datagram with no events is a keepalive; the first one back accepts a connect.
 */
export const DatagramKind = { connect: 0x51, data: 0x52, cookie: 0x53, pathChallenge: 0x54, pathResponse: 0x55, control: 0x56, punch: 0x57, relayed: 0x58 } as const
export const TRANSIT_VERSION = 1
export const CONNECT_PROOF_LABEL = new TextEncoder().encode('quiet-files connect v1')

export const ConnectOffset = {
  version: 0,
  connectionId: 1,
  transitKey: 1 + ID_BYTES,
  createdAtMs: 1 + ID_BYTES + AEAD_KEY_BYTES,
  ttlMs: 9 + ID_BYTES + AEAD_KEY_BYTES,
  senderPk: 13 + ID_BYTES + AEAD_KEY_BYTES,
  recipientPk: 13 + ID_BYTES + AEAD_KEY_BYTES + PUBLIC_KEY_BYTES,
  networkId: 13 + ID_BYTES + AEAD_KEY_BYTES + 2 * PUBLIC_KEY_BYTES,
  proof: 13 + 2 * ID_BYTES + AEAD_KEY_BYTES + 2 * PUBLIC_KEY_BYTES,
  signature: 13 + 2 * ID_BYTES + AEAD_KEY_BYTES + 2 * PUBLIC_KEY_BYTES + 32,
  end: 13 + 2 * ID_BYTES + AEAD_KEY_BYTES + 2 * PUBLIC_KEY_BYTES + 32 + SIGNATURE_BYTES
} as const
export const CONNECT_BODY_BYTES = ConnectOffset.end
export const MAC_BYTES = 16
export const COOKIE_BYTES = 16
/** Where the connect's two MACs sit, after the sealed body. */
export const ConnectMacOffset = { mac1: 1 + CONNECT_BODY_BYTES + SEAL_OVERHEAD_BYTES, mac2: 1 + CONNECT_BODY_BYTES + SEAL_OVERHEAD_BYTES + MAC_BYTES } as const
export const CONNECT_DATAGRAM_BYTES = ConnectMacOffset.mac2 + MAC_BYTES
export const MAC1_LABEL = new TextEncoder().encode('quiet-files mac1 v1')
export const COOKIE_LABEL = new TextEncoder().encode('quiet-files cookie v1')
export const CookieOffset = { kind: 0, nonce: 1, ciphertext: 1 + AEAD_NONCE_BYTES, end: 1 + AEAD_NONCE_BYTES + COOKIE_BYTES + AEAD_TAG_BYTES } as const
export const COOKIE_DATAGRAM_BYTES = CookieOffset.end
/** The token a path challenge carries and its response echoes. */
export const PATH_TOKEN_BYTES = 16

export const DataOffset = { kind: 0, connectionId: 1, nonce: 1 + ID_BYTES, ciphertext: 1 + ID_BYTES + AEAD_NONCE_BYTES } as const
export const DATA_OVERHEAD_BYTES = DataOffset.ciphertext + AEAD_TAG_BYTES
/** Where the u64 counter starts in a data nonce (after direction 1 and zero 15). */
const DATA_NONCE_COUNTER_OFFSET = 16

export interface ConnectBody {
  connectionId: Uint8Array
  transitKey: Uint8Array
  createdAtMs: number
  ttlMs: number
  senderPk: Uint8Array
  recipientPk: Uint8Array
  networkId: Uint8Array
  proof: Uint8Array
}

/** The bytes the membership proof covers (everything but the transit key, proof and signature). */
export function connectProofInput (body: Omit<ConnectBody, 'proof' | 'transitKey'>): Uint8Array {
  const out = new Uint8Array(CONNECT_PROOF_LABEL.length + ID_BYTES + 12 + 2 * PUBLIC_KEY_BYTES + ID_BYTES)
  let at = 0
  out.set(CONNECT_PROOF_LABEL, at); at += CONNECT_PROOF_LABEL.length
  out.set(body.connectionId, at); at += ID_BYTES
  writeU64be(out, at, body.createdAtMs); at += 8
  writeU32be(out, at, body.ttlMs); at += 4
  out.set(body.senderPk, at); at += PUBLIC_KEY_BYTES
  out.set(body.recipientPk, at); at += PUBLIC_KEY_BYTES
  out.set(body.networkId, at)
  return out
}

export function encodeConnectBody (body: ConnectBody, senderSecretKey: Uint8Array): Uint8Array {
  expectLength(body.connectionId, ID_BYTES, 'connection id')
  expectLength(body.transitKey, AEAD_KEY_BYTES, 'transit key')
  expectLength(body.senderPk, PUBLIC_KEY_BYTES, 'sender key')
  expectLength(body.recipientPk, PUBLIC_KEY_BYTES, 'recipient key')
  expectLength(body.networkId, ID_BYTES, 'network id')
  expectLength(body.proof, 32, 'proof')
  const out = new Uint8Array(CONNECT_BODY_BYTES)
  out[ConnectOffset.version] = TRANSIT_VERSION
  out.set(body.connectionId, ConnectOffset.connectionId)
  out.set(body.transitKey, ConnectOffset.transitKey)
  writeU64be(out, ConnectOffset.createdAtMs, body.createdAtMs)
  writeU32be(out, ConnectOffset.ttlMs, body.ttlMs)
  out.set(body.senderPk, ConnectOffset.senderPk)
  out.set(body.recipientPk, ConnectOffset.recipientPk)
  out.set(body.networkId, ConnectOffset.networkId)
  out.set(body.proof, ConnectOffset.proof)
  out.set(sign(out.subarray(0, ConnectOffset.signature), senderSecretKey), ConnectOffset.signature)
  return out
}

/** Decodes a connect body and checks its signature; the caller checks proof, freshness and replay. */
export function decodeConnectBody (bytes: Uint8Array): ConnectBody {
  expectLength(bytes, CONNECT_BODY_BYTES, 'connect body')
  if (bytes[ConnectOffset.version] !== TRANSIT_VERSION) throw new WireError('version', 'unsupported transit version')
  const senderPk = bytes.slice(ConnectOffset.senderPk, ConnectOffset.recipientPk)
  if (!verify(bytes.subarray(ConnectOffset.signature), bytes.subarray(0, ConnectOffset.signature), senderPk)) throw new WireError('signature', 'bad connect signature')
  const createdAt = readU64be(bytes, ConnectOffset.createdAtMs)
  if (createdAt === null) throw new WireError('field', 'timestamp out of range')
  return {
    connectionId: bytes.slice(ConnectOffset.connectionId, ConnectOffset.transitKey),
    transitKey: bytes.slice(ConnectOffset.transitKey, ConnectOffset.createdAtMs),
    createdAtMs: createdAt,
    ttlMs: readU32be(bytes, ConnectOffset.ttlMs),
    senderPk,
    recipientPk: bytes.slice(ConnectOffset.recipientPk, ConnectOffset.networkId),
    networkId: bytes.slice(ConnectOffset.networkId, ConnectOffset.proof),
    proof: bytes.slice(ConnectOffset.proof, ConnectOffset.signature)
  }
}

/** The 24-byte data nonce: direction, zeros, u64 counter. */
export function dataNonce (direction: 0 | 1, counter: number, out: Uint8Array = new Uint8Array(AEAD_NONCE_BYTES)): Uint8Array {
  out.fill(0)
  out[0] = direction
  writeU64be(out, DATA_NONCE_COUNTER_OFFSET, counter)
  return out
}

/** The counter of a well-formed data nonce, or -1. Its direction is byte 0. */
export function readDataCounter (nonce: Uint8Array): number {
  for (let i = 1; i < DATA_NONCE_COUNTER_OFFSET; i++) if (nonce[i] !== 0) return -1
  if (nonce[0]! > 1) return -1
  return readU64be(nonce, DATA_NONCE_COUNTER_OFFSET) ?? -1
}
