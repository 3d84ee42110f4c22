import type { RateControl } from './rate-control.js'

/**
 * When a request's missing slices count as lost. A peer answers one peer's requests in order,
 * paced, so a request is given up on in one of three ways (as RACK does for TCP, with time
 * instead of sequence numbers):
 *
 * - overtaken: slices of a later request arrived, and the peer's reorder window passed;
 * - drained: the oldest request began to be answered, then the peer went quiet;
 * - timed out: never answered while the peer sent nothing at all; sooner when it is the only
 *   request the peer owes (a file's last), since nothing later can overtake it.
 *
 * Pure: the requester keeps the state and calls these with the time.
 */

/** Slices of a later request that show an earlier one's missing slices were lost (once the reorder window passed). */
export const REORDER_SLICES = 4
export const INITIAL_REORDER_WINDOW_MS = 5
export const MAX_REORDER_WINDOW_MS = 250
/** Slices of a request given up on are still taken when they arrive this soon after. */
export const LATE_SLICE_MS = 2_000

export interface PlannedRequest {
  peer: string
  fileKey: string
  range: number
  firstSlice: number
  rangeLength: number
  /** Slices asked for (the missing ones), also the request's limit. */
  limit: number
  requestId: number
  /** Slices per second the peer is asked to pace its answers at. */
  paceRate: number
}

export interface InFlight extends PlannedRequest {
  sentAtMs: number
  lastActivityMs: number
  /** The peer began to answer: its reply or one of its slices arrived. */
  answering: boolean
  /** Slices still expected: `limit` until the reply says how many are coming. */
  outstanding: number
  /** What the reply announced, once it arrived. */
  expected?: number
  /** Slices of it that arrived. */
  arrived: number
  /** When slices of a later request to the same peer began to arrive; undefined before. */
  overtakenAtMs?: number
  /**
   * Slices of a request to the same peer for the same range, given up on lately: if they come
   * late they look like this one's own, so this many of its arrivals prove nothing about the
   * requests before it.
   */
  lateBudget: number
}

export interface PeerState {
  outstanding: number
  /** The pace of the latest request sent to it: the one it keeps to. */
  sentPace: number
  /** Its requests in flight, oldest first: the order it answers them in. */
  order: InFlight[]
  reorderWindowMs: number
  /** When its last slice arrived, for any request. */
  lastSliceMs: number
  /** The path's congestion control: the pace to ask for, the window of slices ahead, and the round trip. */
  control: RateControl
}

export interface LossTimes {
  minTimeoutMs: number
  /**
   * The least a peer's only request waits for its answer (see timeoutMs). Without a floor a
   * short path's two round trips would be shorter than the peer's own busy moments.
   */
  minLoneTimeoutMs: number
  maxTimeoutMs: number
  /**
   * The oldest request a peer began to answer that has then been quiet this long (or four
   * datagrams' time at the pace, if longer) is drained: what it still lacks is lost, found in
   * a round trip instead of a timeout. (The grace covers datagrams the network reorders a little.)
   */
  drainGraceMs: number
}

export type GiveUpReason = 'drained' | 'overtaken' | 'timedOut'

/** Whether, and why, `request` is given up on at `tMs`. */
export function giveUpReason (request: InFlight, state: PeerState, tMs: number, times: LossTimes): GiveUpReason | null {
  const quietMs = tMs - request.lastActivityMs
  // Only the peer's oldest request can have been drained, and only while the peer sends
  // nothing at all (slices of later ones mean it was overtaken).
  if (request.answering && state.order[0] === request && Math.min(quietMs, tMs - state.lastSliceMs) >= drainGraceMs(state, times)) return 'drained'
  if (request.overtakenAtMs !== undefined && tMs - request.overtakenAtMs >= state.reorderWindowMs) return 'overtaken'
  // Never answered, and the peer silent too: while it sends, the request waits its turn or is overtaken.
  if (!request.answering && Math.min(quietMs, tMs - state.lastSliceMs) >= timeoutMs(state, times, state.order.length === 1)) return 'timedOut'
  return null
}

/** Slices of `request` keep coming: what its peer still owes on earlier requests is lost once the reorder window passes. */
export function markOvertaken (state: PeerState, request: InFlight, tMs: number): void {
  // A request for fewer slices (the last ones of a file, asked again) overtakes once all came.
  const proof = Math.min(REORDER_SLICES, request.expected ?? request.limit)
  if (state.order[0] === request || request.arrived < proof + request.lateBudget) return
  for (const older of state.order) {
    if (older === request) break
    // Requests sent together may reach the peer in any order: only earlier ones are overtaken.
    if (older.sentAtMs < request.sentAtMs) older.overtakenAtMs ??= tMs
  }
}

/** A slice given up for lost arrived after all: the loss was called too soon, so the reorder window grows. */
export function widenReorderWindow (state: PeerState): void {
  state.reorderWindowMs = Math.min(MAX_REORDER_WINDOW_MS, state.reorderWindowMs * 2)
}

/**
 * Four datagrams' time at the pace asked for, never less than the configured grace, and never
 * less than the reorder window: slices called lost that came late show the peer's slices can
 * pause that long behind other traffic in a queue (a TCP flow's burst) and still come.
 */
function drainGraceMs (state: PeerState, times: LossTimes): number {
  return Math.max(times.drainGraceMs, (4 * 2 * 1000) / state.control.paceRate, state.reorderWindowMs)
}

/**
 * A round trip and four times its variation, within the configured bounds. A request the
 * peer answers at once (its reply is never paced) whose answer is overdue that long was lost,
 * or its answer was. The floor keeps a peer that stalls for a moment (a busy event loop)
 * from being asked twice for all the requests waiting on it; but a request alone in flight (a
 * file's last) has nothing to overtake it, and waiting out the floor for it holds the whole
 * file that long, so it waits only two round trips (as TCP's tail loss probe does).
 */
function timeoutMs (state: PeerState, times: LossTimes, alone: boolean): number {
  const srtt = state.control.smoothedRtt
  const base = srtt === null ? 1000 : srtt + 4 * state.control.rttVariation
  const timeout = Math.min(times.maxTimeoutMs, Math.max(times.minTimeoutMs, base))
  return alone && srtt !== null ? Math.min(timeout, Math.max(times.minLoneTimeoutMs, 2 * srtt, base)) : timeout
}
