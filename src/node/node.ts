import fs from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { Store } from '../store/store.js'
import { SliceFileWriter } from '../store/slice-file.js'
import { LocalFile, sliceFilePath } from './local-file.js'
import type { Durability } from './local-file.js'
import { SaveTarget, removePartial } from './save-target.js'
import { QuietError } from './errors.js'
import { percentOf } from './progress.js'
import { applyShared, applyWant, openSharedEvent, openWantEvent, replayLog, sharedEventId, sharedFileId, syncKeyOf } from './projections.js'
import { bloomBuild, bloomHas, bloomSalt, windowBitsFor } from '../sync/bloom.js'
import { SliceEncryptor, RECORDS_PER_BATCH } from '../files/encrypt.js'
import { openSliceRecord } from '../files/verify.js'
import { mediaTypeFor } from '../files/media-type.js'
import { Requester } from '../sync/requester.js'
import { planResponse } from '../sync/responder.js'
import { SpeedMeter } from '../sync/speed.js'
import { randomBytes, id as idOf, AEAD_KEY_BYTES, AEAD_NONCE_BYTES } from '../crypto/index.js'
import { bytesEqual, fromHex, toHex } from '../bytes.js'
import {
  EVENT_BYTES, EventType, WireError, HeaderOffset, NONCE_PREFIX_BYTES, SLICE_PLAINTEXT_BYTES, SLICE_RECORD_BYTES,
  MAX_NAME_BYTES, MAX_PRIORITY, MIN_PRIORITY,
  decodeSliceEvent, encodeSliceEventInto, encodeSignedEvent, openSignedEvent, sliceNonce, truncateUtf8,
  encodeDescriptorPlaintext, sealContentPayload, encodeWantPayload, encodePeerPlaintext, encodeAddressPlaintext, encodeMessagePlaintext,
  encodeSyncPayload, decodeSyncPayload, SHAREABLE_TYPES, SYNC_NONCE_BYTES,
  decodeSyncFileRequestPayload, decodeSyncFileReplyPayload, encodeSyncFileRequestPayload, encodeSyncFileReplyPayload
} from '../wire/index.js'
import type { KeyPair } from '../crypto/index.js'
import type { Transport } from '../net/transport.js'
import type { RequestableFile, RequesterOptions } from '../sync/requester.js'
import type { DescriptorRow, WantedRow } from '../store/store.js'
import type { FileState, Progress } from './progress.js'
import type { WantActionName } from '../wire/want-control.js'

export interface NodeOptions {
  /** Directory holding the database and the slice files; created if missing. */
  dataDir: string
  identity: KeyPair
  /** The network's symmetric key: descriptors are encrypted with it. */
  networkKey: Uint8Array
  transport?: Transport
  /** fdatasync slice files before recording slices as held (default true). */
  durable?: boolean
  /**
   * Run the periodic fdatasync on the thread pool instead of blocking (default false: the
   * simulations step time by hand and expect the store to follow within the step).
   */
  backgroundSync?: boolean
  requester?: Partial<RequesterOptions>
  /** Clock value until the first tick. */
  startMs?: number
}

export interface SharedFile {
  fileId: string
  name: string
  size: number
  mediaType: string
}

export interface RequestOptions {
  /** 1 (lowest) to 10 (highest); default 5. */
  priority?: number
  /** Give up after this long (0 or absent: never). */
  ttlMs?: number
}

/** Counters of what this node saw; dropped input is counted here, never thrown. */
export interface NodeStats {
  malformedEvents: number
  slicesAccepted: number
  slicesDuplicate: number
  slicesRejected: number
  slicesUnsolicited: number
  slicesSent: number
  requestsSent: number
  requestsAnswered: number
  requestsTimedOut: number
  repliesReceived: number
  eventsAccepted: number
  eventsRejected: number
  syncRequestsSent: number
  syncEventsSent: number
  localRecordsDamaged: number
  /** Slices that arrived while their file could not be written (a full disk). */
  slicesDroppedStalled: number
}

export interface PeerCounters {
  slicesAccepted: number
  slicesRejected: number
  requestsAnswered: number
  lastSeenMs: number
}

interface SliceWaiter {
  local: LocalFile
  sliceNo: number
  resolve: () => void
  reject: (err: Error) => void
}

/** Where ordinary sync stands with one peer. */
interface SyncWalk {
  lastAtMs: number
  /** Advances through a permutation of the windows. */
  step: number
  /** Shared events new to this node that came from the peer since it was last asked. */
  newEvents: number
  /** Answers in a row that brought nothing new. */
  quietAnswers: number
  /** Fewer quiet answers in a row than there are windows: this node may be catching up. */
  passUnfinished: boolean
  /** The first sync key of the window last asked for. */
  windowStart: number
}

/** A byte range being read (inclusive), and whether the whole file passed verification yet. */
export interface OpenRead {
  stream: Readable
  start: number
  end: number
  size: number
  verified: boolean
  name: string
  mediaType: string
}

/** Slices past the one a reader waits for that are fetched with it: about 1 MB of read-ahead. */
export const READ_AHEAD_SLICES = 2400

const DB_FILE = 'quiet-files.db'
/** How often each peer is asked for one window of ordinary sync. */
export const SYNC_INTERVAL_MS = 1000
/**
 * How soon a peer is asked for the next window when the last answer brought events this node
 * did not have: a member who joins late catches up at several windows a second, and the
 * pace falls back to SYNC_INTERVAL_MS once the windows come back empty.
 */
export const SYNC_FOLLOW_UP_MS = 100
/** How often accepted slices are made durable and recorded. */
export const FLUSH_INTERVAL_MS = 50
/** Events one ordinary sync answer carries at most. */
export const SYNC_LIMIT = 64
const EVENT_COUNT_KEY = 'event_count'
export const DEFAULT_PRIORITY = 5
/** Slices a save copies from the store per tick, when they arrived before the save began. */
export const SAVE_FILL_SLICES_PER_TICK = 4096
/** Finished saves remembered per file beside the ones still writing. */
/** How long a download stalled on a write error (a full disk) waits before trying again. */
export const STALL_RETRY_MS = 10_000

