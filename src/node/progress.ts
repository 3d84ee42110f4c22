import type { Progress } from './progress-types.js'

export type { FileState, Progress, SaveState, SaveStatus } from './progress-types.js'

export function percentOf (bytes: number, total: number, complete: boolean): number {
  if (total === 0) return complete ? 100 : 0
  return Math.min(100, (bytes * 100) / total)
}

/**
 * Nothing more will happen to this download without a new request: it ended (complete,
 * failed, expired, cancelled) and every save asked for is done too.
 */
export function isSettled (progress: Progress): boolean {
  if (progress.state === 'complete') return progress.saves.every(save => save.state !== 'writing')
  return progress.state === 'failed' || progress.state === 'expired' || progress.state === 'cancelled'
}
