import { RateControl } from './rate-control.js'
import { Lacks } from './lacks.js'
import { INITIAL_REORDER_WINDOW_MS, LATE_SLICE_MS, giveUpReason, markOvertaken, widenReorderWindow } from './loss-detection.js'
import type { Character } from './rate-control.js'
import type { InFlight, LossTimes, PeerState, PlannedRequest } from './loss-detection.js'
import type { FileLayout } from '../files/windows.js'

export type { PlannedRequest } from './loss-detection.js'

/** One wanted file as the requester sees it, in priority order. */
export interface RequestableFile {
  key: string
  layout: FileLayout
  /** Slices of range r this node does not hold yet. */
  missing (range: number): number
  /** Ranges someone is waiting on right now (a reader of a file still downloading). */
  urgentRanges?: readonly number[]
  /** False: fetch only the urgent ranges (a paused download being read). Default true. */
  background?: boolean
  /** Peers not to ask for this file (they supplied a window that failed its hash). */
  excludedPeers?: ReadonlySet<string>
  /** How hard to push the path for it (see RateControl); default focused. */
  character?: Character
}

export interface RequesterOptions extends LossTimes {
  /** The pace a new peer's path starts from, slices per second (see RateControl). */
  initialRate: number
  /** How long a peer that answered "I have none of that" is not asked for that range again. */
  lackBackoffMs: number
  /** How often `expire` is called; a longer gap is a local stall. */
  expectedTickMs: number
}

/** Ranges looked at past a range to tell whether the file's end is near. */
const NEAR_END_RANGES = 64

/** Whether the ranges after `r` miss at most `slices` slices in all (looking at NEAR_END_RANGES of them at most). */
function nearEnd (file: RequestableFile, r: number, slices: number): boolean {
  const ranges = file.layout.rangeCount
  if (ranges - r - 1 > NEAR_END_RANGES) return false
  let missing = 0
  for (let later = r + 1; later < ranges && missing <= slices; later++) missing += file.missing(later)
  return missing <= slices
}

/** The fewest slices a request asks for when more are missing: fewer would cost more in requests than they carry. */
export const MIN_REQUEST_SLICES = 32
/**
 * A window of at least this many ranges asks for ranges whole: a range that does not fit
 * waits for room instead of going in part. The rest of a range asked in part could go only
 * once that request was answered, after the ranges asked meanwhile, so slices arrived out of
 * order: the receiver wrote them in three times as many runs, and sent more requests. On
 * a smaller window (a slow path) waiting for a whole range would hold too much of it back.
 */
export const WHOLE_RANGE_WINDOW = 2
/** What `choosePeer` finds when peers may hold a range but none has room for it. */
const NO_ROOM = Symbol('no room')
/** A pace that differs by more than this part from the one a peer was last sent is sent at once (see sendChangedPace). */
const PACE_CHANGE_FRACTION = 0.1

export const DEFAULT_REQUESTER_OPTIONS: RequesterOptions = {
  initialRate: 2_000,
  minTimeoutMs: 250,
  minLoneTimeoutMs: 50,
  maxTimeoutMs: 5000,
  drainGraceMs: 30,
  lackBackoffMs: 3000,
  expectedTickMs: 10
}

/** The path to one peer as its congestion control sees it (`GET /api/peers`). */
export interface PathReport {
  character: Character
  phase: string
  paceSlicesPerS: number
  bottleneckSlicesPerS: number
  minRttMs: number | null
  queueingDelayMs: number
  windowSlices: number
  inFlightSlices: number
}

/**
 * The requesting half of focused sync: which ranges to ask which peer for, what is in
 * flight, and when a request is given up. Pure state; time comes in as `tMs`.
 * At most one request per range is in flight, so a slice's range finds its request.
 */
