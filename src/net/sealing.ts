import { aeadDecryptInto, aeadEncryptInto, keyedHash, openSealed, sealTo } from '../crypto/index.js'
import { bytesEqual } from '../bytes.js'
import { WireError } from '../wire/errors.js'
import {
  CONNECT_DATAGRAM_BYTES, ConnectMacOffset, DATA_OVERHEAD_BYTES, DataOffset, DatagramKind,
  connectProofInput, dataNonce, decodeConnectBody, encodeConnectBody, readDataCounter
} from '../wire/transit.js'
import { CONNECTION_TTL_MS, CONNECT_FRESHNESS_MS } from './connection.js'
import type { Connection } from './connection.js'
import type { ConnectBody } from '../wire/transit.js'
import type { KeyPair } from '../crypto/index.js'

/**
 * The transit layer's cryptography, apart from its bookkeeping: the sealed connect that opens
 * a connection and proves membership, and the datagrams sealed with a connection's key. The
 * layouts are in `src/wire/transit.ts` and docs/protocol.md.
 */

/** Who we are and the network a connect must prove membership of. */
export interface Membership {
  identity: KeyPair
  networkId: Uint8Array
  networkKey: Uint8Array
}

/** A connect to `peerPk` for a new connection (without its MACs: the connect guard stamps those). */
export function sealConnect (us: Membership, peerPk: Uint8Array, connectionId: Uint8Array, transitKey: Uint8Array, stampMs: number): Uint8Array {
  const partial = {
    connectionId, createdAtMs: stampMs, ttlMs: CONNECTION_TTL_MS,
    senderPk: us.identity.publicKey, recipientPk: peerPk, networkId: us.networkId
  }
  const body = encodeConnectBody({ ...partial, transitKey, proof: keyedHash(connectProofInput(partial), us.networkKey) }, us.identity.secretKey)
  const datagram = new Uint8Array(CONNECT_DATAGRAM_BYTES)
  datagram[0] = DatagramKind.connect
  datagram.set(sealTo(body, peerPk), 1)
  return datagram
}

/**
 * A connect opened (the public-key work), or why it is refused: it does not open or decode,
 * it is not for us, not of our network, without the network key's proof, or from ourselves
 * (`foreign`), or its sender's stamp is too far from our clock (`skewed`).
 */
export type OpenedConnect = { connect: ConnectBody } | { refused: 'foreign' } | { refused: 'skewed', skewMs: number, senderPk: Uint8Array }

export function openConnect (bytes: Uint8Array, us: Membership, nowMs: number): OpenedConnect {
  const body = openSealed(bytes.subarray(1, ConnectMacOffset.mac1), us.identity.publicKey, us.identity.secretKey)
  if (body === null) return { refused: 'foreign' }
  let connect
  try {
    connect = decodeConnectBody(body)
  } catch (err) {
    if (!(err instanceof WireError)) throw err
    return { refused: 'foreign' }
  }
  const proof = keyedHash(connectProofInput(connect), us.networkKey)
  if (!bytesEqual(connect.recipientPk, us.identity.publicKey) || !bytesEqual(connect.networkId, us.networkId) ||
      !bytesEqual(proof, connect.proof) || bytesEqual(connect.senderPk, us.identity.publicKey)) {
    return { refused: 'foreign' }
  }
  const skewMs = connect.createdAtMs - nowMs
  if (Math.abs(skewMs) > CONNECT_FRESHNESS_MS) return { refused: 'skewed', skewMs, senderPk: connect.senderPk }
  return { connect }
}

/** Seals `payload` (events, a path token, a control message) as a datagram of `kind` on the connection. */
export function sealData (connection: Connection, payload: Uint8Array, kind: number): Uint8Array {
  // From Node's buffer pool: no allocation of its own per datagram. Every byte is written below.
  const datagram = Buffer.allocUnsafe(DATA_OVERHEAD_BYTES + payload.length)
  datagram[DataOffset.kind] = kind
  datagram.set(connection.id, DataOffset.connectionId)
  dataNonce(connection.direction, connection.sendCounter++, datagram.subarray(DataOffset.nonce, DataOffset.ciphertext))
  aeadEncryptInto(datagram.subarray(DataOffset.ciphertext, DataOffset.ciphertext + payload.length),
    datagram.subarray(DataOffset.ciphertext + payload.length), payload,
    datagram.subarray(DataOffset.nonce, DataOffset.ciphertext), connection.key, datagram.subarray(0, DataOffset.ciphertext))
  return datagram
}

/**
 * Opens a datagram sealed with the connection's key, in place (the datagram's buffer is the
 * caller's to give): its plaintext, or why not.
 */
export function openData (bytes: Uint8Array, connection: Connection, payloadOk: (length: number) => boolean): Uint8Array | 'malformed' | 'undecryptable' | 'replayed' {
  const nonce = bytes.subarray(DataOffset.nonce, DataOffset.ciphertext)
  const counter = readDataCounter(nonce)
  const length = bytes.length - DATA_OVERHEAD_BYTES
  if (counter < 0 || nonce[0] === connection.direction || !payloadOk(length)) return 'malformed'
  // A plain Uint8Array view even when the socket gave a Buffer: `slice()` downstream must copy.
  const plain = new Uint8Array(bytes.buffer, bytes.byteOffset + DataOffset.ciphertext, length)
  const ok = aeadDecryptInto(plain, plain, bytes.subarray(DataOffset.ciphertext + length), nonce, connection.key, bytes.subarray(0, DataOffset.ciphertext))
  if (!ok) return 'undecryptable'
  if (!connection.replay.accept(counter)) return 'replayed'
  return plain
}
