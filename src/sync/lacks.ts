/**
 * Ranges peers answered they hold none of. Such a peer is not asked for that range again for
 * a while: it may fetch it meanwhile, and asking sooner costs a round trip for nothing.
 * Pure: time comes in as `tMs`.
 */
export class Lacks {
  /** Until when each (peer, file, range) is not asked for. */
  private readonly until = new Map<string, number>()

  constructor (private readonly backoffMs: number) {}

  /** `peer` answered that it has none of `range`. */
  add (peer: string, fileKey: string, range: number, tMs: number): void {
    this.until.set(lackKey(peer, fileKey, range), tMs + this.backoffMs)
  }

  /** Whether the peer said lately that it has none of this range. */
  has (peer: string, fileKey: string, range: number, tMs: number): boolean {
    const until = this.until.get(lackKey(peer, fileKey, range))
    return until !== undefined && until > tMs
  }

  /** Whether the peer said lately that it has none of some part of the file. */
  anyOf (peer: string, fileKey: string, tMs: number): boolean {
    const prefix = `${peer}|${fileKey}:`
    for (const [key, until] of this.until) if (until > tMs && key.startsWith(prefix)) return true
    return false
  }

  /** Forgets answers older than the backoff. */
  expire (tMs: number): void {
    for (const [key, until] of this.until) if (until <= tMs) this.until.delete(key)
  }
}

function lackKey (peer: string, fileKey: string, range: number): string {
  return `${peer}|${fileKey}:${range}`
}
