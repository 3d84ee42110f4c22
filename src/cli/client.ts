import { loadControl } from '../node/config.js'

/** An error the CLI prints as one line, then exits non-zero. */
export class CliError extends Error {
  constructor (message: string, readonly exitCode = 1) {
    super(message)
    this.name = 'CliError'
  }
}

/** No daemon answers for the directory: none was started, or it stopped. */
export class DaemonUnreachable extends CliError {
  constructor (readonly dir: string) {
    super(`no daemon is running for ${dir}; start one with: qf daemon --dir ${dir}`)
    this.name = 'DaemonUnreachable'
  }
}

export interface DaemonClient {
  call<T = unknown> (method: string, path: string, body?: unknown): Promise<T>
  fetchRaw (path: string, init?: RequestInit): Promise<Response>
}

/** A client for the daemon of `dir`, or a clear error saying none is running and how to start one. */
export function daemonClient (dir: string): DaemonClient {
  const control = loadControl(dir)
  const notRunning = new DaemonUnreachable(dir)
  if (control === null) throw notRunning
  const base = `http://${control.httpHost}:${control.httpPort}`
  const headers = { authorization: `Bearer ${control.token}` }
  const fetchRaw = async (path: string, init: RequestInit = {}): Promise<Response> => {
    try {
      return await fetch(base + path, { ...init, headers: { ...headers, ...(init.headers as Record<string, string> | undefined) } })
    } catch {
      throw notRunning
    }
  }
  return {
    async call<T> (method: string, path: string, body?: unknown): Promise<T> {
      const response = await fetchRaw(path, body === undefined ? { method } : { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
      const text = await response.text()
      let json: unknown
      try {
        json = text === '' ? null : JSON.parse(text)
      } catch {
        throw new CliError(`the daemon answered ${response.status} with something that is not JSON`)
      }
      if (!response.ok) {
        // The server's own words, with what it added for an unexpected failure.
        const { error, details } = (json ?? {}) as { error?: string, details?: { message?: unknown } }
        const detail = typeof details?.message === 'string' ? `: ${details.message}` : ''
        throw new CliError(error === undefined ? `the daemon answered ${response.status}` : `${error}${detail}`)
      }
      return json as T
    },
    fetchRaw
  }
}
