import fs from 'node:fs'
import path from 'node:path'
import { Store } from '../store/store.js'
import { QuietError } from './errors.js'
import { FileTable } from './file-table.js'
import { dropFilesBeforeHashingV2 } from './legacy-files.js'
import { PeerLedger, Signer, emptyStats } from './context.js'
import { Shares } from './shares.js'
import { OrdinarySync } from './ordinary-sync.js'
import { Serving } from './serving.js'
import { Downloads } from './downloads.js'
import { Reads } from './reads.js'
import { Saves } from './saves.js'
import { AEAD_KEY_BYTES } from '../crypto/index.js'
import { fromHex, toHex } from '../bytes.js'
import { EVENT_BYTES, EventType, WireError, HeaderOffset, SHAREABLE_TYPES, SLICE_PLAINTEXT_BYTES } from '../wire/index.js'
import type { Readable } from 'node:stream'
import type { Durability } from './local-file.js'
import type { Limits, NodeContext, NodeOptions, NodeStats, PeerCounters } from './context.js'
import type { Transport } from '../net/transport.js'
import type { PathReport } from '../sync/requester.js'
import type { Progress } from './progress.js'
import type { RequestOptions } from './downloads.js'
import type { OpenRead } from './reads.js'
import type { DescriptorInfo, SharedFile } from './shares.js'

export type { Limits, NodeOptions, NodeStats, PeerCounters } from './context.js'
export type { RequestOptions } from './downloads.js'
export type { OpenRead } from './reads.js'
export type { DescriptorInfo, SharedFile } from './shares.js'
export { DEFAULT_PRIORITY, STALL_RETRY_MS } from './downloads.js'
export { READ_AHEAD_SLICES } from './reads.js'
export { KEPT_FINISHED_SAVES, SAVE_FILL_SLICES_PER_TICK } from './saves.js'
export { SYNC_FOLLOW_UP_MS, SYNC_INTERVAL_MS, SYNC_LIMIT } from './ordinary-sync.js'

const DB_FILE = 'quiet-files.db'
/** How often accepted slices are made durable and recorded. */
export const FLUSH_INTERVAL_MS = 50
/** A transport that does not say how many events a datagram carries is taken to carry two (1400-byte MTU). */
const DEFAULT_EVENTS_PER_DATAGRAM = 2

/**
 * A quiet-files peer, driven by `tick(tMs)` and by `receive(peer, event)` from a transport.
 * It owns the store, the transport and the clock, routes each event type to the part that
 * handles it (shares, ordinary sync, serving, downloads, reads, saves) and ticks them.
 * Everything here is synchronous except reading a source file to share.
 */
export class Node {
  readonly publicKey: string
  private readonly store: Store
  private readonly ctx: NodeContext
  private readonly table: FileTable
  private readonly shares: Shares
  private readonly ordinarySync: OrdinarySync
  private readonly serving: Serving
  private currentLimits: Limits = { maxUploadBytesPerS: null, maxDownloadBytesPerS: null }
  private readonly downloading: Downloads
  private readonly reads: Reads
  private readonly saves: Saves
  private transport: Transport | null
  private nowMs: number
  private closed = false
  private lastFlushMs = -Infinity
  /** Names of files shared before file hashing v2, dropped when this store was first opened under it. */
  readonly droppedLegacyFiles: string[]

