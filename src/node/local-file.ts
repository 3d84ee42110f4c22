import path from 'node:path'
import { SliceFile } from '../store/slice-file.js'
import { FileLayout, sliceBytes } from '../files/windows.js'
import { CiphertextVerifier, openSliceRecord } from '../files/verify.js'
import { VerifiedWindows } from './verified-windows.js'
import { WindowSuppliers } from './window-suppliers.js'
import { PendingRecords } from './pending-records.js'
import { describeWriteError } from './disk-errors.js'
import type { FailedWindow } from './verified-windows.js'
import { RECORDS_PER_BATCH } from '../files/encrypt.js'
import { AEAD_NONCE_BYTES } from '../crypto/aead.js'
import { Bitset } from '../sync/bitset.js'
import { SLICE_PLAINTEXT_BYTES, SLICE_RECORD_BYTES } from '../wire/slice.js'
import { toHex } from '../bytes.js'
import type { DescriptorRow, LocalFileRow, LocalStatus, Store } from '../store/store.js'

/**
 * How a flush makes written slices durable before recording them: `now` blocks on fdatasync;
 * `background` runs it on the thread pool and records the slices when it returns, so the
 * node keeps taking packets meanwhile; `none` skips it (simulations, benchmarks of the core).
 */
export type Durability = 'now' | 'background' | 'none'

/** Records hashed per flush at most: about 4 MB, a few tens of milliseconds. */
export const HASH_RECORDS_PER_FLUSH = 8192

/** Nothing servable: a partial file whose window hashes are not known yet. */
const NOTHING = new Bitset(0)

export function sliceFilePath (dataDir: string, fileId: Uint8Array): string {
  return path.join(dataDir, 'slices', `${toHex(fileId)}.slc`)
}

/**
 * What this node holds of one file: the slice file, the have-bitmap (in memory, mirrored
 * in SQLite after every durable write), and which windows passed their hash (`windows`,
 * once the file's window hashes are known): only their slices are served and read. A file
 * is complete when every window verified. Without window hashes (a store being rebuilt,
 * an empty file) a whole file is checked against its root in one pass instead.
 */
export class LocalFile {
  readonly key: string
  readonly layout: FileLayout
  readonly have: Bitset
  private readonly rangeHave: Uint16Array
  haveSlices = 0
  haveBytes = 0
  /** Ranges a reader waits for: fetched before everything else, even while paused. */
  readonly urgent = new Set<number>()
  status: LocalStatus = 'partial'
  reason: string | null = null
  /**
   * Why the last write to the slice file failed (a full disk), or null. While set, nothing
   * more is taken: the slices that were not written are simply not held.
   */
  writeError: string | null = null
  /** Accepted records not yet written. */
  private readonly pending = new PendingRecords()
  private readonly dirtyRanges = new Set<number>()
  /** Ranges whose bitmaps wait for a background fdatasync to return before being recorded. */
  private readonly syncingRanges = new Set<number>()
  /** Bumped by every recording: a background sync that returns after a newer one records nothing. */
  private recordings = 0
  private syncing = false
  private closed = false
  /** The status the store holds for this file, as far as this object knows. */
  private recordedStatus: LocalStatus | null = null
  /** The windows that passed their hash; null until the file's window hashes are known. */
  windows: VerifiedWindows | null = null
  /**
   * Until then, who supplied the slices held (they are asked for alongside the hashes): handed
   * to `windows` once it exists.
   */
  private readonly earlySuppliers = new WindowSuppliers()
  /** Windows that failed their hash since the last `takeFailedWindows`. */
  private failedWindows: FailedWindow[] = []
  private readonly scratch = new Uint8Array(RECORDS_PER_BATCH * SLICE_RECORD_BYTES)
  private readonly nonce = new Uint8Array(AEAD_NONCE_BYTES)

  private constructor (readonly descriptor: DescriptorRow, private readonly sliceFile: SliceFile) {
    this.key = toHex(descriptor.fileId)
    this.layout = new FileLayout(descriptor.slices)
    this.have = new Bitset(descriptor.slices)
    this.rangeHave = new Uint16Array(this.layout.rangeCount)
  }

