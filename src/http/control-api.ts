import Fastify from 'fastify'
import multipart from '@fastify/multipart'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { QuietError } from '../node/errors.js'
import { ProgressFeed } from './progress-feed.js'
import { isSettled } from '../node/progress.js'
import { toHex } from '../bytes.js'
import type { FastifyInstance } from 'fastify'
import { CONTENT_HEADERS, PAGE_HEADERS, installAccessControl, sendError } from './access.js'
import { limitsView, peersOf, statusOf } from './status.js'
import type { ControlTarget } from './status.js'
import type { QuietErrorCode } from '../node/errors.js'

/** The lowest cap taken: below it a transfer would crawl past any use (one slice every 0.45 s). */
export const MIN_RATE_CAP = 1_000

function rateOrNull (value: unknown, what: string): number | null {
  if (value === null) return null
  if (typeof value !== 'number' || !Number.isFinite(value) || value < MIN_RATE_CAP) throw new QuietError('invalid_argument', `${what} must be null or a number of bytes per second, at least ${MIN_RATE_CAP}`)
  return Math.round(value)
}

const STATUS_BY_CODE: Record<QuietErrorCode, number> = {
  invalid_argument: 400, permission_denied: 403, unknown_file: 404, not_found: 404, conflict: 409, not_ready: 409, corrupt: 500, range_not_satisfiable: 416
}

const here = path.dirname(fileURLToPath(import.meta.url))
/** Route, file on disk, media type. The script is compiled into dist/web; the rest is served from web/. */
const WEB_FILES: ReadonlyArray<[string, string, string]> = [
  ['/', path.resolve(here, '../../../web/index.html'), 'text/html; charset=utf-8'],
  ['/style.css', path.resolve(here, '../../../web/style.css'), 'text/css; charset=utf-8'],
  ['/app.js', path.resolve(here, '../../web/app.js'), 'text/javascript; charset=utf-8'],
  // Browsers ask for /favicon.ico on every load; an SVG answers it.
  ['/favicon.ico', path.resolve(here, '../../../web/favicon.svg'), 'image/svg+xml'],
  ['/favicon.svg', path.resolve(here, '../../../web/favicon.svg'), 'image/svg+xml']
]

/** How old an answer to `GET /api/status` may be when many clients ask at once. */
const STATUS_CACHE_MS = 100

/** The longest a status request may be asked to wait for a download to settle. */
export const MAX_STATUS_WAIT_MS = 30_000

/** Says whether the bytes served already passed the whole-file root-hash check. */
export const VERIFIED_HEADER = 'x-quiet-verified'

/**
 * Parses a single `Range: bytes=…` against a size: `{start, end}` (inclusive), null for no
 * usable range (absent, or several ranges: the whole file is sent), or 'unsatisfiable'.
 */
export function parseRange (header: string | undefined, size: number): { start: number, end: number } | null | 'unsatisfiable' {
  if (header === undefined) return null
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  if (match === null) return header.includes(',') ? null : 'unsatisfiable'
  const [, from, to] = match as unknown as [string, string, string]
  if (from === '' && to === '') return 'unsatisfiable'
  if (from === '') {
    const suffix = Number(to)
    if (suffix === 0 || size === 0) return 'unsatisfiable'
    return { start: Math.max(0, size - suffix), end: size - 1 }
  }
  const start = Number(from)
  const end = to === '' ? size - 1 : Math.min(Number(to), size - 1)
  if (start >= size || end < start) return 'unsatisfiable'
  return { start, end }
}

function positiveInt (value: unknown, what: string, fallback: number): number {
  if (value === undefined || value === null) return fallback
  const n = Number(value)
  if (!Number.isFinite(n) || n < 0 || !Number.isInteger(n)) throw new QuietError('invalid_argument', `${what} must be a non-negative integer`)
  return n
}

/**
 * The daemon's local control API: 127.0.0.1 only, a bearer token on every /api route.
 * Errors are JSON `{"error", "details"}` with a fitting status.
 */
