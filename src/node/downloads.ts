import { LocalFile } from './local-file.js'
import { QuietError } from './errors.js'
import { percentOf } from './progress.js'
import { openSliceRecord } from '../files/verify.js'
import { Requester } from '../sync/requester.js'
import { SpeedMeter } from '../sync/speed.js'
import { WindowHashLists } from './window-hash-lists.js'
import { AEAD_NONCE_BYTES } from '../crypto/index.js'
import { bytesEqual, toHex } from '../bytes.js'
import {
  EVENT_BYTES, EventType, MAX_PACE, WireError, SLICE_PLAINTEXT_BYTES, MAX_PRIORITY, MIN_PRIORITY,
  decodeSliceEvent, openSignedEvent, sliceNonce, decodeSyncFileReplyPayload, encodeSyncFileRequestPayload
} from '../wire/index.js'
import type { NodeContext } from './context.js'
import type { RequestableFile, RequesterOptions } from '../sync/requester.js'
import type { DescriptorRow, WantedRow } from '../store/store.js'
import type { FileState, Progress, SaveStatus } from './progress.js'

export interface RequestOptions {
  /** 1 (lowest) to 10 (highest); default 5. */
  priority?: number
  /** Give up after this long (0 or absent: never). */
  ttlMs?: number
}

export const DEFAULT_PRIORITY = 5
/** The reason a download gives while no connected peer holds it (none is, or each said it lacks it). */
export const WAITING_FOR_PEERS = 'waiting for a peer that holds it'
/**
 * A download of this priority or higher takes its fair share of a path shared with other
 * traffic; below it, it yields to that traffic (see RateControl).
 */
export const FOCUSED_PRIORITY = 5
/** Files a peer supplied bad windows of before it is asked for nothing at all. */
export const BAD_FILES_TO_DISTRUST = 2
/** How long a download stalled on a write error (a full disk) waits before trying again. */
export const STALL_RETRY_MS = 10_000

/**
 * The files this node is fetching: the wanted table (request, pause, resume, cancel,
 * expiry), the requests sent for them and the slices that answer, and their progress.
 * A pause takes effect in `sendRequests`, which skips paused files but for the ranges a
 * reader waits for.
 */
export class Downloads {
  readonly requester: Requester
  private readonly meters = new Map<string, SpeedMeter>()
  /** Per file, the plaintext bytes taken from each peer since the node started. */
  private readonly sources = new Map<string, Map<string, number>>()
  /** When each download stalled on a write error, for retrying it. */
  private readonly stalledSince = new Map<string, number>()
  private readonly plaintextScratch = new Uint8Array(SLICE_PLAINTEXT_BYTES)
  private readonly nonceScratch = new Uint8Array(AEAD_NONCE_BYTES)
  private lastSliceFile = { id: new Uint8Array(0), key: '' }
  private readonly hashLists: WindowHashLists
  /** Per file: peers not asked for it again (a window only they supplied failed, or their hash list did). */
  private readonly excluded = new Map<string, Set<string>>()
  /** Per peer: the files it supplied bad windows of. With two or more it is not asked at all. */
  private readonly badFiles = new Map<string, Set<string>>()

  /**
   * `onAccepted`: an authenticated slice was taken, its plaintext in the buffer given (for
   * saves); `onLastSlice`: a file holds every slice now (flush soon, for the verdict).
   */
  constructor (private readonly ctx: NodeContext, options: Partial<RequesterOptions> | undefined,
    private readonly onAccepted: (key: string, sliceNo: number, plaintext: Uint8Array) => void,
    private readonly onLastSlice: () => void,
    private readonly onWindowFailed: (key: string, first: number, count: number) => void) {
    this.requester = new Requester(options)
    this.hashLists = new WindowHashLists(ctx, (peer, key) => this.charge(peer, key, true))
  }