/** Whether an error means the disk is full (from the file system or from SQLite). */
function isDiskFull (err: unknown): boolean {
  const code = (err as { code?: unknown }).code
  return code === 'ENOSPC' || code === 'SQLITE_FULL' || code === 'EDQUOT'
}

/** How the slice file of a share still being written is named. */
const UNFINISHED_SHARE_SUFFIX = '.tmp'
const UNFINISHED_SHARE = /^share-[0-9a-f]{16}\.tmp$/

export const KEPT_FINISHED_SAVES = 4

/**
 * A quiet-files peer: the store, the slice files, focused sync, driven by `tick(tMs)` and
 * by `receive(peer, event)` from a transport. Everything here is synchronous except
 * reading a source file to share.
 */
export class Node {
  readonly publicKey: string
  private readonly store: Store
  private readonly locals = new Map<string, LocalFile>()
  private wanted = new Map<string, WantedRow>()
  private readonly meters = new Map<string, SpeedMeter>()
  private readonly requester: Requester
  private readonly peerDeltas = new Map<string, { accepted: number, rejected: number, answered: number }>()
  private transport: Transport | null
  private eventCount: number
  private savedEventCount: number
  private nowMs: number
  private closed = false
  private readonly durable: boolean
  private readonly plaintextScratch = new Uint8Array(SLICE_PLAINTEXT_BYTES)
  private readonly nonceScratch = new Uint8Array(AEAD_NONCE_BYTES)
  /** Plaintext of a run of stored slices copied into a save (allocated when first needed). */
  private runPlaintext: Uint8Array | null = null
  private readonly counters: NodeStats = {
    malformedEvents: 0, slicesAccepted: 0, slicesDuplicate: 0, slicesRejected: 0, slicesUnsolicited: 0, slicesSent: 0,
    requestsSent: 0, requestsAnswered: 0, requestsTimedOut: 0, repliesReceived: 0,
    eventsAccepted: 0, eventsRejected: 0, syncRequestsSent: 0, syncEventsSent: 0, localRecordsDamaged: 0, slicesDroppedStalled: 0
  }
  /** Per peer: when it was last asked, and how far the walk over its windows got. */
  private readonly syncWalks = new Map<string, SyncWalk>()
  private lastFlushMs = -Infinity
  private readonly waiters = new Set<SliceWaiter>()
  /** Per file, the saves asked for, oldest first; finished ones stay (a few) so followers can read how they ended. */
  private readonly saves = new Map<string, SaveTarget[]>()
  /** Saves written down in the store, to be taken up again after a restart until they end. */
  private readonly savesOnRecord = new Map<SaveTarget, Uint8Array>()
  /** When each download stalled on a write error, for retrying it. */
  private readonly stalledSince = new Map<string, number>()
  private lastSliceFile = { id: new Uint8Array(0), key: '' }

  private constructor (private readonly options: NodeOptions) {
    if (options.networkKey.length !== AEAD_KEY_BYTES) throw new QuietError('invalid_argument', 'network key must be 32 bytes')
    fs.mkdirSync(options.dataDir, { recursive: true })
    this.store = Store.open(path.join(options.dataDir, DB_FILE))
    this.publicKey = toHex(options.identity.publicKey)
    this.transport = options.transport ?? null
    this.durable = options.durable ?? true
    this.requester = new Requester(options.requester)
    this.eventCount = this.store.getMeta(EVENT_COUNT_KEY) ?? 0
    this.savedEventCount = this.eventCount
    this.nowMs = options.startMs ?? 0
    this.loadWanted()
    this.resumeSaves()
    this.removeUnfinishedShares()
  }