export async function startControlApi (daemon: ControlTarget, port: number, host = '127.0.0.1'): Promise<FastifyInstance> {
  // Event streams stay open: closing the daemon must not wait for them.
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, forceCloseConnections: true })
  // Uploads are streamed into the slicer, never buffered: multipart forms (the page) and
  // raw bodies of any other type (scripts) both reach the handler as streams.
  await app.register(multipart, { limits: { fileSize: Number.MAX_SAFE_INTEGER, files: 1 } })
  app.addContentTypeParser('*', (_request, _payload, done) => done(null))

  installAccessControl(app, () => daemon.token)

  // The page: static files, no secrets in them (the token arrives in the page's URL).
  for (const [route, file, type] of WEB_FILES) {
    app.get(route, { config: { access: 'page' } }, async (_request, reply) => await reply.headers({ 'content-type': type, 'cache-control': 'no-cache', ...PAGE_HEADERS }).send(fs.createReadStream(file)))
  }

  app.setErrorHandler((err: unknown, _request, reply) => {
    if (err instanceof QuietError) return sendError(reply, STATUS_BY_CODE[err.code], err.message, err.details)
    const { statusCode, message } = err as { statusCode?: number, message?: string }
    if (statusCode !== undefined && statusCode >= 400 && statusCode < 500) return sendError(reply, statusCode, message ?? 'bad request')
    return sendError(reply, 500, 'internal error', { message: message ?? String(err) })
  })

  // Many clients polling at once share one answer, at most STATUS_CACHE_MS old; anything
  // that changes state (every request but a GET) makes the next answer fresh.
  let statusCache: { atMs: number, body: string } | null = null
  app.addHook('onRequest', async request => { if (request.method !== 'GET' && request.method !== 'HEAD') statusCache = null })
  app.get('/api/status', async (_request, reply) => {
    const now = Date.now()
    if (statusCache === null || now - statusCache.atMs > STATUS_CACHE_MS) statusCache = { atMs: now, body: JSON.stringify(statusOf(daemon)) }
    return await reply.type('application/json; charset=utf-8').send(statusCache.body)
  })

  app.get('/api/peers', async () => peersOf(daemon))

  // A peer excluded for bad windows is asked again (`qf peer trust`).
  app.post<{ Params: { key: string } }>('/api/peers/:key/trust', async (request) => {
    if (!/^[0-9a-f]{64}$/.test(request.params.key)) throw new QuietError('invalid_argument', 'a peer is named by its public key: 64 hex digits')
    daemon.requireNode().trust(request.params.key)
    return peersOf(daemon).find(p => p.public_key === request.params.key) ?? { public_key: request.params.key }
  })

  // A new token: this answer is the last one the old token gets.
  app.post('/api/token/rotate', async () => ({ token: daemon.rotateToken() }))

  app.get('/api/limits', async () => limitsView(daemon.limits))
  /** Rate caps in file bytes per second: a number, or null for none; a field left out is kept. */
  app.put<{ Body: { max_upload_bytes_per_s?: unknown, max_download_bytes_per_s?: unknown } }>('/api/limits', async (request) => {
    const body = request.body ?? {}
    const current = daemon.limits
    return limitsView(daemon.setLimits({
      maxUploadBytesPerS: 'max_upload_bytes_per_s' in body ? rateOrNull(body.max_upload_bytes_per_s, 'max_upload_bytes_per_s') : current.maxUploadBytesPerS,
      maxDownloadBytesPerS: 'max_download_bytes_per_s' in body ? rateOrNull(body.max_download_bytes_per_s, 'max_download_bytes_per_s') : current.maxDownloadBytesPerS
    }))
  })

  app.post<{ Body: { name?: unknown } }>('/api/network', async (request, reply) => {
    const network = daemon.createNetwork(String(request.body?.name ?? ''))
    return reply.code(201).send({ network_id: toHex(network.networkId), name: network.name })
  })

  app.get<{ Querystring: { ttl?: string } }>('/api/invite', async (request) => {
    const ttlSeconds = positiveInt(request.query.ttl, 'ttl', 7 * 24 * 3600)
    const { link, expiresAtMs } = daemon.invite(ttlSeconds * 1000)
    return { link, expires_at: new Date(expiresAtMs).toISOString() }
  })

  app.post<{ Body: { link?: unknown } }>('/api/join', async (request) => {
    const network = daemon.join(String(request.body?.link ?? ''))
    return { network_id: toHex(network.networkId), name: network.name }
  })

  app.post<{ Body: { path?: unknown, message?: unknown } }>('/api/share', async (request, reply) => {
    const filePath = request.body?.path
    if (typeof filePath !== 'string' || filePath === '') throw new QuietError('invalid_argument', 'path is required')
    const message = typeof request.body?.message === 'string' ? request.body.message : undefined
    const shared = await daemon.requireNode().share(filePath, { message })
    return reply.code(201).send({ file_id: shared.fileId, name: shared.name, size: shared.size })
  })

  app.post<{ Headers: { 'x-file-name'?: string } }>('/api/files', async (request, reply) => {
    const node = daemon.requireNode()
    let shared
    if (request.isMultipart()) {
      const part = await request.file()
      if (part === undefined) throw new QuietError('invalid_argument', 'the form has no file')
      shared = await node.shareStream(part.file, { name: part.filename, mediaType: part.mimetype })
      if (part.file.truncated) throw new QuietError('invalid_argument', 'the upload was cut short')
    } else {
      const rawName = request.headers['x-file-name']
      if (rawName === undefined || rawName === '') throw new QuietError('invalid_argument', 'X-File-Name header is required for a raw upload')
      let name: string
      try { name = decodeURIComponent(rawName) } catch { name = rawName }
      const mediaType = request.headers['content-type']?.split(';')[0]?.trim()
      // With its length known the windows are hashed as the body streams through.
      const length = Number(request.headers['content-length'])
      const size = Number.isSafeInteger(length) && length >= 0 ? length : undefined
      shared = await node.shareStream(request.raw, { name, size, mediaType: mediaType === undefined || mediaType === '' ? undefined : mediaType })
    }
    return reply.code(201).send({ file_id: shared.fileId, name: shared.name, size: shared.size })
  })

  /** Server-sent events: a `progress` event whenever a file's progress or state changes. */
  const feed = new ProgressFeed(() => daemon.node?.files() ?? [])
  app.addHook('onClose', async () => feed.stop())
  app.get('/api/events', async (request, reply) => {
    reply.hijack()
    const out = reply.raw
    out.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
    const unsubscribe = feed.subscribe(chunk => out.write(chunk))
    request.raw.on('close', unsubscribe)
  })

  app.get('/api/files', async () => {
    const node = daemon.requireNode()
    const members = new Map(node.members().map(m => [m.publicKey, m.name]))
    // The messages posted about each file, oldest first (`qf share --message`).
    const messages = new Map<string, Array<{ text: string, author: string, author_name: string | null, at: string }>>()
    for (const m of node.messages()) {
      if (m.fileId === null) continue
      messages.set(m.fileId, [...messages.get(m.fileId) ?? [], { text: m.text, author: m.author, author_name: members.get(m.author) ?? null, at: new Date(m.createdAtMs).toISOString() }])
    }
    return node.files().map(p => {
      const info = node.descriptorInfo(p.fileId)
      return {
        ...p,
        shared_by: info.sharedBy,
        shared_by_name: members.get(info.sharedBy) ?? null,
        shared_at: new Date(info.sharedAtMs).toISOString(),
        root_hash: info.rootHash,
        windows: info.windows,
        messages: messages.get(p.fileId) ?? []
      }
    })
  })

  /**
   * A file's progress. With `?wait=MS` the answer waits until the download has settled
   * (see `isSettled`) or MS milliseconds passed, whichever is first: a follower learns of the
   * end at once instead of at its next poll.
   */
  app.get<{ Params: { id: string }, Querystring: { wait?: string } }>('/api/files/:id/status', async (request) => {
    const waitMs = Math.min(positiveInt(request.query.wait, 'wait', 0), MAX_STATUS_WAIT_MS)
    const deadline = Date.now() + waitMs
    let progress = daemon.requireNode().progress(request.params.id)
    while (!isSettled(progress) && Date.now() < deadline && !daemon.isStopping) {
      await daemon.afterNextTick()
      progress = daemon.requireNode().progress(request.params.id)
    }
    return progress
  })

  app.post<{ Params: { id: string }, Body: { priority?: unknown, ttl?: unknown } | undefined }>('/api/files/:id/download', async (request) => {
    const priority = positiveInt(request.body?.priority, 'priority', 5)
    const ttlSeconds = positiveInt(request.body?.ttl, 'ttl', 0)
    return daemon.requireNode().requestFile(request.params.id, { priority, ttlMs: ttlSeconds * 1000 })
  })

  // Saves the plaintext to a path on this machine as it downloads; its entry in the status's `saves` says when it is in place.
  app.post<{ Params: { id: string }, Body: { path?: unknown, force?: unknown } | undefined }>('/api/files/:id/save', async (request) => {
    const target = request.body?.path
    if (typeof target !== 'string' || target === '') throw new QuietError('invalid_argument', 'path must be a non-empty string')
    return daemon.requireNode().save(request.params.id, target, { overwrite: request.body?.force === true })
  })

  app.post<{ Params: { id: string } }>('/api/files/:id/pause', async (request) => daemon.requireNode().pause(request.params.id))
  app.post<{ Params: { id: string } }>('/api/files/:id/resume', async (request) => daemon.requireNode().resume(request.params.id))
  app.delete<{ Params: { id: string } }>('/api/files/:id/download', async (request) => daemon.requireNode().cancel(request.params.id))

  // Plaintext, streamed; works while the file downloads (bytes not there yet are fetched first).
  app.get<{ Params: { id: string } }>('/api/files/:id/content', { config: { access: 'token-or-query' } }, async (request, reply) => {
    const node = daemon.requireNode()
    const size = node.progress(request.params.id).bytesTotal
    const range = parseRange(request.headers.range, size)
    if (range === 'unsatisfiable') {
      return await sendError(reply.header('content-range', `bytes */${size}`), 416, 'range not satisfiable', { size })
    }
    const read = node.openRead(request.params.id, range ?? undefined)
    reply
      .header('content-type', read.mediaType)
      .header('accept-ranges', 'bytes')
      .header('content-length', String(read.end - read.start + 1))
      .header('cache-control', 'no-store')
      .header('content-disposition', `inline; filename*=UTF-8''${encodeURIComponent(read.name)}`)
      .header(VERIFIED_HEADER, String(read.verified))
      .headers(CONTENT_HEADERS)
    if (range !== null) reply.code(206).header('content-range', `bytes ${read.start}-${read.end}/${read.size}`)
    return await reply.send(read.stream)
  })

  try {
    await app.listen({ port, host })
  } catch (err) {
    await app.close()
    throw err
  }
  return app
}