  private constructor (private readonly options: NodeOptions) {
    if (options.networkKey.length !== AEAD_KEY_BYTES) throw new QuietError('invalid_argument', 'network key must be 32 bytes')
    fs.mkdirSync(options.dataDir, { recursive: true })
    this.store = Store.open(path.join(options.dataDir, DB_FILE))
    this.droppedLegacyFiles = dropFilesBeforeHashingV2(this.store, options.dataDir, options.networkKey)
    this.publicKey = toHex(options.identity.publicKey)
    this.transport = options.transport ?? null
    this.nowMs = options.startMs ?? 0
    const clock = (): number => this.nowMs
    const signer = new Signer(this.store, options.identity, clock)
    this.table = new FileTable(options.dataDir, this.store, signer, clock, key => this.downloading.forget(key))
    this.ctx = {
      dataDir: options.dataDir,
      identity: options.identity,
      networkKey: options.networkKey,
      store: this.store,
      files: this.table,
      signer,
      counters: emptyStats(),
      ledger: new PeerLedger(),
      now: clock,
      peers: () => this.transport?.peers() ?? [],
      send: (peer, event) => this.transport?.send(peer, event),
      session: peer => this.transport?.session(peer),
      eventsPerDatagram: () => this.transport?.eventsPerDatagram ?? DEFAULT_EVENTS_PER_DATAGRAM
    }
    this.saves = new Saves(this.ctx)
    this.downloading = new Downloads(this.ctx, options.requester,
      (key, sliceNo, plaintext) => this.saves.add(key, sliceNo, plaintext),
      // The last missing slice: flush at the next tick, so the verdict does not wait out the interval.
      () => { this.lastFlushMs = -Infinity },
      // Forged bytes a save already wrote are written again when the window comes back.
      (key, first, count) => this.saves.forgetSlices(key, first, count))
    this.shares = new Shares(this.ctx)
    this.ordinarySync = new OrdinarySync(this.ctx)
    this.serving = new Serving(this.ctx, local => this.downloading.requester.rewind(local.key), options.paceCatchUpMs)
    if (options.limits !== undefined) this.setLimits(options.limits)
    this.reads = new Reads(this.ctx, fileId => this.requestFile(fileId))
  }

  static open (options: NodeOptions): Node {
    return new Node(options)
  }

  get now (): number {
    return this.nowMs
  }

  attach (transport: Transport): void {
    this.transport = transport
  }

  // ---- sharing and shared events -------------------------------------------------------

  /** Slices, encrypts and stores a file from disk, then announces its descriptor. */
  async share (filePath: string, options: { name?: string, mediaType?: string, message?: string } = {}): Promise<SharedFile> {
    this.ensureOpen()
    return await this.shares.share(filePath, options)
  }

  /** Same as `share`, from any byte stream (an upload, a pipe). Memory stays constant. */
  async shareStream (source: AsyncIterable<Uint8Array>, options: { name: string, mediaType?: string, message?: string, size?: number }): Promise<SharedFile> {
    this.ensureOpen()
    return await this.shares.shareStream(source, options)
  }

  announce (name: string, addresses: Array<{ host: string, port: number }> = []): void { this.shares.announce(name, addresses) }
  postMessage (text: string, fileId?: string): void { this.shares.postMessage(text, fileId) }
  /** A shared event from anywhere; WireError if it does not verify. False when already known. */
  ingestEvent (bytes: Uint8Array): boolean { return this.shares.ingest(bytes) }
  descriptorEvent (fileId: string): Uint8Array { return this.shares.descriptorEvent(fileId) }

  members (): Array<{ publicKey: string, name: string }> { return this.shares.members() }
  addresses (): Array<{ publicKey: string, host: string, port: number }> { return this.shares.addresses() }
  messages (): Array<{ author: string, fileId: string | null, text: string, createdAtMs: number }> { return this.shares.messages() }
  descriptorInfo (fileId: string): DescriptorInfo { return this.shares.descriptorInfo(fileId) }

  // ---- focus: request, pause, resume, cancel, save ---------------------------------------

  requestFile (fileId: string, options: RequestOptions = {}): Progress {
    this.downloading.request(fileId, options)
    return this.progress(fileId)
  }

  /** Stops asking for the file; slices already on their way are still stored. */
  pause (fileId: string): Progress {
    this.downloading.pause(fileId)
    return this.progress(fileId)
  }

  resume (fileId: string): Progress {
    this.downloading.resume(fileId)
    return this.progress(fileId)
  }

  /** Stops the download and deletes what was fetched (and its saves' partial files); requesting again starts from zero. */
  cancel (fileId: string): Progress {
    this.downloading.cancel(fileId)
    this.saves.abortFile(toHex(this.table.descriptor(fileId).fileId), 'the download was cancelled')
    return this.progress(fileId)
  }

