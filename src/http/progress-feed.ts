import type { Progress } from '../node/progress.js'

/** How often the feed looks for changed progress: at most this many events per file per second, 1000 / it. */
export const EVENTS_INTERVAL_MS = 250
/** A comment line keeps idle streams (and the proxies between) open. */
const KEEPALIVE_MS = 15_000

type Write = (chunk: string) => void

const progressEvent = (json: string): string => `event: progress\ndata: ${json}\n\n`

/**
 * The `progress` events of every open event stream, worked out once for all of them: one
 * look at the files every EVENTS_INTERVAL_MS while any stream is open, and only files whose
 * progress changed are written. Nothing runs while no stream is open.
 */
export class ProgressFeed {
  private readonly streams = new Set<Write>()
  private readonly last = new Map<string, string>()
  private timer: NodeJS.Timeout | null = null
  private keepalive: NodeJS.Timeout | null = null

  constructor (private readonly files: () => Progress[]) {}

  /** Sends `write` every file's progress now, then changes as they happen; returns the unsubscribe. */
  subscribe (write: Write): () => void {
    this.refresh()
    for (const json of this.last.values()) write(progressEvent(json))
    this.streams.add(write)
    this.timer ??= setInterval(() => this.refresh(), EVENTS_INTERVAL_MS)
    this.keepalive ??= setInterval(() => { for (const stream of this.streams) stream(': keepalive\n\n') }, KEEPALIVE_MS)
    return () => {
      this.streams.delete(write)
      if (this.streams.size === 0) this.stop()
    }
  }

  stop (): void {
    if (this.timer !== null) clearInterval(this.timer)
    if (this.keepalive !== null) clearInterval(this.keepalive)
    this.timer = null
    this.keepalive = null
    this.streams.clear()
    this.last.clear()
  }

  private refresh (): void {
    let changed = ''
    for (const progress of this.files()) {
      const json = JSON.stringify(progress)
      if (this.last.get(progress.fileId) === json) continue
      this.last.set(progress.fileId, json)
      changed += progressEvent(json)
    }
    if (changed !== '') for (const stream of this.streams) stream(changed)
  }
}