  /**
   * Opens the slice file (creating it) and loads the durable have-bitmap and the window
   * hashes from the store. Held windows of a partial file are hashed again before they count.
   */
  static open (dataDir: string, descriptor: DescriptorRow, store: Store): LocalFile {
    const file = new LocalFile(descriptor, SliceFile.open(sliceFilePath(dataDir, descriptor.fileId), descriptor.slices))
    for (const { rangeNo, bits } of store.haveRanges(descriptor.fileId)) {
      if (rangeNo >= file.layout.rangeCount) continue
      file.markRange(rangeNo, bits)
    }
    const row = store.getLocal(descriptor.fileId)
    if (row !== null) { file.status = row.status; file.reason = row.reason; file.recordedStatus = row.status }
    const hashes = store.getWindowHashes(descriptor.fileId)
    if (hashes !== null) file.setWindowHashes(hashes)
    // An empty file needs nobody: its one window hash is the hash of nothing.
    else if (descriptor.slices === 0) file.checkWhole()
    return file
  }

  /** The file's window hashes, checked against its root: from now on windows are verified as they fill. */
  setWindowHashes (hashes: Uint8Array): void {
    if (this.windows !== null) return
    const windows = new VerifiedWindows(this.layout, hashes, this.earlySuppliers)
    if (this.status === 'complete') windows.trustAll()
    else for (let i = 0; i < this.descriptor.slices; i++) if (this.have.has(i)) windows.onHeld(i)
    this.windows = windows
  }

  /**
   * Slices that may be served and read: those of verified windows (all of a complete file;
   * none of a partial one whose window hashes are not known yet).
   */
  get servable (): Bitset {
    return this.windows?.servable ?? (this.status === 'complete' ? this.have : NOTHING)
  }

  /**
   * Forgets the slices of unverified windows `peer` supplied (it lied about this file): they
   * are fetched again from others. Returns those windows.
   */
  dropUnverifiedFrom (peer: string): Array<{ first: number, count: number }> {
    const windows = (this.windows?.unverifiedFrom(peer) ?? this.earlySuppliers.takeFrom(peer))
      .map(w => ({ first: this.layout.windowStart(w), count: this.layout.windowLength(w) }))
    this.writePending()
    for (const { first, count } of windows) for (let i = first; i < first + count; i++) this.forget(i)
    return windows
  }

  /** Windows that failed their hash since the last call (their slices are forgotten already). */
  takeFailedWindows (): FailedWindow[] {
    const failed = this.failedWindows
    this.failedWindows = []
    return failed
  }

  /**
   * Rebuilds what is held from the slice file alone: every record is authenticated, and
   * every whole window hashed against `windowHashes` (without them, a full file against its
   * root hash). Used by reprojection.
   */
  static scan (dataDir: string, descriptor: DescriptorRow, windowHashes: Uint8Array | null): LocalFile {
    const file = new LocalFile(descriptor, SliceFile.open(sliceFilePath(dataDir, descriptor.fileId), descriptor.slices))
    const plain = new Uint8Array(SLICE_PLAINTEXT_BYTES)
    for (let first = 0; first < descriptor.slices; first += RECORDS_PER_BATCH) {
      const count = Math.min(RECORDS_PER_BATCH, descriptor.slices - first)
      const records = file.sliceFile.read(first, count, file.scratch)
      for (let k = 0; k < count; k++) {
        const record = records.subarray(k * SLICE_RECORD_BYTES, (k + 1) * SLICE_RECORD_BYTES)
        if (openSliceRecord(record, first + k, descriptor, plain)) file.markSlice(first + k)
      }
    }
    for (let r = 0; r < file.layout.rangeCount; r++) if (file.rangeHave[r]! > 0) file.dirtyRanges.add(r)
    if (windowHashes !== null) {
      file.setWindowHashes(windowHashes)
      file.checkWindows(file.windows!, Infinity)
    } else if (file.haveSlices === descriptor.slices) {
      file.checkWhole()
    }
    return file
  }

  /** A file this node encrypted itself: every slice is in place and the hashes are its own. */
  static adoptComplete (dataDir: string, descriptor: DescriptorRow, windowHashes: Uint8Array): LocalFile {
    const file = new LocalFile(descriptor, SliceFile.open(sliceFilePath(dataDir, descriptor.fileId), descriptor.slices))
    for (let i = 0; i < descriptor.slices; i++) file.markSlice(i)
    file.status = 'complete'
    file.setWindowHashes(windowHashes)
    return file
  }

  get complete (): boolean {
    return this.status === 'complete'
  }

