// The shape of a download's progress as the node, the HTTP API and the page see it.
// Types only, in a declaration file, so that the page's own build can read them too.

/** `stalled`: the download cannot go on for now (`reason` says why, e.g. a full disk) and is retried by itself. */
export type FileState = 'available' | 'queued' | 'active' | 'stalled' | 'paused' | 'complete' | 'failed' | 'cancelled' | 'expired'

/**
 * A download's progress. `available` means the file is known but not requested here.
 * Bytes never exceed the file size; `etaSeconds` is null while the speed is unknown.
 */
export interface Progress {
  fileId: string
  name: string
  mediaType: string
  state: FileState
  priority: number | null
  slicesReceived: number
  slicesTotal: number
  bytesReceived: number
  bytesTotal: number
  percent: number
  speedBytesPerSecond: number
  etaSeconds: number | null
  reason: string | null
  /** Who the bytes came from since the node started, most first: each peer's key and its verified-or-pending bytes. */
  sources: Array<{ peer: string, bytes: number }>
  /** The latest save asked for (`Node.save`), or null. */
  saving: SaveStatus | null
  /** Every save of this file the node remembers, oldest first (the latest is `saving`). */
  saves: SaveStatus[]
}

export type SaveState = 'writing' | 'saved' | 'failed'

/** A save in progress or done: `saved` once the verified file is in place at `path`. */
export interface SaveStatus {
  path: string
  state: SaveState
  error: string | null
}