  request (fileId: string, options: RequestOptions = {}): void {
    const { files, store } = this.ctx
    const descriptor = files.descriptor(fileId)
    const priority = options.priority ?? DEFAULT_PRIORITY
    const ttlMs = options.ttlMs ?? 0
    if (!Number.isInteger(priority) || priority < MIN_PRIORITY || priority > MAX_PRIORITY) {
      throw new QuietError('invalid_argument', `priority must be an integer from ${MIN_PRIORITY} to ${MAX_PRIORITY}`)
    }
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 0) throw new QuietError('invalid_argument', 'ttl must be a non-negative number of milliseconds')
    const existing = files.local(descriptor)
    if (existing?.status === 'complete') return
    store.transaction(() => {
      if (existing?.status === 'failed') files.drop(descriptor)
      files.logWant(descriptor.fileId, 'request', priority, ttlMs)
      const local = files.local(descriptor) ?? LocalFile.open(this.ctx.dataDir, descriptor, store)
      local.persist(store)
      files.replace(local)
    })
  }

  pause (fileId: string): void {
    const row = this.ctx.files.activeWant(fileId)
    if (row.state === 'expired') throw new QuietError('conflict', 'the request has expired; request the file again')
    if (row.state === 'wanted') this.ctx.store.transaction(() => this.ctx.files.logWant(row.fileId, 'pause', row.priority, 0))
  }

  resume (fileId: string): void {
    const row = this.ctx.files.activeWant(fileId)
    if (row.state === 'expired') throw new QuietError('conflict', 'the request has expired; request the file again')
    if (row.state === 'paused') this.ctx.store.transaction(() => this.ctx.files.logWant(row.fileId, 'resume', row.priority, 0))
  }

  /** Stops the download and deletes what was fetched; requesting again starts from zero. */
  cancel (fileId: string): void {
    const { files } = this.ctx
    const row = files.activeWant(fileId)
    const descriptor = files.descriptor(fileId)
    this.ctx.store.transaction(() => {
      files.logWant(row.fileId, 'cancel', 0, 0)
      files.drop(descriptor)
    })
  }

  /** A file's local data is gone: nothing of it is in flight or measured any more. */
  forget (key: string): void {
    this.requester.dropFile(key)
    this.meters.delete(key)
    this.hashLists.forget(key)
  }

  onWindowHashes (peer: string, bytes: Uint8Array): void {
    this.hashLists.onWindowHashes(peer, bytes)
  }

  /**
   * Charges the suppliers of windows that failed their hash at the last flush: each gets a
   * bad window; a window only one peer supplied pins that peer as the liar, and it is not
   * asked for that file again (a repeat fetch goes to one peer, so a repeat failure pins it).
   */
  chargeFailedWindows (): void {
    for (const local of this.ctx.files.locals.values()) {
      for (const failed of local.takeFailedWindows()) {
        this.ctx.counters.windowsFailed++
        for (const peer of failed.suppliers) this.charge(peer, local.key, failed.suppliers.size === 1)
        this.onWindowFailed(local.key, failed.first, failed.count)
        this.requester.rewind(local.key)
      }
    }
  }

  /** Peers that supplied bad windows, with the files they were of. */
  suspects (): Map<string, ReadonlySet<string>> {
    return this.badFiles
  }

  /** Forgives a peer: it is asked again (it was excluded for supplying bad windows). */
  trust (peer: string): void {
    this.badFiles.delete(peer)
    for (const excluded of this.excluded.values()) excluded.delete(peer)
  }

  private charge (peer: string, key: string, pinned: boolean): void {
    this.ctx.ledger.of(peer).badWindows++
    let files = this.badFiles.get(peer)
    if (files === undefined) this.badFiles.set(peer, files = new Set())
    files.add(key)
    if (!pinned) return
    let excluded = this.excluded.get(key)
    if (excluded === undefined) this.excluded.set(key, excluded = new Set())
    excluded.add(peer)
    this.requester.dropFile(key, peer)
    const local = this.ctx.files.locals.get(key)
    for (const { first, count } of local?.dropUnverifiedFrom(peer) ?? []) this.onWindowFailed(key, first, count)
  }

  /** A peer with bad windows in several files is asked for nothing. */
  trusted (peer: string): boolean {
    return (this.badFiles.get(peer)?.size ?? 0) < BAD_FILES_TO_DISTRUST
  }

  onSlice (peer: string, bytes: Uint8Array): void {
    const { ctx } = this
    const slice = decodeSliceEvent(bytes)
    const key = this.sliceFileKey(slice.fileId)
    const local = ctx.files.locals.get(key)
    const want = ctx.files.wanted.get(key)
    if (local === undefined || want === undefined || local.status !== 'partial') {
      ctx.counters.slicesUnsolicited++
      return
    }
    const { descriptor } = local
    const now = ctx.now()
    const range = slice.sliceNo < descriptor.slices ? local.layout.rangeOf(slice.sliceNo) : -1
    // Only slices asked of this peer are taken: nobody can push slices into a download.
    if (range >= 0 && !this.requester.onSlice(peer, key, range, now)) {
      ctx.counters.slicesUnsolicited++
      return
    }
    if (range < 0 || !bytesEqual(slice.nonce, sliceNonce(descriptor.noncePrefix, slice.sliceNo, this.nonceScratch)) ||
        !openSliceRecord(slice.record, slice.sliceNo, descriptor, this.plaintextScratch, this.nonceScratch)) {
      ctx.counters.slicesRejected++
      ctx.ledger.of(peer).rejected++
      return
    }
    if (local.writeError !== null) {
      ctx.counters.slicesDroppedStalled++
      return
    }
    if (!local.accept(slice.sliceNo, slice.record, peer)) {
      ctx.counters.slicesDuplicate++
      return
    }
    this.onAccepted(key, slice.sliceNo, this.plaintextScratch)
    if (local.haveSlices === descriptor.slices) this.onLastSlice()
    ctx.counters.slicesAccepted++
    ctx.ledger.of(peer).accepted++
    const plaintextBytes = Math.min(SLICE_PLAINTEXT_BYTES, descriptor.size - slice.sliceNo * SLICE_PLAINTEXT_BYTES)
    this.meter(key).add(plaintextBytes, now)
    let fromPeers = this.sources.get(key)
    if (fromPeers === undefined) this.sources.set(key, fromPeers = new Map())
    fromPeers.set(peer, (fromPeers.get(peer) ?? 0) + plaintextBytes)
  }

  onReply (peer: string, bytes: Uint8Array): void {
    const event = openSignedEvent(bytes, EventType.syncFileReply)
    if (toHex(event.header.signerPk) !== peer) throw new WireError('field', 'reply signed by another peer')
    const reply = decodeSyncFileReplyPayload(event.payload)
    this.ctx.counters.repliesReceived++
    const key = toHex(reply.fileId)
    const local = this.ctx.files.locals.get(key)
    if (local === undefined || reply.firstSlice >= local.descriptor.slices) return
    const range = local.layout.rangeOf(reply.firstSlice)
    if (local.layout.rangeStart(range) !== reply.firstSlice) return
    this.requester.onReply(peer, key, range, reply.requestId, reply.sending, this.ctx.now())
  }

  /** Expires downloads past their ttl, retries stalled ones, gives up requests gone quiet. */
  tick (): void {
    this.expireRequests()
    this.retryStalled()
    this.ctx.counters.requestsTimedOut += this.requester.expire(this.ctx.now())
  }

  /** Whether a connected peer may hold the file: one that did not just say it lacks what was asked. */
  private holderConnected (key: string): boolean {
    const now = this.ctx.now()
    return this.ctx.peers().some(peer => !this.requester.saidLacking(peer, key, now) && !this.hashLists.saidNone(key, peer, now))
  }

  progress (descriptor: DescriptorRow, saves: SaveStatus[]): Progress {
    const key = toHex(descriptor.fileId)
    const local = this.ctx.files.local(descriptor)
    const want = this.ctx.files.wanted.get(key) ?? null
    const state = this.stateOf(descriptor, local, want)
    const bytesReceived = local?.haveBytes ?? 0
    const speed = state === 'active' ? (this.meters.get(key)?.rate(this.ctx.now()) ?? 0) : 0
    const remaining = descriptor.size - bytesReceived
    return {
      fileId: key,
      name: descriptor.name,
      mediaType: descriptor.mediaType,
      state,
      priority: want?.priority ?? null,
      slicesReceived: local?.haveSlices ?? 0,
      slicesTotal: descriptor.slices,
      bytesReceived,
      bytesTotal: descriptor.size,
      percent: percentOf(bytesReceived, descriptor.size, state === 'complete'),
      speedBytesPerSecond: speed,
      etaSeconds: state === 'complete' ? 0 : speed > 0 ? remaining / speed : null,
      reason: local?.writeError ?? local?.reason ?? ((state === 'queued' || state === 'active') && speed === 0 && !this.holderConnected(key) ? WAITING_FOR_PEERS : null),
      sources: [...this.sources.get(key) ?? []].map(([peer, bytes]) => ({ peer, bytes })).sort((a, b) => b.bytes - a.bytes),
      saving: saves.at(-1) ?? null,
      saves
    }
  }

  private stateOf (descriptor: DescriptorRow, local: LocalFile | null, want: WantedRow | null): FileState {
    if (local?.status === 'complete') return 'complete'
    if (local?.status === 'failed') return 'failed'
    if (want === null) return this.ctx.files.wasCancelled(descriptor) ? 'cancelled' : 'available'
    if (want.state === 'paused') return 'paused'
    if (want.state === 'expired') return 'expired'
    if (local !== null && local.writeError !== null) return 'stalled'
    const key = toHex(descriptor.fileId)
    return (local?.haveSlices ?? 0) > 0 || this.requester.inflightCount(key) > 0 ? 'active' : 'queued'
  }

  private expireRequests (): void {
    const { files } = this.ctx
    const now = this.ctx.now()
    for (const row of files.wanted.values()) {
      if (row.state === 'expired' || row.ttlMs === 0 || now < row.requestedAtMs + row.ttlMs) continue
      if (files.locals.get(toHex(row.fileId))?.status !== 'partial') continue
      this.ctx.store.transaction(() => files.logWant(row.fileId, 'expire', row.priority, 0))
    }
  }

  /**
   * Downloads stalled on a write error are tried again every STALL_RETRY_MS: once space is
   * back they carry on from what they hold.
   */
  private retryStalled (): void {
    const now = this.ctx.now()
    for (const local of this.ctx.files.locals.values()) {
      if (local.writeError === null) { this.stalledSince.delete(local.key); continue }
      const since = this.stalledSince.get(local.key)
      if (since === undefined) this.stalledSince.set(local.key, now)
      else if (now - since >= STALL_RETRY_MS) {
        this.stalledSince.delete(local.key)
        local.retryWrites()
        this.requester.rewind(local.key)
      }
    }
  }

  /** New requests for the wanted files, highest priority first, as far as the peers' windows allow. */
  sendRequests (): void {
    const { ctx } = this
    const peers = ctx.peers().filter(peer => this.trusted(peer))
    if (peers.length === 0) return
    const files: RequestableFile[] = []
    // A file's window hashes are asked for first. Its slices are asked for in the same tick,
    // not a round trip later: they wait, unverified, until the hashes come.
    const needHashes: LocalFile[] = []
    // `wanted` is kept in priority order (see FileTable). A paused file is not fetched,
    // except the ranges a reader waits for.
    for (const row of ctx.files.wanted.values()) {
      const local = ctx.files.locals.get(toHex(row.fileId))
      if (local?.status !== 'partial' || row.state === 'expired' || local.writeError !== null) continue
      const urgentRanges = local.urgent.size > 0 ? [...local.urgent] : undefined
      const background = row.state === 'wanted'
      if (!background && urgentRanges === undefined) continue
      if (local.windows === null) needHashes.push(local)
      files.push({
        key: local.key, layout: local.layout, missing: r => local.missing(r), urgentRanges, background,
        excludedPeers: this.excluded.get(local.key), character: row.priority >= FOCUSED_PRIORITY ? 'focused' : 'background'
      })
    }
    if (needHashes.length > 0) this.hashLists.tick(needHashes, peers, key => this.excluded.get(key))
    for (const planned of this.requester.plan(files, peers, ctx.now())) {
      const local = ctx.files.locals.get(planned.fileKey)!
      const payload = encodeSyncFileRequestPayload({
        fileId: local.descriptor.fileId,
        requestId: planned.requestId,
        firstSlice: planned.firstSlice,
        rangeLength: planned.rangeLength,
        limit: planned.limit,
        bitmap: local.have.rangeBitmap(planned.firstSlice, planned.rangeLength),
        pace: Math.min(MAX_PACE, planned.paceRate * EVENT_BYTES)
      })
      ctx.send(planned.peer, ctx.signer.sign(EventType.syncFile, payload))
      ctx.counters.requestsSent++
    }
  }

  /** The hex key of a slice's file id; slices come in runs of one file, so the last one is kept. */
  private sliceFileKey (fileId: Uint8Array): string {
    if (!bytesEqual(fileId, this.lastSliceFile.id)) this.lastSliceFile = { id: new Uint8Array(fileId), key: toHex(fileId) }
    return this.lastSliceFile.key
  }

  private meter (key: string): SpeedMeter {
    let meter = this.meters.get(key)
    if (meter === undefined) { meter = new SpeedMeter(); this.meters.set(key, meter) }
    return meter
  }
}