  missing (range: number): number {
    return this.layout.rangeLength(range) - this.rangeHave[range]!
  }

  /**
   * Takes an authenticated record (copied) for writing, from `supplier`; false if the slice
   * is already held or writes are failing. It counts once its window verified.
   */
  accept (sliceNo: number, record: Uint8Array, supplier?: string): boolean {
    if (this.have.has(sliceNo) || this.writeError !== null) return false
    this.markSlice(sliceNo)
    if (this.windows !== null) this.windows.onHeld(sliceNo, supplier)
    else if (supplier !== undefined) this.earlySuppliers.add(this.layout.windowOf(sliceNo), supplier)
    if (this.pending.add(sliceNo, record)) this.writePending()
    return true
  }

  /** Something for `flush` to do: records to write, ranges or a new status to record, or windows to hash. */
  get needsFlush (): boolean {
    return this.pending.size > 0 || this.dirtyRanges.size > 0 || this.syncingRanges.size > 0 ||
      this.status !== this.recordedStatus || this.windows?.pending === true
  }

  /**
   * Writes accepted records to the slice file (not yet durable), one write per run of
   * consecutive slices. A write that fails (a full disk) is never counted: its slices and
   * those after it are forgotten, and `writeError` says why until `retryWrites`.
   */
  writePending (): void {
    this.pending.drain((first, records) => this.sliceFile.write(first, records), (lost, err) => {
      this.writeError = describeWriteError(err)
      for (const sliceNo of lost) this.forget(sliceNo)
    })
  }

  /** Lets writes be tried again (space may have been freed): the missing slices are fetched again. */
  retryWrites (): void {
    this.writeError = null
  }

  /**
   * Makes accepted slices durable, then records them: data first, bitmap after, so the
   * store never counts a slice that is not on disk. Call inside a store transaction.
   * Returns whether the file just became whole (complete or failed).
   */
  flush (store: Store, durability: Durability): boolean {
    if (!this.needsFlush) return false
    this.writePending()
    const wasPartial = this.status === 'partial'
    if (this.windows !== null) this.checkWindows(this.windows, HASH_RECORDS_PER_FLUSH)
    if (durability === 'background') this.persistAfterSync(store)
    else {
      if (durability === 'now') this.sliceFile.sync()
      this.persist(store)
    }
    return wasPartial && this.status !== 'partial'
  }

  /**
   * Starts an fdatasync on the thread pool and records what was written before it once it
   * returns (one at a time; ranges changed meanwhile wait for the next one).
   */
  private persistAfterSync (store: Store): void {
    if (this.syncing) return
    const recording = ++this.recordings
    const ranges = this.takeDirtyRanges()
    for (const { r } of ranges) this.syncingRanges.add(r)
    const row = this.row()
    this.syncing = true
    this.sliceFile.syncInBackground(err => {
      this.syncing = false
      if (this.closed || recording !== this.recordings) return
      if (err !== null) {
        // Not known to be durable: record nothing, try again with the next flush.
        for (const r of this.syncingRanges) this.dirtyRanges.add(r)
      } else {
        try {
          store.transaction(() => this.record(store, ranges, row))
        } catch {
          // The store could not take them (a full disk): they are recorded with a later flush.
          for (const { r } of ranges) this.dirtyRanges.add(r)
        }
      }
      this.syncingRanges.clear()
    })
  }

  /**
   * Hashes windows whose slices are all written: verified ones count; a failed one is
   * forgotten whole (fetched again) and kept for `takeFailedWindows`. The last window
   * verified makes the file complete (its window hashes already matched the root).
   */
  private checkWindows (windows: VerifiedWindows, budget: number): void {
    const failed = windows.check((first, count) => this.sliceFile.read(first, count, this.scratch), budget)
    for (const window of failed) {
      for (let i = window.first; i < window.first + window.count; i++) this.forget(i)
      this.failedWindows.push(window)
    }
    if (windows.complete && this.status === 'partial') this.status = 'complete'
  }

  /**
   * Writes the changed have-bitmap ranges (also those a background sync was about to record)
   * and the file's row. Call inside a store transaction, after the data is durable.
   */
  persist (store: Store): void {
    this.recordings++
    for (const r of this.syncingRanges) this.dirtyRanges.add(r)
    this.syncingRanges.clear()
    const ranges = this.takeDirtyRanges()
    try {
      this.record(store, ranges, this.row())
    } catch (err) {
      // The store could not take them (a full disk): they are recorded with a later flush.
      for (const { r } of ranges) this.dirtyRanges.add(r)
      throw err
    }
  }

