import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fromHex, toHex } from '../bytes.js'
import { randomBytes, signKeyPair } from '../crypto/index.js'
import { QuietError } from './errors.js'
import type { KeyPair } from '../crypto/index.js'

/**
 * What a data directory holds besides the database and slice files. Secrets are written
 * with mode 0600 and replaced atomically (write to a temporary name, then rename).
 */
export const IDENTITY_FILE = 'identity.json'
export const NETWORK_FILE = 'network.json'
export const CONTROL_FILE = 'control.json'
/** The control API's bearer token: kept across daemon restarts so open pages and links keep working. */
export const TOKEN_FILE = 'api-token'
/** The control API's port of the last run, kept after it stops: the next run takes it again if free. */
export const HTTP_PORT_FILE = 'http-port'

export interface Identity extends KeyPair { name: string }
export interface NetworkConfig { networkId: Uint8Array, networkKey: Uint8Array, name: string }
export interface ControlInfo { pid: number, httpHost: string, httpPort: number, udpPort: number, token: string }

/** `$QF_DIR`, else the platform's per-user data directory. */
export function defaultDataDir (): string {
  if (process.env.QF_DIR !== undefined && process.env.QF_DIR !== '') return process.env.QF_DIR
  const home = os.homedir()
  if (process.platform === 'darwin') return path.join(home, 'Library', 'Application Support', 'quiet-files')
  if (process.platform === 'win32') return path.join(process.env.APPDATA ?? path.join(home, 'AppData', 'Roaming'), 'quiet-files')
  return path.join(process.env.XDG_DATA_HOME ?? path.join(home, '.local', 'share'), 'quiet-files')
}

export function writeSecretJson (filePath: string, value: unknown): void {
  fs.mkdirSync(path.dirname(filePath), { recursive: true, mode: 0o700 })
  const temp = `${filePath}.${process.pid}.tmp`
  fs.writeFileSync(temp, JSON.stringify(value, null, 2) + '\n', { mode: 0o600 })
  fs.renameSync(temp, filePath)
}

function readJson (filePath: string): Record<string, unknown> | null {
  let text: string
  try {
    text = fs.readFileSync(filePath, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
  try {
    return JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new QuietError('corrupt', `${filePath} is not valid JSON`)
  }
}

/** Creates the identity if there is none; returns it and whether it was created. */
export function initIdentity (dir: string, name: string): { identity: Identity, created: boolean } {
  const existing = loadIdentity(dir)
  if (existing !== null) return { identity: existing, created: false }
  const pair = signKeyPair()
  writeSecretJson(path.join(dir, IDENTITY_FILE), { publicKey: toHex(pair.publicKey), secretKey: toHex(pair.secretKey), name })
  return { identity: { ...pair, name }, created: true }
}

export function loadIdentity (dir: string): Identity | null {
  const json = readJson(path.join(dir, IDENTITY_FILE))
  if (json === null) return null
  try {
    return { publicKey: fromHex(String(json.publicKey), 32), secretKey: fromHex(String(json.secretKey), 64), name: String(json.name ?? '') }
  } catch {
    throw new QuietError('corrupt', `${path.join(dir, IDENTITY_FILE)} is damaged`)
  }
}

export function loadNetwork (dir: string): NetworkConfig | null {
  const json = readJson(path.join(dir, NETWORK_FILE))
  if (json === null) return null
  try {
    return { networkId: fromHex(String(json.networkId), 16), networkKey: fromHex(String(json.networkKey), 32), name: String(json.name ?? '') }
  } catch {
    throw new QuietError('corrupt', `${path.join(dir, NETWORK_FILE)} is damaged`)
  }
}

export function saveNetwork (dir: string, network: NetworkConfig): void {
  writeSecretJson(path.join(dir, NETWORK_FILE), { networkId: toHex(network.networkId), networkKey: toHex(network.networkKey), name: network.name })
}

export function loadControl (dir: string): ControlInfo | null {
  const json = readJson(path.join(dir, CONTROL_FILE))
  if (json === null) return null
  return { pid: Number(json.pid), httpHost: String(json.httpHost), httpPort: Number(json.httpPort), udpPort: Number(json.udpPort), token: String(json.token) }
}

const TOKEN_PATTERN = /^[0-9a-f]{64}$/

/** Replaces the control API's token with a fresh random one (mode 0600) and returns it. */
export function rotateToken (dir: string): string {
  const token = toHex(randomBytes(32))
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 })
  const temp = path.join(dir, `${TOKEN_FILE}.${process.pid}.tmp`)
  fs.writeFileSync(temp, token + '\n', { mode: 0o600 })
  fs.renameSync(temp, path.join(dir, TOKEN_FILE))
  return token
}

/** The control API's token of `dir`, created on first use; a damaged one is replaced. */
export function loadOrCreateToken (dir: string): string {
  try {
    const text = fs.readFileSync(path.join(dir, TOKEN_FILE), 'utf8').trim()
    if (TOKEN_PATTERN.test(text)) return text
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  return rotateToken(dir)
}

/** The control API's port of the last run, or 0. */
export function loadLastHttpPort (dir: string): number {
  try {
    const port = Number(fs.readFileSync(path.join(dir, HTTP_PORT_FILE), 'utf8').trim())
    return Number.isInteger(port) && port > 0 && port < 65536 ? port : 0
  } catch {
    return 0
  }
}

export function saveLastHttpPort (dir: string, port: number): void {
  fs.writeFileSync(path.join(dir, HTTP_PORT_FILE), `${port}\n`)
}