  /**
   * Saves the file's plaintext to the absolute path `target` as it downloads: slices are
   * written as they arrive, and the file appears at `target` once it passed verification
   * (`progress().saves` says when). Does not request the file; a file already held is
   * written from the store. Saves of one file to several paths go on side by side; asking
   * again for a path being written changes nothing.
   */
  save (fileId: string, target: string, options: { overwrite?: boolean } = {}): Progress {
    this.saves.save(fileId, target, options.overwrite === true)
    return this.progress(fileId)
  }

  // ---- reading ------------------------------------------------------------------------

  progress (fileId: string): Progress {
    const descriptor = this.table.descriptor(fileId)
    return this.downloading.progress(descriptor, this.saves.statuses(toHex(descriptor.fileId)))
  }

  /** The files asked for here (in any state but cancelled), in priority order: cheaper than `files()`. */
  downloads (): Progress[] {
    return [...this.table.wanted.keys()].map(key => this.progress(key))
  }

  /** Every file known in the network, with its local progress. */
  files (): Progress[] {
    return this.store.listDescriptors().map(d => this.progress(toHex(d.fileId)))
  }

  /** The plaintext of a complete, verified file, each slice authenticated again as it is read. */
  readFile (fileId: string): Readable { return this.reads.readFile(fileId) }

  /**
   * Reads plaintext bytes `[start, end]` (inclusive; default the whole file), also while the
   * file is still downloading: slices already held are authenticated and served at once;
   * for the others the ranges that cover them jump the queue and the read waits for them.
   * A file that is not being fetched is requested. `verified` says whether the whole file
   * already passed the root-hash check; a file that failed it is never read.
   */
  openRead (fileId: string, range?: { start: number, end: number }): OpenRead { return this.reads.openRead(fileId, range) }

  // ---- network input and time ---------------------------------------------------------------

  /** One 512-byte event from an authenticated peer, routed by type. Bad input is dropped and counted. */
  receive (peer: string, event: Uint8Array, tMs: number = this.nowMs): void {
    if (this.closed) return
    if (tMs > this.nowMs) this.nowMs = tMs
    const type = event[HeaderOffset.type]!
    try {
      if (event.length !== EVENT_BYTES) throw new WireError('length', 'event must be 512 bytes')
      switch (type) {
        case EventType.slice: this.downloading.onSlice(peer, event); break
        case EventType.syncFile: this.serving.onRequest(peer, event); break
        case EventType.syncFileReply: this.downloading.onReply(peer, event); break
        case EventType.sync: this.ordinarySync.onSync(peer, event); break
        case EventType.windowHashesRequest: this.serving.onWindowHashesRequest(peer, event); break
        case EventType.windowHashes: this.downloading.onWindowHashes(peer, event); break
        default:
          if (!SHAREABLE_TYPES.has(type)) throw new WireError('type', `unexpected event type ${type}`)
          if (this.shares.ingest(event)) {
            this.ctx.counters.eventsAccepted++
            this.ordinarySync.noteNewEvent(peer)
          }
      }
    } catch (err) {
      if (!(err instanceof WireError)) throw err
      if (SHAREABLE_TYPES.has(type)) this.ctx.counters.eventsRejected++
      else this.ctx.counters.malformedEvents++
    }
  }

  /**
   * The host's event loop was busy `utilization` (0..1) of the last `ms` milliseconds: a
   * saturated loop is this node's own bottleneck, not the path's (see LoopLoad).
   */
  onLoopLoad (utilization: number, ms: number): void {
    this.downloading.requester.onLoopLoad(utilization, ms)
  }

  /** The periodic step: make arrivals durable, then each part's periodic job. */
  tick (tMs: number): void {
    this.ensureOpen()
    if (tMs > this.nowMs) this.nowMs = tMs
    // Durable writes are batched: an fsync and a transaction every few ticks, not every tick.
    if (this.nowMs - this.lastFlushMs >= FLUSH_INTERVAL_MS) {
      this.lastFlushMs = this.nowMs
      const background = this.options.backgroundSync === true
      this.flush(background)
      this.downloading.chargeFailedWindows()
      if (background) this.saves.syncInBackground()
    }
    this.downloading.tick()
    this.reads.tick()
    this.saves.tick()
    this.downloading.sendRequests()
    this.ordinarySync.tick()
    this.serving.pace(this.nowMs)
  }