export class Requester {
  private readonly inflight = new Map<string, InFlight>()
  /** The request the last slice belonged to: slices come in runs, this spares a lookup each. */
  private lastHit: InFlight | null = null
  private readonly peers = new Map<string, PeerState>()
  private readonly lacks: Lacks
  /** Requests given up with slices missing, lately: their slices are still taken if they come. */
  private readonly givenUp = new Map<string, { peer: string, untilMs: number, lost: number }>()
  /** Slices taken after their request was given up for lost. */
  lateSlices = 0
  /** The most slices per second asked of all peers together (a download cap), or null. */
  private downloadCap: number | null = null
  /** Requests given up, by why: drained (the oldest went quiet), overtaken (later ones were answered), timed out (never answered). */
  readonly givenUpBy = { drained: 0, overtaken: 0, timedOut: 0 }
  private readonly cursors = new Map<string, number>()
  private nextRequestId = 1
  private lastExpireMs = -1
  private roundRobin = 0
  private readonly options: RequesterOptions

  constructor (options: Partial<RequesterOptions> = {}) {
    this.options = { ...DEFAULT_REQUESTER_OPTIONS, ...options }
    this.lacks = new Lacks(this.options.lackBackoffMs)
  }

  /**
   * New requests, filling each peer's budget from the highest-priority file down, each file's
   * ranges in order (streaming order, sequential reads on the other side).
   */
  plan (files: readonly RequestableFile[], peerIds: readonly string[], tMs: number): PlannedRequest[] {
    const planned: PlannedRequest[] = []
    if (peerIds.length === 0) return planned
    // The path is pushed as hard as the most important file still being fetched asks.
    const character = files.find(f => f.background !== false || (f.urgentRanges?.length ?? 0) > 0)?.character ?? 'focused'
    for (const id of peerIds) this.peer(id).control.character = character
    this.fillWindows(files, peerIds, tMs, planned)
    for (const id of peerIds) this.sendChangedPace(files, id, peerIds.length, tMs, planned)
    return planned
  }

  private fillWindows (files: readonly RequestableFile[], peerIds: readonly string[], tMs: number, planned: PlannedRequest[]): void {
    // Ranges a reader is waiting for go first, whatever their file's priority.
    for (const file of files) {
      for (const r of file.urgentRanges ?? []) {
        if (!this.anyPeerHasRoom(peerIds)) return
        this.tryRange(file, r, peerIds, tMs, planned)
      }
    }
    for (const file of files) {
      if (file.background === false) continue
      let cursor = this.cursors.get(file.key) ?? 0
      const ranges = file.layout.rangeCount
      while (cursor < ranges && this.rangeComplete(file, cursor)) cursor++
      this.cursors.set(file.key, cursor)
      for (let r = cursor; r < ranges; r++) {
        if (!this.anyPeerHasRoom(peerIds)) return
        // Ranges go in order: one waiting for room holds back the ones after it.
        if (this.tryRange(file, r, peerIds, tMs, planned, true) === 'no-room') return
      }
    }
  }

  /**
   * A peer paces by the latest request it got, and a full window sends none: a pace lowered
   * (which shrinks the window) would reach the peer only once the slices asked for at the old
   * pace had come, sent at the old pace, so a probe's queue would outlast its drain (and a
   * download cap would take a round trip's worth of slices to hold). So a pace that moved well
   * away from the one last sent goes at once, in a small request past the window.
   */
  private sendChangedPace (files: readonly RequestableFile[], peer: string, peerCount: number, tMs: number, planned: PlannedRequest[]): void {
    const state = this.peer(peer)
    const paceRate = this.paceFor(state, peerCount)
    if (state.outstanding === 0 || Math.abs(paceRate - state.sentPace) <= PACE_CHANGE_FRACTION * state.sentPace) return
    for (const file of files) {
      if (file.background === false || file.excludedPeers?.has(peer) === true) continue
      for (let r = this.cursors.get(file.key) ?? 0; r < file.layout.rangeCount; r++) {
        const missing = file.missing(r)
        if (missing === 0 || this.inflight.has(rangeKey(file.key, r)) || this.lacks.has(peer, file.key, r, tMs)) continue
        this.ask(file, r, peer, Math.min(missing, MIN_REQUEST_SLICES), paceRate, tMs, planned)
        return
      }
    }
  }