  /** A share cut off (the process killed) leaves its half-written slice file: nothing refers to it. */
  private removeUnfinishedShares (): void {
    const dir = path.join(this.options.dataDir, 'slices')
    let names: string[]
    try {
      names = fs.readdirSync(dir)
    } catch {
      return
    }
    for (const name of names) if (UNFINISHED_SHARE.test(name)) fs.rmSync(path.join(dir, name), { force: true })
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

  // ---- sharing ----------------------------------------------------------------------

  /** Slices, encrypts and stores a file from disk, then announces its descriptor. */
  async share (filePath: string, options: { name?: string, mediaType?: string, message?: string } = {}): Promise<SharedFile> {
    let fd: number
    try {
      fd = fs.openSync(filePath, 'r')
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new QuietError('not_found', `no such file: ${filePath}`)
      if (code === 'EACCES' || code === 'EPERM') throw new QuietError('permission_denied', `permission denied: ${filePath}`)
      throw new QuietError('invalid_argument', `cannot read ${filePath}: ${(err as Error).message}`)
    }
    if (!fs.fstatSync(fd).isFile()) {
      fs.closeSync(fd)
      throw new QuietError('invalid_argument', `not a regular file: ${filePath}`)
    }
    const name = options.name ?? path.basename(filePath)
    return await this.shareStream(fs.createReadStream(filePath, { fd, highWaterMark: 1 << 20 }), { ...options, name, mediaType: options.mediaType ?? mediaTypeFor(name) })
  }

  /** Same as `share`, from any byte stream (an upload, a pipe). Memory stays constant. */
  async shareStream (source: AsyncIterable<Uint8Array>, options: { name: string, mediaType?: string, message?: string }): Promise<SharedFile> {
    this.ensureOpen()
    const name = truncateUtf8(options.name, MAX_NAME_BYTES)
    const mediaType = options.mediaType ?? mediaTypeFor(name)
    const key = randomBytes(AEAD_KEY_BYTES)
    const noncePrefix = randomBytes(NONCE_PREFIX_BYTES)
    const writer = new SliceFileWriter(path.join(this.options.dataDir, 'slices', `share-${toHex(randomBytes(8))}${UNFINISHED_SHARE_SUFFIX}`))
    let result
    try {
      const encryptor = new SliceEncryptor(key, noncePrefix, (_first, records) => writer.append(records))
      for await (const chunk of source) encryptor.push(chunk)
      result = encryptor.finish()
      writer.commit(sliceFilePath(this.options.dataDir, result.fileId))
    } catch (err) {
      writer.abort()
      throw err
    }
    const descriptor = { fileId: result.fileId, size: result.size, noncePrefix, key, rootHash: result.rootHash, name, mediaType }
    const eventBytes = this.signContent(EventType.attachmentDescriptor, encodeDescriptorPlaintext(descriptor))
    this.store.transaction(() => {
      this.ingestEvent(eventBytes)
      const local = LocalFile.adoptComplete(this.options.dataDir, this.store.getDescriptor(descriptor.fileId)!)
      local.persist(this.store)
      this.replaceLocal(local)
    })
    this.broadcast(eventBytes)
    if (options.message !== undefined) this.postMessage(options.message, toHex(descriptor.fileId))
    return { fileId: toHex(descriptor.fileId), name, size: result.size, mediaType }
  }

  /** Announces this member's display name and the addresses peers should use (none: keep the last ones). */
  announce (name: string, addresses: Array<{ host: string, port: number }> = []): void {
    this.broadcast(this.publishOwn(this.signContent(EventType.peer, encodePeerPlaintext(name))))
    // One event per address, all signed at this same time: together they replace the earlier ones.
    for (const address of addresses) this.broadcast(this.publishOwn(this.signContent(EventType.address, encodeAddressPlaintext(address))))
  }

  /** Posts a short text into the network, optionally about a file. */
  postMessage (text: string, fileId?: string): void {
    const fileIdBytes = fileId === undefined ? null : this.knownDescriptor(fileId).fileId
    this.broadcast(this.publishOwn(this.signContent(EventType.message, encodeMessagePlaintext({ fileId: fileIdBytes, text }))))
  }

  /**
   * Takes a shared event (descriptor, peer, address, message) from anywhere: a peer, sync,
   * a test. It must verify and decrypt with the network key, or WireError is thrown.
   * Returns false when it was already known.
   */
  ingestEvent (bytes: Uint8Array): boolean {
    const shared = openSharedEvent(bytes, this.options.networkKey)
    const eventId = sharedEventId(shared)
    if (this.store.hasEvent(eventId)) return false
    this.store.transaction(() => {
      this.store.appendEvent(eventId, bytes[HeaderOffset.type]!, sharedFileId(shared), bytes, Math.floor(this.nowMs), syncKeyOf(eventId))
      applyShared(this.store, shared)
      this.saveEventCount()
    })
    return true
  }

  /** The members known in the network, this node included once it announced itself. */
  members (): Array<{ publicKey: string, name: string }> {
    return this.store.listMembers().map(m => ({ publicKey: toHex(m.peerPk), name: m.name }))
  }

  /** The newest announced address of every member. */
  addresses (): Array<{ publicKey: string, host: string, port: number }> {
    return this.store.listAddresses().map(a => ({ publicKey: toHex(a.peerPk), host: a.host, port: a.port }))
  }

  messages (): Array<{ author: string, fileId: string | null, text: string, createdAtMs: number }> {
    return this.store.listMessages().map(m => ({ author: toHex(m.authorPk), fileId: m.fileId === null ? null : toHex(m.fileId), text: m.text, createdAtMs: m.createdAtMs }))
  }

  /** The public parts of a file's descriptor: who shared it and when, its root hash and windows (never its key). */
  descriptorInfo (fileId: string): { sharedBy: string, sharedAtMs: number, rootHash: string, windows: number } {
    const d = this.knownDescriptor(fileId)
    return { sharedBy: toHex(d.sharedBy), sharedAtMs: d.sharedAtMs, rootHash: toHex(d.rootHash), windows: d.windows }
  }

  /** The signed descriptor event this node holds for a file (what peers are sent). */
  descriptorEvent (fileId: string): Uint8Array {
    const descriptor = this.knownDescriptor(fileId)
    const event = this.store.getEvent(descriptor.eventId)
    if (event === null) throw new QuietError('corrupt', `descriptor event of ${fileId} is missing from the log`)
    return event
  }

  private signContent (type: number, plaintext: Uint8Array): Uint8Array {
    const header = this.header(type, 0)
    return encodeSignedEvent(header, sealContentPayload(header, plaintext, this.options.networkKey), this.options.identity.secretKey)
  }

  private publishOwn (eventBytes: Uint8Array): Uint8Array {
    this.ingestEvent(eventBytes)
    return eventBytes
  }

  private broadcast (eventBytes: Uint8Array): void {
    for (const peer of this.transport?.peers() ?? []) this.send(peer, eventBytes)
  }

  // ---- focus: request, pause, resume, cancel ---------------------------------------------

  requestFile (fileId: string, options: RequestOptions = {}): Progress {
    const descriptor = this.knownDescriptor(fileId)
    const priority = options.priority ?? DEFAULT_PRIORITY
    const ttlMs = options.ttlMs ?? 0
    if (!Number.isInteger(priority) || priority < MIN_PRIORITY || priority > MAX_PRIORITY) {
      throw new QuietError('invalid_argument', `priority must be an integer from ${MIN_PRIORITY} to ${MAX_PRIORITY}`)
    }
    if (!Number.isSafeInteger(ttlMs) || ttlMs < 0) throw new QuietError('invalid_argument', 'ttl must be a non-negative number of milliseconds')
    const existing = this.localFile(descriptor)
    if (existing?.status === 'complete') return this.progress(fileId)
    this.store.transaction(() => {
      if (existing?.status === 'failed') this.dropLocal(descriptor)
      this.logWant(descriptor.fileId, 'request', priority, ttlMs)
      const local = this.localFile(descriptor) ?? LocalFile.open(this.options.dataDir, descriptor, this.store)
      local.persist(this.store)
      this.replaceLocal(local)
    })
    return this.progress(fileId)
  }

  /** Stops asking for the file; slices already on their way are still stored. */
  pause (fileId: string): Progress {
    const row = this.activeWant(fileId)
    if (row.state === 'expired') throw new QuietError('conflict', 'the request has expired; request the file again')
    if (row.state === 'wanted') this.store.transaction(() => this.logWant(row.fileId, 'pause', row.priority, 0))
    return this.progress(fileId)
  }

  resume (fileId: string): Progress {
    const row = this.activeWant(fileId)
    if (row.state === 'expired') throw new QuietError('conflict', 'the request has expired; request the file again')
    if (row.state === 'paused') this.store.transaction(() => this.logWant(row.fileId, 'resume', row.priority, 0))
    return this.progress(fileId)
  }

  /** Stops the download and deletes what was fetched; requesting again starts from zero. */
  cancel (fileId: string): Progress {
    const row = this.activeWant(fileId)
    const descriptor = this.knownDescriptor(fileId)
    this.store.transaction(() => {
      this.logWant(row.fileId, 'cancel', 0, 0)
      this.dropLocal(descriptor)
    })
    for (const target of this.saves.get(toHex(descriptor.fileId)) ?? []) target.abort('the download was cancelled')
    this.forgetEndedSaves()
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
    const descriptor = this.knownDescriptor(fileId)
    const key = toHex(descriptor.fileId)
    const previous = this.saves.get(key) ?? []
    if (previous.some(t => t.state === 'writing' && t.path === target)) return this.progress(fileId)
    const next = SaveTarget.open(target, descriptor.size, descriptor.slices, options.overwrite === true)
    // An ended save to this path leaves the record first, so it cannot take the new one with it.
    this.forgetEndedSaves()
    this.store.putSave(descriptor.fileId, target, options.overwrite === true, next.partialPath)
    this.savesOnRecord.set(next, descriptor.fileId)
    // An earlier, finished save to this path is superseded; of the others only the last few finished ones are kept.
    const others = previous.filter(t => t.path !== target)
    let finishedToDrop = others.filter(t => t.state !== 'writing').length - KEPT_FINISHED_SAVES
    this.saves.set(key, [...others.filter(t => t.state === 'writing' || finishedToDrop-- <= 0), next])
    return this.progress(fileId)
  }

  // ---- reading ------------------------------------------------------------------------

  progress (fileId: string): Progress {
    const descriptor = this.knownDescriptor(fileId)
    const key = toHex(descriptor.fileId)
    const local = this.localFile(descriptor)
    const want = this.wanted.get(key) ?? null
    const state = this.stateOf(descriptor, local, want)
    const bytesReceived = local?.haveBytes ?? 0
    const speed = state === 'active' ? (this.meters.get(key)?.rate(this.nowMs) ?? 0) : 0
    const remaining = descriptor.size - bytesReceived
    const saves = this.saves.get(key) ?? []
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
      reason: local?.writeError ?? local?.reason ?? null,
      saving: saves.at(-1)?.status() ?? null,
      saves: saves.map(t => t.status())
    }
  }

