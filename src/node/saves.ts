import { SaveTarget, removePartial } from './save-target.js'
import { QuietError } from './errors.js'
import { RECORDS_PER_BATCH } from '../files/encrypt.js'
import { toHex } from '../bytes.js'
import { SLICE_PLAINTEXT_BYTES } from '../wire/index.js'
import type { NodeContext } from './context.js'
import type { LocalFile } from './local-file.js'
import type { SaveStatus } from './progress.js'

/** Slices a save copies from the store per tick, when they arrived before the save began. */
export const SAVE_FILL_SLICES_PER_TICK = 4096
/** Finished saves remembered per file beside the ones still writing. */
export const KEPT_FINISHED_SAVES = 4

/**
 * Saves of downloads to paths of the user's choosing: plaintext written as slices arrive,
 * slices held from before copied from the store, the file moved into place once verified.
 * Saves that have not ended are written down in the store and taken up again at a restart.
 */
export class Saves {
  /** Per file, the saves asked for, oldest first; finished ones stay (a few) so followers can read how they ended. */
  private readonly byFile = new Map<string, SaveTarget[]>()
  /** Saves written down in the store, to be taken up again after a restart until they end. */
  private readonly onRecord = new Map<SaveTarget, Uint8Array>()
  /** Plaintext of a run of stored slices copied into a save (allocated when first needed). */
  private runPlaintext: Uint8Array | null = null

  constructor (private readonly ctx: NodeContext) {
    this.resume()
  }

  /**
   * Saves the file's plaintext to the absolute path `target` as it downloads (see
   * `Node.save`). Asking again for a path being written changes nothing.
   */
  save (fileId: string, target: string, overwrite: boolean): void {
    const descriptor = this.ctx.files.descriptor(fileId)
    const key = toHex(descriptor.fileId)
    const previous = this.byFile.get(key) ?? []
    if (previous.some(t => t.state === 'writing' && t.path === target)) return
    const next = SaveTarget.open(target, descriptor.size, descriptor.slices, overwrite)
    // An ended save to this path leaves the record first, so it cannot take the new one with it.
    this.forgetEnded()
    this.ctx.store.putSave(descriptor.fileId, target, overwrite, next.partialPath)
    this.onRecord.set(next, descriptor.fileId)
    // An earlier, finished save to this path is superseded; of the others only the last few finished ones are kept.
    const others = previous.filter(t => t.path !== target)
    let finishedToDrop = others.filter(t => t.state !== 'writing').length - KEPT_FINISHED_SAVES
    this.byFile.set(key, [...others.filter(t => t.state === 'writing' || finishedToDrop-- <= 0), next])
  }

  statuses (key: string): SaveStatus[] {
    return (this.byFile.get(key) ?? []).map(t => t.status())
  }

  /** An authenticated slice arrived: every save of its file writes its plaintext. */
  add (key: string, sliceNo: number, plaintext: Uint8Array): void {
    const targets = this.byFile.get(key)
    if (targets !== undefined) for (const target of targets) target.add(sliceNo, plaintext)
  }

  /** Slices whose plaintext turned out forged (their window failed): written again when they come back. */
  forgetSlices (key: string, first: number, count: number): void {
    for (const target of this.byFile.get(key) ?? []) target.forget(first, count)
  }

  /** Ends every save of a file still writing (its partial file is removed). */
  abortFile (key: string, reason: string): void {
    for (const target of this.byFile.get(key) ?? []) target.abort(reason)
    this.forgetEnded()
  }

  abortAll (reason: string): void {
    for (const targets of this.byFile.values()) for (const target of targets) target.abort(reason)
  }

  /** Saved files become durable as they fill, so the fdatasync before the rename is short. */
  syncInBackground (): void {
    for (const targets of this.byFile.values()) for (const target of targets) target.syncInBackground()
  }

  /** Finishes saves of files that became whole, first copying slices that came before the save. */
  tick (): void {
    if (this.byFile.size === 0) return
    const { files } = this.ctx
    for (const [key, targets] of this.byFile) {
      const local = files.locals.get(key)
      const want = files.wanted.get(key)
      for (const target of targets) {
        if (target.state !== 'writing') continue
        if (local?.status === 'failed') target.abort(`file failed verification: ${local.reason ?? ''}`)
        else if (want?.state === 'expired' && local?.status !== 'complete') target.abort('the download expired')
        else if (local?.status === 'complete') this.fill(target, local)
      }
    }
    this.forgetEnded()
  }

  private fill (target: SaveTarget, local: LocalFile): void {
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

  /**
   * Takes up the saves that were still going when the node last stopped. One that cannot
   * start again (its directory is gone, or its file was put in place meanwhile) is dropped.
   */
  private resume (): void {
    const { store } = this.ctx
    for (const row of store.listSaves()) {
      const descriptor = store.getDescriptor(row.fileId)
      try {
        // The last run's partial file goes: a new one is filled from what the store holds.
        if (row.partial !== null) removePartial(row.partial)
        if (descriptor === null) throw new QuietError('not_found', 'the file is no longer known')
        const target = SaveTarget.open(row.path, descriptor.size, descriptor.slices, row.overwrite)
        store.putSave(row.fileId, row.path, row.overwrite, target.partialPath)
        const key = toHex(row.fileId)
        this.byFile.set(key, [...this.byFile.get(key) ?? [], target])
        this.onRecord.set(target, row.fileId)
      } catch (err) {
        if (!(err instanceof QuietError)) throw err
        store.deleteSave(row.fileId, row.path)
      }
    }
  }

  /** Saves that ended (saved, failed, cancelled) are not taken up again after a restart. */
  private forgetEnded (): void {
    for (const [target, fileId] of this.onRecord) {
      if (target.state === 'writing') continue
      this.ctx.store.deleteSave(fileId, target.path)
      this.onRecord.delete(target)
    }
  }
}