  /**
   * Requests range r of a file from a peer with room, unless it is held or already asked for.
   * `whole`: on a window of WHOLE_RANGE_WINDOW ranges or more, the range waits for room to
   * be asked for whole. Returns 'no-room' when a peer could serve it but none had room.
   */
  private tryRange (file: RequestableFile, r: number, peerIds: readonly string[], tMs: number, planned: PlannedRequest[], whole = false): 'asked' | 'skipped' | 'no-room' {
    const key = rangeKey(file.key, r)
    if (this.inflight.has(key)) return 'skipped'
    const missing = file.missing(r)
    if (missing === 0) return 'skipped'
    const peer = this.choosePeer(peerIds, file.key, r, missing, whole ? file.layout.rangeLength(r) : 0, tMs, file.excludedPeers)
    if (peer === null) return 'skipped'
    if (peer === NO_ROOM) return 'no-room'
    const state = this.peer(peer)
    // A range is asked for whole when the window has room, else in part: the window, not the
    // range size, decides how much is on its way. Except near the file's end: the part left
    // could be asked for only once this request is answered, a round trip with nothing else
    // on the way, while the pace keeps what is asked ahead from flooding the path anyway.
    const paceRate = this.paceFor(state, peerIds.length)
    const window = this.windowFor(state, paceRate)
    const room = Math.max(MIN_REQUEST_SLICES, window - state.outstanding)
    this.ask(file, r, peer, missing <= room || nearEnd(file, r, window) ? missing : room, paceRate, tMs, planned)
    return 'asked'
  }

  private ask (file: RequestableFile, r: number, peer: string, limit: number, paceRate: number, tMs: number, planned: PlannedRequest[]): void {
    const key = rangeKey(file.key, r)
    const state = this.peer(peer)
    const request: InFlight = {
      peer, fileKey: file.key, range: r, firstSlice: file.layout.rangeStart(r), rangeLength: file.layout.rangeLength(r),
      limit, requestId: this.takeRequestId(), sentAtMs: tMs, lastActivityMs: tMs, outstanding: limit,
      answering: false, paceRate, arrived: 0,
      lateBudget: this.givenUp.get(key)?.peer === peer ? this.givenUp.get(key)!.lost : 0
    }
    this.inflight.set(key, request)
    state.order.push(request)
    state.outstanding += limit
    state.sentPace = paceRate
    planned.push(request)
  }

  /** This node's event loop was busy `utilization` of the last `ms` milliseconds: every path's congestion control hears it. */
  onLoopLoad (utilization: number, ms: number): void {
    for (const state of this.peers.values()) state.control.onLoopLoad(utilization, ms)
  }

  /** The reply header arrived: now we know how many slices are coming. */
  onReply (peer: string, fileKey: string, range: number, requestId: number, sending: number, tMs: number): void {
    const request = this.inflight.get(rangeKey(fileKey, range))
    if (request === undefined || request.peer !== peer || request.requestId !== requestId) return
    const state = this.peer(peer)
    state.control.onRtt(tMs - request.sentAtMs, tMs)
    request.answering = true
    request.lastActivityMs = tMs
    const arrivedBeforeReply = request.limit - request.outstanding
    const stillComing = Math.max(0, sending - arrivedBeforeReply)
    state.outstanding -= request.outstanding - stillComing
    request.outstanding = stillComing
    request.expected = sending
    if (sending === 0) this.lacks.add(peer, fileKey, range, tMs)
    if (request.outstanding === 0) this.finish(request, 0, tMs)
  }

  /**
   * A slice of `range` arrived from `peer` (accepted or duplicate: either way it answered).
   * False when no request of that range to that peer is in flight: nobody asked for it.
   */
  onSlice (peer: string, fileKey: string, range: number, tMs: number): boolean {
    const last = this.lastHit
    const request = last !== null && last.range === range && last.fileKey === fileKey ? last : this.inflight.get(rangeKey(fileKey, range))
    if (request === undefined || request.peer !== peer) return this.onLateSlice(peer, fileKey, range, tMs)
    this.lastHit = request
    const state = this.peer(peer)
    state.lastSliceMs = tMs
    request.answering = true
    request.lastActivityMs = tMs
    request.arrived++
    if (request.outstanding > 0) {
      request.outstanding--
      state.outstanding--
    }
    state.control.onDelivered(1, tMs, state.outstanding)
    markOvertaken(state, request, tMs)
    if (request.outstanding === 0) this.finish(request, 0, tMs)
    return true
  }

