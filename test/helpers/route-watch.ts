import { loadControl } from '../../src/node/config.js'

/**
 * Run inside a member's namespace (its control API listens on that namespace's loopback):
 *   route-watch DIR
 * polls the daemon's peers every 50 ms and prints a JSON line whenever a peer's route
 * changes: { atMs, peer, name, route, via }. The first line for a peer is when the daemon
 * first knew of it, so the lines show how long reaching it took.
 */
const dir = process.argv[2]!
const last = new Map<string, string>()

async function poll (): Promise<void> {
  const control = loadControl(dir)
  if (control === null) return
  const response = await fetch(`http://127.0.0.1:${control.httpPort}/api/peers`, { headers: { authorization: `Bearer ${control.token}` } })
  if (!response.ok) return
  const peers = await response.json() as Array<{ public_key: string, name: string | null, route: string, via: { name: string | null } | null }>
  for (const p of peers) {
    const state = `${p.route}:${p.via?.name ?? ''}`
    if (last.get(p.public_key) === state) continue
    last.set(p.public_key, state)
    process.stdout.write(`${JSON.stringify({ atMs: Date.now(), peer: p.public_key, name: p.name, route: p.route, via: p.via?.name ?? null })}\n`)
  }
}

setInterval(() => { poll().catch(() => {}) }, 50)
