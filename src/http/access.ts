import { timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply } from 'fastify'

export function sendError (reply: FastifyReply, status: number, error: string, details: Record<string, unknown> = {}): FastifyReply {
  return reply.code(status).send({ error, details })
}

/**
 * Who may use a route: 'page' (the page's static files: anyone on this machine), 'token' (the
 * default: `Authorization: Bearer TOKEN`), 'token-or-query' (also `?token=`, for media
 * elements and download links, which cannot send headers).
 */
export type RouteAccess = 'page' | 'token' | 'token-or-query'

declare module 'fastify' {
  interface FastifyContextConfig { access?: RouteAccess }
}

function routeAccess (config: unknown): RouteAccess {
  const access = (config as { access?: unknown } | undefined)?.access
  return access === 'page' || access === 'token-or-query' ? access : 'token'
}

/** The page's headers: no referrer leaks its token-bearing URL; only its own files run. */
export const PAGE_HEADERS = {
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

/**
 * A shared file is anyone's bytes: opened from the page, it must not run as this origin
 * (its URL holds the token). A sandbox with no scripts and an opaque origin.
 */
export const CONTENT_HEADERS = {
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'content-security-policy': "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'"
}

function listeningPort (app: FastifyInstance): number {
  const address = app.server.address()
  return typeof address === 'object' && address !== null ? address.port : 0
}

/** The Host header names this machine's loopback at the port we listen on, and nothing else. */
export function isLocalHost (host: string | undefined, port: number): boolean {
  if (host === undefined) return false
  const name = host.toLowerCase()
  return name === `127.0.0.1:${port}` || name === `localhost:${port}` || name === `[::1]:${port}`
}

function tokenMatches (header: string | undefined, token: string): boolean {
  const expected = Buffer.from(`Bearer ${token}`)
  const given = Buffer.from(header ?? '')
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/**
 * Who may reach what, decided before any route runs: the Host must name this machine's
 * loopback at our port (a page on another name that resolves here, DNS rebinding, reaches
 * nothing), and access follows the route that matched, never the URL's text (which may be
 * spelled many ways): the page's files are open, everything else needs `token()`.
 * Anything unmatched gets 404 once it has the token, and 401 without it.
 */
export function installAccessControl (app: FastifyInstance, token: () => string): void {
  app.addHook('onRequest', async (request, reply) => {
    if (!isLocalHost(request.headers.host, listeningPort(app))) return await sendError(reply, 403, 'host not allowed: use 127.0.0.1 or localhost')
    const access = routeAccess(request.routeOptions.config)
    if (access === 'page') return
    if (tokenMatches(request.headers.authorization, token())) return
    if (access === 'token-or-query' && tokenMatches(`Bearer ${(request.query as { token?: string } | undefined)?.token ?? ''}`, token())) return
    return await sendError(reply, 401, 'unauthorized')
  })
  app.setNotFoundHandler(async (_request, reply) => await sendError(reply, 404, 'not found'))
}
