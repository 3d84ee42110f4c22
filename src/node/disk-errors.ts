/** Whether an error means the disk is full (from the file system or from SQLite). */
export function isDiskFull (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return code === 'ENOSPC' || code === 'SQLITE_FULL' || code === 'EDQUOT'
}

/** A write error as a user reads it: `no space left on device` rather than an errno dump. */
export function describeWriteError (err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code
  if (code === 'ENOSPC') return 'no space left on device'
  if (code === 'EDQUOT') return 'disk quota exceeded'
  if (code === 'EROFS') return 'the data directory is on a read-only file system'
  return `cannot write slices: ${(err as Error).message}`
}