  /** Every file known in the network, with its local progress. */
  /** The files asked for here (in any state but cancelled), in priority order: cheaper than `files()`. */
  downloads (): Progress[] {
    return [...this.wanted.keys()].map(key => this.progress(key))
  }

  files (): Progress[] {
    return this.store.listDescriptors().map(d => this.progress(toHex(d.fileId)))
  }

  /**
   * The plaintext of a complete, verified file. Every slice is authenticated again as it is
   * read; a damaged record ends the stream with an error instead of wrong bytes.
   */
  readFile (fileId: string): Readable {
    const descriptor = this.knownDescriptor(fileId)
    const local = this.localFile(descriptor)
    if (local === null || local.status !== 'complete') {
      throw new QuietError('not_ready', local?.status === 'failed' ? `file failed verification: ${local.reason ?? ''}` : 'file is not complete')
    }
    return Readable.from(this.readPlainRange(local, 0, descriptor.size - 1))
  }

  /**
   * Reads plaintext bytes `[start, end]` (inclusive; default the whole file), also while the
   * file is still downloading: slices already held are authenticated and served at once;
   * for the others the ranges that cover them jump the queue and the read waits for them.
   * A file that is not being fetched is requested. `verified` says whether the whole file
   * already passed the root-hash check; a file that failed it is never read.
   */
  openRead (fileId: string, range?: { start: number, end: number }): OpenRead {
    const descriptor = this.knownDescriptor(fileId)
    let local = this.localFile(descriptor)
    if (local?.status === 'failed') throw new QuietError('not_ready', `file failed verification: ${local.reason ?? ''}`)
    const want = this.wanted.get(toHex(descriptor.fileId))
    if (local?.status !== 'complete' && (want === undefined || want.state === 'expired')) {
      this.requestFile(fileId)
      local = this.localFile(descriptor)
    }
    const size = descriptor.size
    const start = range?.start ?? 0
    const end = range?.end ?? size - 1
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end >= size || start > end + 1 || (range !== undefined && start > end)) {
      throw new QuietError('range_not_satisfiable', `range ${start}-${end} is outside a file of ${size} bytes`, { size })
    }
    return {
      stream: Readable.from(this.readPlainRange(local!, start, end)),
      start, end, size, verified: local!.status === 'complete', name: descriptor.name, mediaType: descriptor.mediaType
    }
  }

  private async * readPlainRange (local: LocalFile, start: number, end: number): AsyncGenerator<Buffer> {
    const { descriptor } = local
    const lastSlice = Math.floor(end / SLICE_PLAINTEXT_BYTES)
    let position = start
    while (position <= end) {
      const first = Math.floor(position / SLICE_PLAINTEXT_BYTES)
      if (!local.have.has(first)) await this.waitForSlice(local, first)
      if (local.status === 'failed') throw new QuietError('not_ready', `file failed verification: ${local.reason ?? ''}`)
      let count = 1
      while (count < RECORDS_PER_BATCH && first + count <= lastSlice && local.have.has(first + count)) count++
      const plain = Buffer.allocUnsafe(count * SLICE_PLAINTEXT_BYTES)
      const damaged = local.readPlaintext(first, count, plain)
      if (damaged >= 0) throw new QuietError('corrupt', `stored slice ${damaged} of ${toHex(descriptor.fileId)} does not authenticate`)
      const from = position - first * SLICE_PLAINTEXT_BYTES
      const to = Math.min(end + 1, (first + count) * SLICE_PLAINTEXT_BYTES) - first * SLICE_PLAINTEXT_BYTES
      yield plain.subarray(from, to)
      position = first * SLICE_PLAINTEXT_BYTES + to
    }
  }

  /** Resolves once slice `sliceNo` is held; its ranges and some read-ahead become urgent. */
  private async waitForSlice (local: LocalFile, sliceNo: number): Promise<void> {
    const last = Math.min(local.descriptor.slices - 1, sliceNo + READ_AHEAD_SLICES)
    for (let r = local.layout.rangeOf(sliceNo); r <= local.layout.rangeOf(last); r++) {
      if (local.missing(r) > 0) local.urgent.add(r)
    }
    await new Promise<void>((resolve, reject) => this.waiters.add({ local, sliceNo, resolve, reject }))
  }

  /** Wakes readers whose slice arrived; fails those whose file went away. */
  private settleWaiters (): void {
    for (const waiter of this.waiters) {
      const { local } = waiter
      const current = this.locals.get(local.key)
      const want = this.wanted.get(local.key)
      let error: QuietError | null = null
      if (current !== local) error = new QuietError('conflict', 'the download was cancelled')
      else if (local.status === 'failed') error = new QuietError('not_ready', `file failed verification: ${local.reason ?? ''}`)
      else if (want?.state === 'expired') error = new QuietError('conflict', 'the download expired')
      if (error === null && !local.have.has(waiter.sliceNo)) continue
      this.waiters.delete(waiter)
      if (error === null) waiter.resolve()
      else waiter.reject(error)
    }
    for (const local of this.locals.values()) {
      for (const r of local.urgent) if (local.missing(r) === 0) local.urgent.delete(r)
    }
  }

  // ---- network input ------------------------------------------------------------------------

  /** One 512-byte event from an authenticated peer. Bad input is dropped and counted. */
  receive (peer: string, event: Uint8Array, tMs: number = this.nowMs): void {
    if (this.closed) return
    if (tMs > this.nowMs) this.nowMs = tMs
    try {
      if (event.length !== EVENT_BYTES) throw new WireError('length', 'event must be 512 bytes')
      switch (event[HeaderOffset.type]) {
        case EventType.slice: this.onSlice(peer, event); break
        case EventType.syncFile: this.onRequest(peer, event); break
        case EventType.syncFileReply: this.onReply(peer, event); break
        case EventType.sync: this.onSync(peer, event); break
        default:
          if (!SHAREABLE_TYPES.has(event[HeaderOffset.type]!)) throw new WireError('type', `unexpected event type ${event[HeaderOffset.type]}`)
          if (this.ingestEvent(event)) {
            this.counters.eventsAccepted++
            const walk = this.syncWalks.get(peer)
            if (walk !== undefined) walk.newEvents++
          }
      }
    } catch (err) {
      if (!(err instanceof WireError)) throw err
      if (SHAREABLE_TYPES.has(event[HeaderOffset.type]!)) this.counters.eventsRejected++
      else this.counters.malformedEvents++
    }
  }

  private onSlice (peer: string, bytes: Uint8Array): void {
    const slice = decodeSliceEvent(bytes)
    const key = this.sliceFileKey(slice.fileId)
    const local = this.locals.get(key)
    const want = this.wanted.get(key)
    if (local === undefined || want === undefined || local.status !== 'partial') {
      this.counters.slicesUnsolicited++
      return
    }
    const { descriptor } = local
    const range = slice.sliceNo < descriptor.slices ? local.layout.rangeOf(slice.sliceNo) : -1
    if (range >= 0) this.requester.onSlice(peer, key, range, this.nowMs)
    if (range < 0 || !bytesEqual(slice.nonce, sliceNonce(descriptor.noncePrefix, slice.sliceNo, this.nonceScratch)) ||
        !openSliceRecord(slice.record, slice.sliceNo, descriptor, this.plaintextScratch, this.nonceScratch)) {
      this.counters.slicesRejected++
      this.peerDelta(peer).rejected++
      return
    }
    if (local.writeError !== null) {
      this.counters.slicesDroppedStalled++
      return
    }
    if (!local.accept(slice.sliceNo, slice.record)) {
      this.counters.slicesDuplicate++
      return
    }
    const targets = this.saves.get(key)
    if (targets !== undefined) for (const target of targets) target.add(slice.sliceNo, this.plaintextScratch)
    // The last missing slice: flush at the next tick, so the verdict does not wait out the interval.
    if (local.haveSlices === descriptor.slices) this.lastFlushMs = -Infinity
    this.counters.slicesAccepted++
    this.peerDelta(peer).accepted++
    this.meter(key).add(Math.min(SLICE_PLAINTEXT_BYTES, descriptor.size - slice.sliceNo * SLICE_PLAINTEXT_BYTES), this.nowMs)
  }

  private onRequest (peer: string, bytes: Uint8Array): void {
    const event = openSignedEvent(bytes, EventType.syncFile)
    if (toHex(event.header.signerPk) !== peer) throw new WireError('field', 'request signed by another peer')
    const request = decodeSyncFileRequestPayload(event.payload)
    const local = this.locals.get(toHex(request.fileId)) ?? this.loadLocal(request.fileId)
    const plan = planResponse(request, local?.have ?? null, local?.descriptor.slices ?? 0)
    const events: Uint8Array[] = []
    // One allocation for the whole answer; each event is a view into it.
    const eventBuffer = new Uint8Array(plan.send.length * EVENT_BYTES)
    if (local !== null && plan.send.length > 0) {
      const first = plan.send[0]!
      const records = local.readRecords(first, plan.send[plan.send.length - 1]! - first + 1)
      for (const sliceNo of plan.send) {
        const record = records.subarray((sliceNo - first) * SLICE_RECORD_BYTES, (sliceNo - first + 1) * SLICE_RECORD_BYTES)
        // Authenticated again on the way out: a damaged disk never feeds peers bad slices.
        if (!openSliceRecord(record, sliceNo, local.descriptor, this.plaintextScratch, this.nonceScratch)) {
          this.counters.localRecordsDamaged++
          local.forget(sliceNo)
          this.requester.rewind(local.key)
          continue
        }
        const at = events.length * EVENT_BYTES
        events.push(encodeSliceEventInto(eventBuffer.subarray(at, at + EVENT_BYTES), local.descriptor.fileId, sliceNo, local.descriptor.noncePrefix, record))
      }
    }
    const reply = encodeSyncFileReplyPayload({ ...request, bitmap: plan.responderBitmap, sending: events.length })
    this.send(peer, encodeSignedEvent(this.header(EventType.syncFileReply, 0), reply, this.options.identity.secretKey))
    for (const e of events) this.send(peer, e)
    this.counters.requestsAnswered++
    this.counters.slicesSent += events.length
    this.peerDelta(peer).answered++
  }

  /** Ordinary sync: send the window's shared events the requester's filter does not hold. */
  private onSync (peer: string, bytes: Uint8Array): void {
    const event = openSignedEvent(bytes, EventType.sync)
    if (toHex(event.header.signerPk) !== peer) throw new WireError('field', 'sync request signed by another peer')
    const request = decodeSyncPayload(event.payload)
    const salt = bloomSalt(event.header.signerPk, request.windowBits, request.window, request.nonce)
    const span = 2 ** (32 - request.windowBits)
    let sent = 0
    for (const { eventId, body } of this.store.sharedEventsInRange(request.window * span, (request.window + 1) * span - 1)) {
      if (sent >= Math.min(request.limit, SYNC_LIMIT)) break
      if (bloomHas(request.bloom, salt, eventId)) continue
      this.send(peer, body)
      sent++
    }
    this.counters.syncEventsSent += sent
  }

  /**
   * Asks each peer, once per interval, for one window (in a scattered order) of shared
   * events; sooner while its answers bring new events, and the same part of the key space
   * again while they come near the answer's limit (that window holds more).
   */
  private sendSyncRequests (): void {
    const due = (this.transport?.peers() ?? []).filter(peer => {
      const walk = this.syncWalks.get(peer)
      if (walk === undefined) return true
      const elapsed = this.nowMs - walk.lastAtMs
      return elapsed >= SYNC_INTERVAL_MS || (elapsed >= SYNC_FOLLOW_UP_MS && (walk.newEvents > 0 || walk.passUnfinished))
    })
    if (due.length === 0) return
    const windowBits = windowBitsFor(this.store.sharedEventCount())
    const span = 2 ** (32 - windowBits)
    for (const peer of due) {
      let walk = this.syncWalks.get(peer)
      if (walk === undefined) this.syncWalks.set(peer, walk = { lastAtMs: 0, step: 0, newEvents: 0, quietAnswers: -1, passUnfinished: true, windowStart: 0 })
      walk.quietAnswers = walk.newEvents > 0 ? 0 : walk.quietAnswers + 1
      walk.passUnfinished = walk.quietAnswers < 2 ** windowBits
      let window: number
      if (walk.newEvents >= SYNC_LIMIT / 2) {
        window = Math.floor(walk.windowStart / span)
      } else {
        // An odd multiplier permutes the counter modulo 2^bits: every window, in a scattered order.
        window = (Math.imul(walk.step++, 0x9e3779b1) >>> 0) % 2 ** windowBits
      }
      walk.lastAtMs = this.nowMs
      walk.newEvents = 0
      walk.windowStart = window * span
      const nonce = randomBytes(SYNC_NONCE_BYTES)
      const salt = bloomSalt(this.options.identity.publicKey, windowBits, window, nonce)
      const held = this.store.sharedEventsInRange(window * span, (window + 1) * span - 1).map(e => e.eventId)
      const payload = encodeSyncPayload({ windowBits, window, nonce, limit: SYNC_LIMIT, bloom: bloomBuild(salt, held) })
      this.send(peer, encodeSignedEvent(this.header(EventType.sync, 0), payload, this.options.identity.secretKey))
      this.counters.syncRequestsSent++
    }
  }

  private onReply (peer: string, bytes: Uint8Array): void {
    const event = openSignedEvent(bytes, EventType.syncFileReply)
    if (toHex(event.header.signerPk) !== peer) throw new WireError('field', 'reply signed by another peer')
    const reply = decodeSyncFileReplyPayload(event.payload)
    this.counters.repliesReceived++
    const key = toHex(reply.fileId)
    const local = this.locals.get(key)
    if (local === undefined || reply.firstSlice >= local.descriptor.slices) return
    const range = local.layout.rangeOf(reply.firstSlice)
    if (local.layout.rangeStart(range) !== reply.firstSlice) return
    this.requester.onReply(peer, key, range, reply.requestId, reply.sending, this.nowMs)
  }

  // ---- time ---------------------------------------------------------------------------

  /** The periodic step: make arrivals durable, expire, time out, send new requests. */
  tick (tMs: number): void {
    this.ensureOpen()
    if (tMs > this.nowMs) this.nowMs = tMs
    // Durable writes are batched: an fsync and a transaction every few ticks, not every tick.
    if (this.nowMs - this.lastFlushMs >= FLUSH_INTERVAL_MS) {
      this.lastFlushMs = this.nowMs
      const background = this.options.backgroundSync === true
      this.flush(background)
      // Saved files become durable as they fill, so the fdatasync before the rename is short.
      if (background) for (const targets of this.saves.values()) for (const target of targets) target.syncInBackground()
    }
    this.expireRequests()
    this.retryStalled()
    this.counters.requestsTimedOut += this.requester.expire(this.nowMs)
    if (this.waiters.size > 0) this.settleWaiters()
    if (this.saves.size > 0) {
      this.advanceSaves()
      this.forgetEndedSaves()
    }
    this.sendRequests()
    this.sendSyncRequests()
  }

  /** Writes what arrived and records it; `background`: the fdatasync runs on the thread pool. */
  private flush (background = false): void {
    let dirty = this.peerDeltas.size > 0 || this.eventCount !== this.savedEventCount
    for (const local of this.locals.values()) dirty ||= local.needsFlush
    if (!dirty) return
    try {
      this.store.transaction(() => {
        for (const local of this.locals.values()) {
          if (!local.flush(this.store, this.durability(background))) continue
          // The file just became whole: stop fetching it either way.
          this.requester.dropFile(local.key)
        }
        for (const [peer, delta] of this.peerDeltas) this.store.bumpPeer(fromHex(peer), delta, this.nowMs)
        this.peerDeltas.clear()
        this.saveEventCount()
      })
    } catch (err) {
      if (!isDiskFull(err)) throw err
      // The database's disk is full: what arrived cannot be recorded, so downloads stall
      // (and are tried again) as they do when their slice files cannot be written.
      for (const local of this.locals.values()) if (local.status === 'partial') local.writeError ??= 'no space left on device'
    }
  }

  /**
   * Downloads stalled on a write error are tried again every STALL_RETRY_MS: once space is
   * back they carry on from what they hold.
   */
  private retryStalled (): void {
    for (const local of this.locals.values()) {
      if (local.writeError === null) { this.stalledSince.delete(local.key); continue }
      const since = this.stalledSince.get(local.key)
      if (since === undefined) this.stalledSince.set(local.key, this.nowMs)
      else if (this.nowMs - since >= STALL_RETRY_MS) {
        this.stalledSince.delete(local.key)
        local.retryWrites()
        this.requester.rewind(local.key)
      }
    }
  }

  /**
   * Takes up the saves that were still going when the node last stopped. One that cannot
   * start again (its directory is gone, or its file was put in place meanwhile) is dropped.
   */
  private resumeSaves (): void {
    for (const row of this.store.listSaves()) {
      const descriptor = this.store.getDescriptor(row.fileId)
      try {
        // The last run's partial file goes: a new one is filled from what the store holds.
        if (row.partial !== null) removePartial(row.partial)
        if (descriptor === null) throw new QuietError('not_found', 'the file is no longer known')
        const target = SaveTarget.open(row.path, descriptor.size, descriptor.slices, row.overwrite)
        this.store.putSave(row.fileId, row.path, row.overwrite, target.partialPath)
        const key = toHex(row.fileId)
        this.saves.set(key, [...this.saves.get(key) ?? [], target])
        this.savesOnRecord.set(target, row.fileId)
      } catch (err) {
        if (!(err instanceof QuietError)) throw err
        this.store.deleteSave(row.fileId, row.path)
      }
    }
  }

  /** Saves that ended (saved, failed, cancelled) are not taken up again after a restart. */
  private forgetEndedSaves (): void {
    for (const [target, fileId] of this.savesOnRecord) {
      if (target.state === 'writing') continue
      this.store.deleteSave(fileId, target.path)
      this.savesOnRecord.delete(target)
    }
  }

  /** Finishes saves of files that became whole, first copying slices that came before the save. */
  private advanceSaves (): void {
    for (const [key, targets] of this.saves) {
      const local = this.locals.get(key)
      const want = this.wanted.get(key)
      for (const target of targets) {
        if (target.state !== 'writing') continue
        if (local?.status === 'failed') target.abort(`file failed verification: ${local.reason ?? ''}`)
        else if (want?.state === 'expired' && local?.status !== 'complete') target.abort('the download expired')
        else if (local?.status === 'complete') this.fillSave(target, local)
      }
    }
  }

  private fillSave (target: SaveTarget, local: LocalFile): void {
    const missing = target.missingSlices(SAVE_FILL_SLICES_PER_TICK)
    const plain = this.runPlaintext ??= new Uint8Array(RECORDS_PER_BATCH * SLICE_PLAINTEXT_BYTES)
    for (let i = 0; i < missing.length;) {
      const first = missing[i]!
      let count = 1
      while (i + count < missing.length && count < RECORDS_PER_BATCH && missing[i + count] === first + count) count++
      const damaged = local.readPlaintext(first, count, plain)
      if (damaged >= 0) {
        target.abort(`stored slice ${damaged} does not authenticate`)
        return
      }
      for (let k = 0; k < count; k++) target.add(first + k, plain.subarray(k * SLICE_PLAINTEXT_BYTES, (k + 1) * SLICE_PLAINTEXT_BYTES))
      i += count
    }
    if (missing.length < SAVE_FILL_SLICES_PER_TICK) target.finish()
  }

  private durability (background: boolean): Durability {
    if (!this.durable) return 'none'
    return background ? 'background' : 'now'
  }

  private expireRequests (): void {
    for (const row of this.wanted.values()) {
      if (row.state === 'expired' || row.ttlMs === 0 || this.nowMs < row.requestedAtMs + row.ttlMs) continue
      if (this.locals.get(toHex(row.fileId))?.status !== 'partial') continue
      this.store.transaction(() => this.logWant(row.fileId, 'expire', row.priority, 0))
    }
  }

  private sendRequests (): void {
    const peers = this.transport?.peers() ?? []
    if (peers.length === 0) return
    const files: RequestableFile[] = []
    // `wanted` is kept in priority order (see loadWanted). A paused file is not fetched,
    // except the ranges a reader waits for.
    for (const row of this.wanted.values()) {
      const local = this.locals.get(toHex(row.fileId))
      if (local?.status !== 'partial' || row.state === 'expired' || local.writeError !== null) continue
      const urgentRanges = local.urgent.size > 0 ? [...local.urgent] : undefined
      const background = row.state === 'wanted'
      if (background || urgentRanges !== undefined) files.push({ key: local.key, layout: local.layout, missing: r => local.missing(r), urgentRanges, background })
    }
    for (const planned of this.requester.plan(files, peers, this.nowMs)) {
      const local = this.locals.get(planned.fileKey)!
      const payload = encodeSyncFileRequestPayload({
        fileId: local.descriptor.fileId,
        requestId: planned.requestId,
        firstSlice: planned.firstSlice,
        rangeLength: planned.rangeLength,
        limit: planned.limit,
        bitmap: local.have.rangeBitmap(planned.firstSlice, planned.rangeLength)
      })
      this.send(planned.peer, encodeSignedEvent(this.header(EventType.syncFile, 0), payload, this.options.identity.secretKey))
      this.counters.requestsSent++
    }
  }

  // ---- maintenance --------------------------------------------------------------------

  /**
   * Drops every projection and rebuilds it from the event log and the slice files (each
   * stored record is authenticated again; whole files are re-verified).
   */
  reproject (): void {
    this.flush()
    for (const local of this.locals.values()) local.close()
    this.locals.clear()
    this.store.transaction(() => {
      this.store.clearProjections()
      replayLog(this.store, this.options.networkKey)
      for (const descriptor of this.store.listDescriptors()) {
        if (!fs.existsSync(sliceFilePath(this.options.dataDir, descriptor.fileId))) continue
        const local = LocalFile.scan(this.options.dataDir, descriptor)
        local.persist(this.store)
        this.locals.set(local.key, local)
      }
    })
    this.loadWanted()
  }

  /** Projection tables as JSON-able rows, for comparing states. */
  dumpProjections (): Record<string, unknown[]> {
    this.flush()
    return this.store.dumpProjections()
  }

  stats (): Readonly<NodeStats> {
    return { ...this.counters }
  }

  peerCounters (peer: string): PeerCounters | null {
    this.flush()
    const row = this.store.getPeer(fromHex(peer, 32))
    return row === null ? null : { slicesAccepted: row.slicesAccepted, slicesRejected: row.slicesRejected, requestsAnswered: row.requestsAnswered, lastSeenMs: row.lastSeenMs }
  }

  close (): void {
    if (this.closed) return
    for (const targets of this.saves.values()) for (const target of targets) target.abort('the node stopped before the file was saved')
    this.flush()
    for (const local of this.locals.values()) local.close()
    this.locals.clear()
    this.store.close()
    this.closed = true
  }

  // ---- helpers ------------------------------------------------------------------------

  private ensureOpen (): void {
    if (this.closed) throw new QuietError('conflict', 'node is closed')
  }

  private send (peer: string, event: Uint8Array): void {
    this.transport?.send(peer, event)
  }

  private header (type: number, ttlMs: number) {
    return { type, count: this.eventCount++, createdAtMs: Math.floor(this.nowMs), ttlMs, signerPk: this.options.identity.publicKey }
  }

  private saveEventCount (): void {
    this.store.setMeta(EVENT_COUNT_KEY, this.eventCount)
    this.savedEventCount = this.eventCount
  }

  /** Logs a user decision, applies it to the wanted table and the in-memory mirror. */
  private logWant (fileId: Uint8Array, action: WantActionName, priority: number, ttlMs: number): void {
    const bytes = encodeSignedEvent(this.header(EventType.wantControl, ttlMs), encodeWantPayload({ fileId, action, priority }), this.options.identity.secretKey)
    this.store.appendEvent(idOf(bytes), EventType.wantControl, fileId, bytes, this.nowMs)
    this.saveEventCount()
    applyWant(this.store, openWantEvent(bytes))
    this.loadWanted()
  }

  private loadWanted (): void {
    this.wanted = new Map(this.store.listWanted().map(row => [toHex(row.fileId), row]))
  }

  private knownDescriptor (fileId: string): DescriptorRow {
    let bytes: Uint8Array
    try {
      bytes = fromHex(fileId, 16)
    } catch {
      throw new QuietError('invalid_argument', `not a file id (32 hex digits): ${fileId}`)
    }
    const descriptor = this.store.getDescriptor(bytes)
    if (descriptor === null) throw new QuietError('unknown_file', `unknown file ${fileId}`, { fileId })
    return descriptor
  }

  private activeWant (fileId: string): WantedRow {
    const descriptor = this.knownDescriptor(fileId)
    const row = this.wanted.get(toHex(descriptor.fileId))
    if (row === undefined) throw new QuietError('conflict', 'file is not being downloaded', { fileId })
    return row
  }

  /** The open local state of a file, loading it when the store says slices are held. */
  private localFile (descriptor: DescriptorRow): LocalFile | null {
    const key = toHex(descriptor.fileId)
    const open = this.locals.get(key)
    if (open !== undefined) return open
    if (this.store.getLocal(descriptor.fileId) === null) return null
    const local = LocalFile.open(this.options.dataDir, descriptor, this.store)
    this.locals.set(key, local)
    return local
  }

  private loadLocal (fileId: Uint8Array): LocalFile | null {
    const descriptor = this.store.getDescriptor(fileId)
    return descriptor === null ? null : this.localFile(descriptor)
  }

  private replaceLocal (local: LocalFile): void {
    const old = this.locals.get(local.key)
    if (old !== undefined && old !== local) old.close()
    this.locals.set(local.key, local)
  }

  /** Deletes a file's slices and local rows (cancel, or a retry after failure). */
  private dropLocal (descriptor: DescriptorRow): void {
    const key = toHex(descriptor.fileId)
    this.requester.dropFile(key)
    const local = this.locals.get(key)
    if (local !== undefined) local.destroy()
    else fs.rmSync(sliceFilePath(this.options.dataDir, descriptor.fileId), { force: true })
    this.locals.delete(key)
    this.meters.delete(key)
    this.store.deleteHave(descriptor.fileId)
    this.store.deleteLocal(descriptor.fileId)
  }

  private stateOf (descriptor: DescriptorRow, local: LocalFile | null, want: WantedRow | null): FileState {
    if (local?.status === 'complete') return 'complete'
    if (local?.status === 'failed') return 'failed'
    if (want === null) {
      const last = this.store.lastEventAbout(descriptor.fileId, EventType.wantControl)
      return last !== null && openWantEvent(last).want.action === 'cancel' ? 'cancelled' : 'available'
    }
    if (want.state === 'paused') return 'paused'
    if (want.state === 'expired') return 'expired'
    if (local?.writeError !== null && local?.writeError !== undefined) return 'stalled'
    const key = toHex(descriptor.fileId)
    return (local?.haveSlices ?? 0) > 0 || this.requester.inflightCount(key) > 0 ? 'active' : 'queued'
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

  private peerDelta (peer: string): { accepted: number, rejected: number, answered: number } {
    let delta = this.peerDeltas.get(peer)
    if (delta === undefined) { delta = { accepted: 0, rejected: 0, answered: 0 }; this.peerDeltas.set(peer, delta) }
    return delta
  }
}
