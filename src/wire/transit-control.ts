import { WireError, expectLength } from './errors.js'
import { PUBLIC_KEY_BYTES } from '../crypto/sign.js'

/**
 * Control messages between members, sealed on a transit connection as the payload of a
 * control datagram (kind 0x56, laid out as data). Byte 0 says which:
 *
 * observed      (0x01): type 1 | address 6                          =  7  where the sender sees you
 * introduce     (0x02): type 1 | peer_pk 32                         = 33  "introduce me to this member"
 * introduction  (0x03): type 1 | peer_pk 32 | address 6 | flags 1   = 40  "this member wants you; punch to here"
 * relay request (0x04): type 1 | peer_pk 32                         = 33  "forward between this member and me"
 * relay open    (0x05): type 1 | peer_pk 32 | channel 8             = 41  "datagrams to and from this member go by me, on this channel"
 * relay refused (0x06): type 1 | peer_pk 32 | reason 1              = 34
 *
 * address = IPv4 4 | port 2, big-endian. flags bit 0: the introducer relays between the two.
 *
 * Outside any connection, in the clear:
 * punch   (0x57): kind 1 | zero 7 = 8 bytes: opens the sender's NAT towards a member; dropped on arrival
 * relayed (0x58): kind 1 | channel 8 | one whole transit datagram (connect, data, …) that the
 *                 relay passes on unchanged to the channel's other member
 */
export const ControlType = { observed: 0x01, introduce: 0x02, introduction: 0x03, relayRequest: 0x04, relayOpen: 0x05, relayRefused: 0x06 } as const

export const ADDRESS_BYTES = 6
export const CHANNEL_BYTES = 8
export const PUNCH_DATAGRAM_BYTES = 8
export const RELAY_HEADER_BYTES = 1 + CHANNEL_BYTES
export const INTRODUCTION_RELAYS = 0x01

export const RelayRefusal = { off: 1, unreachable: 2, full: 3 } as const
export type RelayRefusalReason = keyof typeof RelayRefusal

export interface Ipv4Address { host: string, port: number }

export type ControlMessage =
  | { type: 'observed', address: Ipv4Address }
  | { type: 'introduce', peerPk: Uint8Array }
  | { type: 'introduction', peerPk: Uint8Array, address: Ipv4Address, relays: boolean }
  | { type: 'relayRequest', peerPk: Uint8Array }
  | { type: 'relayOpen', peerPk: Uint8Array, channel: Uint8Array }
  | { type: 'relayRefused', peerPk: Uint8Array, reason: RelayRefusalReason }

/** The largest control message (relay open). */
export const MAX_CONTROL_BYTES = 1 + PUBLIC_KEY_BYTES + CHANNEL_BYTES

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/

export function isIpv4 (host: string): boolean {
  const match = IPV4.exec(host)
  return match !== null && match.slice(1).every(part => Number(part) <= 255)
}

function writeAddress (out: Uint8Array, at: number, address: Ipv4Address): void {
  const match = IPV4.exec(address.host)
  if (match === null || !isIpv4(address.host)) throw new WireError('field', `not an IPv4 address: ${address.host}`)
  if (!Number.isInteger(address.port) || address.port < 1 || address.port > 65535) throw new WireError('field', `bad port ${address.port}`)
  for (let i = 0; i < 4; i++) out[at + i] = Number(match[i + 1])
  out[at + 4] = address.port >> 8
  out[at + 5] = address.port & 0xff
}

function readAddress (bytes: Uint8Array, at: number): Ipv4Address {
  const port = (bytes[at + 4]! << 8) | bytes[at + 5]!
  if (port === 0) throw new WireError('field', 'port 0')
  return { host: `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`, port }
}

function withPeer (type: number, peerPk: Uint8Array, rest: number): Uint8Array {
  expectLength(peerPk, PUBLIC_KEY_BYTES, 'peer key')
  const out = new Uint8Array(1 + PUBLIC_KEY_BYTES + rest)
  out[0] = type
  out.set(peerPk, 1)
  return out
}

export function encodeControl (message: ControlMessage): Uint8Array {
  const tail = 1 + PUBLIC_KEY_BYTES
  switch (message.type) {
    case 'observed': {
      const out = new Uint8Array(1 + ADDRESS_BYTES)
      out[0] = ControlType.observed
      writeAddress(out, 1, message.address)
      return out
    }
    case 'introduce': return withPeer(ControlType.introduce, message.peerPk, 0)
    case 'introduction': {
      const out = withPeer(ControlType.introduction, message.peerPk, ADDRESS_BYTES + 1)
      writeAddress(out, tail, message.address)
      out[tail + ADDRESS_BYTES] = message.relays ? INTRODUCTION_RELAYS : 0
      return out
    }
    case 'relayRequest': return withPeer(ControlType.relayRequest, message.peerPk, 0)
    case 'relayOpen': {
      expectLength(message.channel, CHANNEL_BYTES, 'channel')
      const out = withPeer(ControlType.relayOpen, message.peerPk, CHANNEL_BYTES)
      out.set(message.channel, tail)
      return out
    }
    case 'relayRefused': {
      const out = withPeer(ControlType.relayRefused, message.peerPk, 1)
      out[tail] = RelayRefusal[message.reason]
      return out
    }
  }
}

/** Decodes a control message; anything malformed or unknown throws WireError. */
export function decodeControl (bytes: Uint8Array): ControlMessage {
  if (bytes.length < 1) throw new WireError('length', 'empty control message')
  const type = bytes[0]
  const tail = 1 + PUBLIC_KEY_BYTES
  const peerPk = (): Uint8Array => bytes.slice(1, tail)
  switch (type) {
    case ControlType.observed:
      expectLength(bytes, 1 + ADDRESS_BYTES, 'observed')
      return { type: 'observed', address: readAddress(bytes, 1) }
    case ControlType.introduce:
      expectLength(bytes, tail, 'introduce')
      return { type: 'introduce', peerPk: peerPk() }
    case ControlType.introduction: {
      expectLength(bytes, tail + ADDRESS_BYTES + 1, 'introduction')
      const flags = bytes[tail + ADDRESS_BYTES]!
      if ((flags & ~INTRODUCTION_RELAYS) !== 0) throw new WireError('field', 'unknown introduction flags')
      return { type: 'introduction', peerPk: peerPk(), address: readAddress(bytes, tail), relays: flags === INTRODUCTION_RELAYS }
    }
    case ControlType.relayRequest:
      expectLength(bytes, tail, 'relay request')
      return { type: 'relayRequest', peerPk: peerPk() }
    case ControlType.relayOpen:
      expectLength(bytes, tail + CHANNEL_BYTES, 'relay open')
      return { type: 'relayOpen', peerPk: peerPk(), channel: bytes.slice(tail, tail + CHANNEL_BYTES) }
    case ControlType.relayRefused: {
      expectLength(bytes, tail + 1, 'relay refused')
      const reason = (Object.keys(RelayRefusal) as RelayRefusalReason[]).find(r => RelayRefusal[r] === bytes[tail])
      if (reason === undefined) throw new WireError('field', 'unknown relay refusal')
      return { type: 'relayRefused', peerPk: peerPk(), reason }
    }
    default: throw new WireError('type', `unknown control message 0x${(type ?? 0).toString(16)}`)
  }
}