  /**
   * A slice of a request given up on lately: it was asked for, so it is taken; and the loss
   * was called too soon, so the peer's reorder window grows and the congestion control takes
   * back what it did for that loss.
   */
  private onLateSlice (peer: string, fileKey: string, range: number, tMs: number): boolean {
    const key = rangeKey(fileKey, range)
    const given = this.givenUp.get(key)
    if (given === undefined || given.peer !== peer || given.untilMs < tMs) return false
    const state = this.peer(peer)
    widenReorderWindow(state)
    state.control.onSpuriousLoss(tMs)
    // The peer is sending: what it still owes on the requests after is not drained meanwhile.
    // (Else slices it queued twice keep it busy, each quiet spell between them asks for more
    // again, and its queue fills with slices this node already has.)
    state.lastSliceMs = tMs
    state.control.onDelivered(1, tMs)
    this.lateSlices++
    return true
  }

  /**
   * Gives up on requests that went quiet; their ranges become requestable again. When this
   * node itself was stalled since the last call (a long disk write, a busy event loop),
   * the stall is not held against the peers: answers may be waiting unread in the socket.
   */
  expire (tMs: number): number {
    const stall = this.lastExpireMs < 0 ? 0 : tMs - this.lastExpireMs - this.options.expectedTickMs
    this.lastExpireMs = tMs
    if (stall > 0) {
      for (const request of this.inflight.values()) request.lastActivityMs += stall
    }
    let expired = 0
    for (const request of [...this.inflight.values()]) {
      const state = this.peer(request.peer)
      const reason = giveUpReason(request, state, tMs, this.options)
      if (reason !== null) {
        this.givenUpBy[reason]++
        state.outstanding -= request.outstanding
        // A request never answered (timed out, or overtaken by later ones) was one datagram
        // lost on the way out: its slices were never sent, so the path lost one, not them all.
        this.finish(request, request.outstanding, tMs, request.answering ? request.outstanding : Math.min(1, request.outstanding))
        expired++
      }
    }
    this.lacks.expire(tMs)
    for (const [key, given] of this.givenUp) if (given.untilMs < tMs) this.givenUp.delete(key)
    return expired
  }

  /**
   * Forgets what is in flight for a file (cancel, completion, failure), or only what was
   * asked of `peer` (it lied: what it still sends is not taken, and its ranges go to others).
   */
  dropFile (fileKey: string, peer?: string): void {
    for (const request of [...this.inflight.values()]) {
      if (request.fileKey !== fileKey || (peer !== undefined && request.peer !== peer)) continue
      this.peer(request.peer).outstanding -= request.outstanding
      this.forget(request, this.lastExpireMs)
    }
    this.cursors.delete(fileKey)
  }

  /** Restart the range scan from the start of the file (after slices were lost or dropped). */
  rewind (fileKey: string): void {
    this.cursors.delete(fileKey)
  }

  inflightCount (fileKey?: string): number {
    if (fileKey === undefined) return this.inflight.size
    let n = 0
    for (const request of this.inflight.values()) if (request.fileKey === fileKey) n++
    return n
  }

  peerStats (peer: string): Readonly<PeerState> | undefined {
    return this.peers.get(peer)
  }

  /** Caps the pace asked of all peers together, slices per second; null lifts the cap. */
  setDownloadCap (slicesPerS: number | null): void {
    this.downloadCap = slicesPerS === null ? null : Math.max(1, slicesPerS)
  }

  /** The pace to ask `peer` for: its path's, within its share of the download cap. */
  private paceFor (state: PeerState, peerCount: number): number {
    const own = state.control.paceRate
    return this.downloadCap === null ? own : Math.max(1, Math.min(own, Math.floor(this.downloadCap / Math.max(1, peerCount))))
  }

  /** What the congestion control knows of the path to `peer`, or null before it was asked anything. */
  pathOf (peer: string): PathReport | null {
    const state = this.peers.get(peer)
    if (state === undefined) return null
    const c = state.control
    return {
      character: c.character, phase: c.state, paceSlicesPerS: c.paceRate, bottleneckSlicesPerS: Math.round(c.bottleneckRate),
      minRttMs: c.minRtt, queueingDelayMs: c.queueingDelay, windowSlices: c.window, inFlightSlices: state.outstanding
    }
  }