  /**
   * Caps what this node sends and fetches, in file bytes per second over all peers (null:
   * none). The caps hold the pace the node keeps and asks for: a capped download asks its
   * peers to send no faster than its share.
   */
  setLimits (limits: Limits): void {
    this.currentLimits = { ...limits }
    const eventsPerFileByte = EVENT_BYTES / SLICE_PLAINTEXT_BYTES
    this.serving.setUploadCap(limits.maxUploadBytesPerS === null ? null : limits.maxUploadBytesPerS * eventsPerFileByte)
    this.downloading.requester.setDownloadCap(limits.maxDownloadBytesPerS === null ? null : limits.maxDownloadBytesPerS / SLICE_PLAINTEXT_BYTES)
  }

  limits (): Limits {
    return { ...this.currentLimits }
  }

  /** The path to a peer as the congestion control of downloads sees it, or null. */
  pathTo (peer: string): PathReport | null {
    return this.downloading.requester.pathOf(peer)
  }

  /**
   * Sends the slices whose pace allows them by `tMs`; returns when the next is due, or null.
   * A host calls it between ticks when that is sooner than the next tick.
   */
  pace (tMs: number): number | null {
    this.ensureOpen()
    if (tMs > this.nowMs) this.nowMs = tMs
    return this.serving.pace(this.nowMs)
  }

  /** Writes what arrived and records it; `background`: the fdatasync runs on the thread pool. */
  private flush (background = false): void {
    // A file that just became whole is fetched no more either way.
    this.table.flush(this.durability(background), this.ctx.ledger, key => this.downloading.requester.dropFile(key))
  }

  private durability (background: boolean): Durability {
    if (this.options.durable === false) return 'none'
    return background ? 'background' : 'now'
  }

  // ---- maintenance --------------------------------------------------------------------

  /**
   * Drops every projection and rebuilds it from the event log and the slice files (each
   * stored record is authenticated again; whole files are re-verified).
   */
  reproject (): void {
    this.flush()
    this.table.rebuild(this.options.networkKey)
  }

  /** Projection tables as JSON-able rows, for comparing states. */
  dumpProjections (): Record<string, unknown[]> {
    this.flush()
    return this.store.dumpProjections()
  }

  /** Peers that supplied windows that failed their hash (since this node started): their public keys, with how many files. */
  suspects (): Map<string, number> {
    return new Map([...this.downloading.suspects()].map(([peer, files]) => [peer, files.size]))
  }

  /** Bad windows per peer, all time (recorded and not yet recorded): hex key → count. */
  badWindows (): Map<string, number> {
    const counts = new Map(this.store.badWindowPeers().map(p => [toHex(p.peerPk), p.badWindows]))
    for (const [peer, delta] of this.ctx.ledger.deltas) if (delta.badWindows > 0) counts.set(peer, (counts.get(peer) ?? 0) + delta.badWindows)
    return counts
  }

  /** False while a peer is asked for nothing (it supplied bad windows of several files). */
  trusted (peer: string): boolean {
    return this.downloading.trusted(peer)
  }

  /** Asks a peer again that was excluded for supplying bad windows. */
  trust (peer: string): void {
    this.downloading.trust(peer)
  }

  stats (): Readonly<NodeStats> {
    const requester = this.downloading.requester
    return {
      ...this.ctx.counters,
      requestsOvertaken: requester.givenUpBy.overtaken,
      requestsDrained: requester.givenUpBy.drained,
      requestsUnanswered: requester.givenUpBy.timedOut,
      slicesLate: requester.lateSlices
    }
  }

  peerCounters (peer: string): PeerCounters | null {
    this.flush()
    const row = this.store.getPeer(fromHex(peer, 32))
    return row === null ? null : { slicesAccepted: row.slicesAccepted, slicesRejected: row.slicesRejected, requestsAnswered: row.requestsAnswered, badWindows: row.badWindows, lastSeenMs: row.lastSeenMs }
  }

  close (): void {
    if (this.closed) return
    this.saves.abortAll('the node stopped before the file was saved')
    this.flush()
    this.table.closeAll()
    this.store.close()
    this.closed = true
  }

  private ensureOpen (): void {
    if (this.closed) throw new QuietError('conflict', 'node is closed')
  }
}
