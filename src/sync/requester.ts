import type { FileLayout } from '../files/windows.js'

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
}

export interface PlannedRequest {
  peer: string
  fileKey: string
  range: number
  firstSlice: number
  rangeLength: number
  /** Slices asked for (the missing ones), also the request's limit. */
  limit: number
  requestId: number
}

interface InFlight extends PlannedRequest {
  sentAtMs: number
  lastActivityMs: number
  /** The peer began to answer: its reply or one of its slices arrived. */
  answering: boolean
  /** Slices still expected: `limit` until the reply says how many are coming. */
  outstanding: number
  /** What the reply announced, once it arrived. */
  expected?: number
}

export interface RequesterOptions {
  /**
   * Congestion control, per peer: the window is how many slices may be requested and not
   * yet arrived. It grows by `windowIncrease` for every request answered in full and halves
   * (at most once per round trip) while the smoothed loss is above `lossThreshold`.
   */
  initialWindow: number
  minWindow: number
  maxInflightSlicesPerPeer: number
  windowIncrease: number
  lossThreshold: number
  /** Weight of the newest sample in the loss average (the spec's EMA alpha). */
  lossAlpha: number
  minTimeoutMs: number
  maxTimeoutMs: number
  /**
   * A peer sends a request's reply and all its slices at once. So a request it began to
   * answer and that has then been quiet this long is drained: what it still lacks is lost,
   * found in a round trip instead of a timeout. (The grace covers datagrams the network
   * reorders a little.)
   */
  drainGraceMs: number
  /** How long a peer that answered "I have none of that" is not asked for that range again. */
  lackBackoffMs: number
  /** How often `expire` is called; a longer gap is a local stall. */
  expectedTickMs: number
}

export const DEFAULT_REQUESTER_OPTIONS: RequesterOptions = {
  initialWindow: 2048,
  minWindow: 2048,
  maxInflightSlicesPerPeer: 4096,
  windowIncrease: 256,
  lossThreshold: 0.05,
  lossAlpha: 0.125,
  minTimeoutMs: 250,
  maxTimeoutMs: 5000,
  drainGraceMs: 30,
  lackBackoffMs: 3000,
  expectedTickMs: 10
}

interface PeerState {
  outstanding: number
  window: number
  /** Smoothed fraction of requested slices that never came. */
  lossEma: number
  lastDecreaseMs: number
  /** Smoothed round trip (request → reply) and its variation, TCP style. */
  srttMs: number
  rttVarMs: number
  requested: number
  received: number
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
  private readonly lacks = new Map<string, number>()
  private readonly cursors = new Map<string, number>()
  private nextRequestId = 1
  private lastExpireMs = -1
  private roundRobin = 0
  private readonly options: RequesterOptions

  constructor (options: Partial<RequesterOptions> = {}) {
    this.options = { ...DEFAULT_REQUESTER_OPTIONS, ...options }
  }

  /**
   * New requests, filling each peer's budget from the highest-priority file down, each file's
   * ranges in order (streaming order, sequential reads on the other side).
   */
  plan (files: readonly RequestableFile[], peerIds: readonly string[], tMs: number): PlannedRequest[] {
    const planned: PlannedRequest[] = []
    if (peerIds.length === 0) return planned
    for (const id of peerIds) this.peer(id)
    // Ranges a reader is waiting for go first, whatever their file's priority.
    for (const file of files) {
      for (const r of file.urgentRanges ?? []) {
        if (!this.anyPeerHasRoom(peerIds)) return planned
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
        if (!this.anyPeerHasRoom(peerIds)) return planned
        this.tryRange(file, r, peerIds, tMs, planned)
      }
    }
    return planned
  }

  /** Requests range r of a file from a peer with room, unless it is held or already asked for. */
  private tryRange (file: RequestableFile, r: number, peerIds: readonly string[], tMs: number, planned: PlannedRequest[]): void {
    const key = rangeKey(file.key, r)
    if (this.inflight.has(key)) return
    const missing = file.missing(r)
    if (missing === 0) return
    const peer = this.choosePeer(peerIds, file.key, r, missing, tMs, file.excludedPeers)
    if (peer === null) return
    const request: InFlight = {
      peer, fileKey: file.key, range: r, firstSlice: file.layout.rangeStart(r), rangeLength: file.layout.rangeLength(r),
      limit: missing, requestId: this.takeRequestId(), sentAtMs: tMs, lastActivityMs: tMs, outstanding: missing,
      answering: false
    }
    this.inflight.set(key, request)
    const state = this.peer(peer)
    state.outstanding += missing
    state.requested += missing
    planned.push(request)
  }

  /** The reply header arrived: now we know how many slices are coming. */
  onReply (peer: string, fileKey: string, range: number, requestId: number, sending: number, tMs: number): void {
    const request = this.inflight.get(rangeKey(fileKey, range))
    if (request === undefined || request.peer !== peer || request.requestId !== requestId) return
    const state = this.peer(peer)
    this.sampleRtt(state, tMs - request.sentAtMs)
    request.answering = true
    request.lastActivityMs = tMs
    const arrivedBeforeReply = request.limit - request.outstanding
    const stillComing = Math.max(0, sending - arrivedBeforeReply)
    state.outstanding -= request.outstanding - stillComing
    request.outstanding = stillComing
    request.expected = sending
    if (sending === 0) this.lacks.set(lackKey(peer, fileKey, range), tMs + this.options.lackBackoffMs)
    if (request.outstanding === 0) this.finish(request, 0, tMs)
  }

