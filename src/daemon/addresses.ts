import { QuietError } from '../node/errors.js'
import type { PeerAddress } from '../net/address-book.js'

/** The page's address, token included: the one link a person opens (`qf open` prints it). */
export function pageUrl (port: number, token: string): string {
  return `http://127.0.0.1:${port}/?token=${token}`
}

export function parseHostPort (text: string): PeerAddress {
  const match = /^(.+):(\d{1,5})$/.exec(text)
  const port = match === null ? 0 : Number(match[2])
  if (match === null || port < 1 || port > 65535) throw new QuietError('invalid_argument', `expected HOST:PORT, got "${text}"`)
  return { host: match[1]!, port }
}
