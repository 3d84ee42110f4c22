import fs from 'node:fs'
import { LocalFile, sliceFilePath } from './local-file.js'
import { QuietError } from './errors.js'
import { applyWant, openWantEvent, replayLog } from './projections.js'
import { id as idOf } from '../crypto/index.js'
import { fromHex, toHex } from '../bytes.js'
import { EventType, encodeWantPayload } from '../wire/index.js'
import { isDiskFull } from './disk-errors.js'
import type { PeerLedger, Signer } from './context.js'
import type { Durability } from './local-file.js'
import type { Store, DescriptorRow, WantedRow } from '../store/store.js'
import type { WantActionName } from '../wire/want-control.js'

/**
 * The files this node knows and holds: each file's open local state (slice file and
 * have-bitmap) and the wanted table's rows, kept in memory in priority order. The parts of
 * a node look files up here; only this table opens, replaces and drops them.
 */
export class FileTable {
  readonly locals = new Map<string, LocalFile>()
  private wantedRows = new Map<string, WantedRow>()

  /** `onDrop`: a file's local data is gone (cancel, retry after failure); its key. */
  constructor (private readonly dataDir: string, private readonly store: Store, private readonly signer: Signer,
    private readonly clock: () => number, private readonly onDrop: (key: string) => void) {
    this.loadWanted()
  }

  /** The wanted rows by file key, in priority order. */
  get wanted (): ReadonlyMap<string, WantedRow> {
    return this.wantedRows
  }

  descriptor (fileId: string): DescriptorRow {
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

  /** The wanted row of a file being downloaded, or a conflict error saying it is not. */
  activeWant (fileId: string): WantedRow {
    const descriptor = this.descriptor(fileId)
    const row = this.wantedRows.get(toHex(descriptor.fileId))
    if (row === undefined) throw new QuietError('conflict', 'file is not being downloaded', { fileId })
    return row
  }

  /** The open local state of a file, loading it when the store says slices are held. */
  local (descriptor: DescriptorRow): LocalFile | null {
    const key = toHex(descriptor.fileId)
    const open = this.locals.get(key)
    if (open !== undefined) return open
    if (this.store.getLocal(descriptor.fileId) === null) return null
    const local = LocalFile.open(this.dataDir, descriptor, this.store)
    this.locals.set(key, local)
    return local
  }

  localById (fileId: Uint8Array): LocalFile | null {
    const descriptor = this.store.getDescriptor(fileId)
    return descriptor === null ? null : this.local(descriptor)
  }

  replace (local: LocalFile): void {
    const old = this.locals.get(local.key)
    if (old !== undefined && old !== local) old.close()
    this.locals.set(local.key, local)
  }

  /** Deletes a file's slices and local rows (cancel, or a retry after failure). */
  drop (descriptor: DescriptorRow): void {
    const key = toHex(descriptor.fileId)
    this.onDrop(key)
    const local = this.locals.get(key)
    if (local !== undefined) local.destroy()
    else fs.rmSync(sliceFilePath(this.dataDir, descriptor.fileId), { force: true })
    this.locals.delete(key)
    this.store.deleteHave(descriptor.fileId)
    this.store.deleteLocal(descriptor.fileId)
  }

  /**
   * Writes what arrived and records it in one transaction: each file's slices (made durable
   * first, as `durability` says), the peers' counters and the event count. `onWhole`: a file
   * just became complete or failed. A full disk stalls the partial files instead of failing.
   */
  flush (durability: Durability, ledger: PeerLedger, onWhole: (key: string) => void): void {
    let dirty = ledger.deltas.size > 0 || this.signer.unsaved
    for (const local of this.locals.values()) dirty ||= local.needsFlush
    if (!dirty) return
    try {
      this.store.transaction(() => {
        for (const local of this.locals.values()) if (local.flush(this.store, durability)) onWhole(local.key)
        for (const [peer, delta] of ledger.deltas) this.store.bumpPeer(fromHex(peer), delta, this.clock())
        ledger.deltas.clear()
        this.signer.save()
      })
    } catch (err) {
      if (!isDiskFull(err)) throw err
      // The database's disk is full: what arrived cannot be recorded, so downloads stall
      // (and are tried again) as they do when their slice files cannot be written.
      for (const local of this.locals.values()) if (local.status === 'partial') local.writeError ??= 'no space left on device'
    }
  }

  /** Logs a user decision, applies it to the wanted table and the in-memory mirror. */
  logWant (fileId: Uint8Array, action: WantActionName, priority: number, ttlMs: number): void {
    const bytes = this.signer.sign(EventType.wantControl, encodeWantPayload({ fileId, action, priority }), this.signer.header(EventType.wantControl, ttlMs))
    this.store.appendEvent(idOf(bytes), EventType.wantControl, fileId, bytes, this.clock())
    this.signer.save()
    applyWant(this.store, openWantEvent(bytes))
    this.loadWanted()
  }

  /** Whether the last decision about a file not wanted now was a cancel. */
  wasCancelled (descriptor: DescriptorRow): boolean {
    const last = this.store.lastEventAbout(descriptor.fileId, EventType.wantControl)
    return last !== null && openWantEvent(last).want.action === 'cancel'
  }

  loadWanted (): void {
    this.wantedRows = new Map(this.store.listWanted().map(row => [toHex(row.fileId), row]))
  }

  /**
   * Drops every projection and rebuilds it from the event log and the slice files: each
   * stored record is authenticated again, whole files are verified again.
   */
  rebuild (networkKey: Uint8Array): void {
    this.closeAll()
    this.store.transaction(() => {
      this.store.clearProjections()
      replayLog(this.store, networkKey)
      for (const descriptor of this.store.listDescriptors()) {
        if (!fs.existsSync(sliceFilePath(this.dataDir, descriptor.fileId))) continue
        const local = LocalFile.scan(this.dataDir, descriptor, this.store.getWindowHashes(descriptor.fileId))
        local.persist(this.store)
        this.locals.set(local.key, local)
      }
    })
    this.loadWanted()
  }

  closeAll (): void {
    for (const local of this.locals.values()) local.close()
    this.locals.clear()
  }
}
