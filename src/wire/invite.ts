import { WireError } from './errors.js'
import { ID_BYTES } from '../crypto/hash.js'
import { AEAD_KEY_BYTES } from '../crypto/aead.js'
import { PUBLIC_KEY_BYTES } from '../crypto/sign.js'
import { readU64be, writeU64be } from '../bytes.js'
import type { Address } from './network-events.js'

/**
 * Invite link: `qf://join#` + base64url(body). The link is the secret: it carries the network key.
 * Body: version 1 | network_id 16 | network_key 32 | inviter_pk 32 | expires_at_ms 8 |
 *       name_length 1 | name (UTF-8) | address_count 1 | address_count × (length 1 | "host:port")
 */
export const INVITE_PREFIX = 'qf://join#'
export const INVITE_VERSION = 1

export interface Invite {
  networkId: Uint8Array
  networkKey: Uint8Array
  networkName: string
  inviterPk: Uint8Array
  expiresAtMs: number
  addresses: Address[]
}

export function encodeInvite (invite: Invite): string {
  const name = Buffer.from(invite.networkName, 'utf8')
  if (name.length > 255) throw new WireError('field', 'network name longer than 255 bytes')
  const addresses = invite.addresses.map(a => Buffer.from(`${a.host}:${a.port}`, 'ascii'))
  if (addresses.length > 255 || addresses.some(a => a.length > 255)) throw new WireError('field', 'too many or too long addresses')
  const parts: Uint8Array[] = [
    Uint8Array.of(INVITE_VERSION), invite.networkId, invite.networkKey, invite.inviterPk,
    (() => { const b = new Uint8Array(8); writeU64be(b, 0, invite.expiresAtMs); return b })(),
    Uint8Array.of(name.length), name, Uint8Array.of(addresses.length),
    ...addresses.flatMap(a => [Uint8Array.of(a.length), a])
  ]
  return INVITE_PREFIX + Buffer.concat(parts).toString('base64url')
}

/** Parses an invite link; throws WireError with a readable message on anything malformed. */
export function decodeInvite (link: string): Invite {
  const text = link.trim()
  if (!text.startsWith(INVITE_PREFIX)) throw new WireError('field', `an invite link starts with ${INVITE_PREFIX}`)
  const encoded = text.slice(INVITE_PREFIX.length)
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) throw new WireError('field', 'invite link is not valid base64url')
  const body = new Uint8Array(Buffer.from(encoded, 'base64url'))
  let at = 0
  const take = (n: number): Uint8Array => {
    if (at + n > body.length) throw new WireError('length', 'invite link is truncated')
    const out = body.slice(at, at + n)
    at += n
    return out
  }
  if (take(1)[0] !== INVITE_VERSION) throw new WireError('version', 'unsupported invite version')
  const networkId = take(ID_BYTES)
  const networkKey = take(AEAD_KEY_BYTES)
  const inviterPk = take(PUBLIC_KEY_BYTES)
  const expires = readU64be(take(8), 0)
  if (expires === null) throw new WireError('field', 'invite expiry out of range')
  const networkName = new TextDecoder().decode(take(take(1)[0]!))
  const count = take(1)[0]!
  const addresses: Address[] = []
  for (let i = 0; i < count; i++) {
    const text = Buffer.from(take(take(1)[0]!)).toString('ascii')
    const match = /^(.+):(\d{1,5})$/.exec(text)
    const port = match === null ? 0 : Number(match[2])
    if (match === null || port < 1 || port > 65535) throw new WireError('field', `bad address in invite: ${text}`)
    addresses.push({ host: match[1]!, port })
  }
  if (at !== body.length) throw new WireError('length', 'invite link has trailing bytes')
  return { networkId, networkKey, networkName, inviterPk, expiresAtMs: expires, addresses }
}