  /** The changed ranges with their bitmaps as they are now; they are no longer dirty. */
  private takeDirtyRanges (): Array<{ r: number, bits: Uint8Array }> {
    const ranges = [...this.dirtyRanges].map(r => ({ r, bits: this.have.rangeBitmap(this.layout.rangeStart(r), this.layout.rangeLength(r)) }))
    this.dirtyRanges.clear()
    return ranges
  }

  private record (store: Store, ranges: Array<{ r: number, bits: Uint8Array }>, row: LocalFileRow): void {
    for (const { r, bits } of ranges) store.putHaveRange(this.descriptor.fileId, r, bits)
    store.putLocal(row)
    this.recordedStatus = row.status
  }

  row (): LocalFileRow {
    return { fileId: this.descriptor.fileId, haveSlices: this.haveSlices, haveBytes: this.haveBytes, status: this.status, reason: this.reason }
  }

  /** Reads `count` stored records from `firstSlice` (into a reused buffer unless `into` is given). */
  readRecords (firstSlice: number, count: number, into?: Uint8Array): Uint8Array {
    this.writePending()
    return this.sliceFile.read(firstSlice, count, into ?? this.scratch)
  }

  /**
   * Reads `count` held slices from `firstSlice` and authenticates each into `plaintext`
   * (SLICE_PLAINTEXT_BYTES apiece). Returns the first slice that does not authenticate, or -1.
   */
  readPlaintext (firstSlice: number, count: number, plaintext: Uint8Array): number {
    const records = this.readRecords(firstSlice, count)
    for (let k = 0; k < count; k++) {
      const record = records.subarray(k * SLICE_RECORD_BYTES, (k + 1) * SLICE_RECORD_BYTES)
      if (!openSliceRecord(record, firstSlice + k, this.descriptor, plaintext.subarray(k * SLICE_PLAINTEXT_BYTES, (k + 1) * SLICE_PLAINTEXT_BYTES), this.nonce)) return firstSlice + k
    }
    return -1
  }

  /** Forgets a held slice (disk damage, a failed write, a window that failed its hash): it is fetched again. */
  forget (sliceNo: number): void {
    if (!this.have.remove(sliceNo)) return
    this.windows?.onForgotten(sliceNo)
    const r = this.layout.rangeOf(sliceNo)
    this.rangeHave[r]!--
    this.haveSlices--
    this.haveBytes -= sliceBytes(sliceNo, this.descriptor.size)
    this.dirtyRanges.add(r)
    this.status = 'partial'
  }

  close (): void {
    this.closed = true
    this.sliceFile.close()
  }

  destroy (): void {
    this.closed = true
    this.sliceFile.destroy()
  }

  private markSlice (sliceNo: number): void {
    if (!this.have.add(sliceNo)) return
    const r = this.layout.rangeOf(sliceNo)
    this.rangeHave[r]!++
    this.dirtyRanges.add(r)
    this.haveSlices++
    this.haveBytes += sliceBytes(sliceNo, this.descriptor.size)
  }

  private markRange (rangeNo: number, bits: Uint8Array): void {
    const first = this.layout.rangeStart(rangeNo)
    const length = this.layout.rangeLength(rangeNo)
    for (let k = 0; k < length; k++) {
      if ((bits[k >> 3]! & (0x80 >> (k & 7))) === 0 || !this.have.add(first + k)) continue
      this.rangeHave[rangeNo]!++
      this.haveSlices++
      this.haveBytes += sliceBytes(first + k, this.descriptor.size)
    }
  }

  /**
   * A whole file whose window hashes are not kept (a store being rebuilt, or an empty file):
   * every record hashed in one pass and the root checked; complete or failed.
   */
  private checkWhole (): void {
    const verifier = new CiphertextVerifier(this.descriptor.slices, this.descriptor.size)
    for (let first = 0; first < this.descriptor.slices; first += RECORDS_PER_BATCH) {
      verifier.update(this.sliceFile.read(first, Math.min(RECORDS_PER_BATCH, this.descriptor.slices - first), this.scratch))
    }
    const check = verifier.check(this.descriptor.rootHash)
    this.status = check.ok ? 'complete' : 'failed'
    this.reason = check.ok ? null : check.reason
  }
}