  /**
   * A slice of `range` arrived from `peer` (accepted or duplicate: either way it answered).
   * False when no request of that range to that peer is in flight: nobody asked for it.
   */
  onSlice (peer: string, fileKey: string, range: number, tMs: number): boolean {
    const last = this.lastHit
    const request = last !== null && last.range === range && last.fileKey === fileKey ? last : this.inflight.get(rangeKey(fileKey, range))
    if (request === undefined || request.peer !== peer) return false
    this.lastHit = request
    const state = this.peer(peer)
    state.received++
    request.answering = true
    request.lastActivityMs = tMs
    if (request.outstanding > 0) {
      request.outstanding--
      state.outstanding--
    }
    if (request.outstanding === 0) this.finish(request, 0, tMs)
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
      const quietMs = tMs - request.lastActivityMs
      const drained = request.answering && quietMs >= this.options.drainGraceMs
      if (drained || quietMs >= this.timeoutMs(state)) {
        state.outstanding -= request.outstanding
        this.finish(request, request.outstanding, tMs)
        expired++
      }
    }
    for (const [key, until] of this.lacks) if (until <= tMs) this.lacks.delete(key)
    return expired
  }

  /**
   * Forgets what is in flight for a file (cancel, completion, failure), or only what was
   * asked of `peer` (it lied: what it still sends is not taken, and its ranges go to others).
   */
  dropFile (fileKey: string, peer?: string): void {
    for (const [key, request] of this.inflight) {
      if (request.fileKey !== fileKey || (peer !== undefined && request.peer !== peer)) continue
      this.peer(request.peer).outstanding -= request.outstanding
      this.inflight.delete(key)
    }
    if (this.lastHit?.fileKey === fileKey) this.lastHit = null
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

  /** A request ended with `lost` slices never arriving: feed the loss average, then AIMD. */
  private finish (request: InFlight, lost: number, tMs: number): void {
    this.inflight.delete(rangeKey(request.fileKey, request.range))
    if (this.lastHit === request) this.lastHit = null
    const asked = request.expected ?? request.limit
    if (asked === 0) return
    const state = this.peer(request.peer)
    const o = this.options
    state.lossEma = (1 - o.lossAlpha) * state.lossEma + o.lossAlpha * (lost / asked)
    if (state.lossEma > o.lossThreshold) {
      if (tMs - state.lastDecreaseMs >= Math.max(state.srttMs, 0)) {
        state.window = Math.max(o.minWindow, Math.floor(state.window / 2))
        state.lastDecreaseMs = tMs
      }
    } else if (lost === 0) {
      state.window = Math.min(o.maxInflightSlicesPerPeer, state.window + o.windowIncrease)
    }
  }

  private rangeComplete (file: RequestableFile, r: number): boolean {
    return file.missing(r) === 0 && !this.inflight.has(rangeKey(file.key, r))
  }

  private anyPeerHasRoom (peerIds: readonly string[]): boolean {
    return peerIds.some(id => { const p = this.peer(id); return p.outstanding < p.window })
  }

  private choosePeer (peerIds: readonly string[], fileKey: string, range: number, cost: number, tMs: number, excluded?: ReadonlySet<string>): string | null {
    for (let i = 0; i < peerIds.length; i++) {
      const id = peerIds[(this.roundRobin + i) % peerIds.length]!
      if (excluded?.has(id) === true) continue
      const state = this.peer(id)
      const roomy = state.outstanding === 0 || state.outstanding + cost <= state.window
      const lackUntil = this.lacks.get(lackKey(id, fileKey, range))
      if (roomy && (lackUntil === undefined || lackUntil <= tMs)) {
        this.roundRobin = (this.roundRobin + i + 1) % peerIds.length
        return id
      }
    }
    return null
  }

  private peer (id: string): PeerState {
    let state = this.peers.get(id)
    if (state === undefined) {
      state = { outstanding: 0, window: this.options.initialWindow, lossEma: 0, lastDecreaseMs: -Infinity, srttMs: -1, rttVarMs: 0, requested: 0, received: 0 }
      this.peers.set(id, state)
    }
    return state
  }

  private sampleRtt (state: PeerState, rttMs: number): void {
    if (state.srttMs < 0) {
      state.srttMs = rttMs
      state.rttVarMs = rttMs / 2
    } else {
      state.rttVarMs = 0.75 * state.rttVarMs + 0.25 * Math.abs(state.srttMs - rttMs)
      state.srttMs = 0.875 * state.srttMs + 0.125 * rttMs
    }
  }

  private timeoutMs (state: PeerState): number {
    const base = state.srttMs < 0 ? 1000 : state.srttMs + 4 * state.rttVarMs
    return Math.min(this.options.maxTimeoutMs, Math.max(this.options.minTimeoutMs, base))
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

function lackKey (peer: string, fileKey: string, range: number): string {
  return `${peer}|${fileKey}:${range}`
}
