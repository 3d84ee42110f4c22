export type QuietErrorCode = 'invalid_argument' | 'permission_denied' | 'unknown_file' | 'not_found' | 'conflict' | 'not_ready' | 'corrupt' | 'range_not_satisfiable'

/** An error meant for the user: a code the API and CLI map to a status, and a clear message. */
export class QuietError extends Error {
  constructor (readonly code: QuietErrorCode, message: string, readonly details: Record<string, unknown> = {}) {
    super(message)
    this.name = 'QuietError'
  }
}