  /** A request ended with `lost` slices never arriving: the path's control hears of `pathLost` of them lost on the path. */
  private finish (request: InFlight, lost: number, tMs: number, pathLost = lost): void {
    this.forget(request, tMs)
    if (lost === 0) return
    this.peer(request.peer).control.onLost(pathLost, tMs)
    this.givenUp.set(rangeKey(request.fileKey, request.range), { peer: request.peer, untilMs: tMs + LATE_SLICE_MS, lost })
  }

  /** No longer in flight. The next in its peer's order has been waiting behind it until now. */
  private forget (request: InFlight, tMs: number): void {
    this.inflight.delete(rangeKey(request.fileKey, request.range))
    if (this.lastHit === request) this.lastHit = null
    const order = this.peer(request.peer).order
    const at = order.indexOf(request)
    if (at >= 0) order.splice(at, 1)
    const head = order[0]
    if (at === 0 && head?.answering === true && head.lastActivityMs < tMs) head.lastActivityMs = tMs
  }

  private rangeComplete (file: RequestableFile, r: number): boolean {
    return file.missing(r) === 0 && !this.inflight.has(rangeKey(file.key, r))
  }

  private anyPeerHasRoom (peerIds: readonly string[]): boolean {
    return peerIds.some(id => { const p = this.peer(id); return p.outstanding < this.windowFor(p, this.paceFor(p, peerIds.length)) })
  }

  /**
   * The next peer (in turn) that may hold the range and has room to be asked for `missing` of
   * its slices: for MIN_REQUEST_SLICES of them, or for them all on a window of WHOLE_RANGE_WINDOW
   * ranges of `rangeSlices` (0: never). NO_ROOM when peers may hold it but none has room; null
   * when none may.
   */
  private choosePeer (peerIds: readonly string[], fileKey: string, range: number, missing: number, rangeSlices: number, tMs: number, excluded?: ReadonlySet<string>): string | typeof NO_ROOM | null {
    let found: typeof NO_ROOM | null = null
    for (let i = 0; i < peerIds.length; i++) {
      const id = peerIds[(this.roundRobin + i) % peerIds.length]!
      if (excluded?.has(id) === true || this.lacks.has(id, fileKey, range, tMs)) continue
      found = NO_ROOM
      const state = this.peer(id)
      const window = this.windowFor(state, this.paceFor(state, peerIds.length))
      const cost = rangeSlices > 0 && window >= WHOLE_RANGE_WINDOW * rangeSlices ? missing : Math.min(missing, MIN_REQUEST_SLICES)
      if (state.outstanding === 0 || state.outstanding + cost <= window) {
        this.roundRobin = (this.roundRobin + i + 1) % peerIds.length
        return id
      }
    }
    return found
  }

  private peer (id: string): PeerState {
    let state = this.peers.get(id)
    if (state === undefined) {
      state = { outstanding: 0, sentPace: 0, order: [], reorderWindowMs: INITIAL_REORDER_WINDOW_MS, lastSliceMs: -Infinity, control: new RateControl('focused', this.options.initialRate) }
      this.peers.set(id, state)
    }
    return state
  }

  /** Whether the peer said lately that it has none of some part of the file we asked it for. */
  saidLacking (peer: string, fileKey: string, tMs: number): boolean {
    return this.lacks.anyOf(peer, fileKey, tMs)
  }

  /** The path's window, shrunk in proportion when a cap holds the pace below the path's. */
  private windowFor (state: PeerState, paceRate: number): number {
    const window = state.control.window
    const own = state.control.paceRate
    return paceRate >= own ? window : Math.max(MIN_REQUEST_SLICES, Math.ceil((window * paceRate) / own))
  }

  private takeRequestId (): number {
    const id = this.nextRequestId
    this.nextRequestId = this.nextRequestId >= 0xffffffff ? 1 : this.nextRequestId + 1
    return id
  }
}

function rangeKey (fileKey: string, range: number): string {
  return `${fileKey}:${range}`
}
