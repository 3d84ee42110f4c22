import fs from 'node:fs'
import path from 'node:path'
import { Bitset } from '../sync/bitset.js'
import { sliceBytes } from '../files/windows.js'
import { RECORDS_PER_BATCH } from '../files/encrypt.js'
import { SLICE_PLAINTEXT_BYTES } from '../wire/slice.js'
import { QuietError } from './errors.js'
import type { SaveState, SaveStatus } from './progress.js'

/** Appended to the target's name while it fills; the verified file is renamed into place. */
export const PARTIAL_SUFFIX = '.qf-partial'

/**
 * A download being saved as plaintext to a path of the user's choosing. Slices are written
 * to `<path>.qf-partial` as they arrive and authenticate (the receiver decrypts them to check
 * them anyway), so a finished download needs no second pass over the file; the partial file
 * is renamed to `<path>` only after the whole file passed its root-hash check.
 */
export class SaveTarget {
  readonly partialPath: string
  state: SaveState = 'writing'
  error: string | null = null
  private fd: number
  private readonly written: Bitset
  /** Consecutive slices waiting to be written with one call, from `runFirst` (freed once done). */
  private run: Uint8Array | null = null
  private runFirst = 0
  private runSlices = 0
  /** Where `missingSlices` resumes looking. */
  private scanFrom = 0
  private syncing = false
  /** Something was written since the last background sync started. */
  private unsynced = false

  private constructor (readonly path: string, readonly size: number, readonly slices: number, private readonly overwrite: boolean) {
    this.partialPath = path + PARTIAL_SUFFIX
    this.written = new Bitset(slices)
    // A partial file left by an earlier attempt is ours to reuse: it is truncated.
    this.fd = fs.openSync(this.partialPath, 'w', 0o644)
    fs.ftruncateSync(this.fd, size)
  }

  /**
   * Starts saving a file of `size` bytes to the absolute path `target`. Refuses an existing
   * file unless `overwrite`, and a directory that does not exist.
   */
  static open (target: string, size: number, slices: number, overwrite: boolean): SaveTarget {
    if (!path.isAbsolute(target)) throw new QuietError('invalid_argument', `the path to save to must be absolute: ${target}`)
    const dir = path.dirname(target)
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new QuietError('invalid_argument', `no such directory: ${dir}`)
    if (fs.existsSync(target)) {
      if (!overwrite) throw new QuietError('conflict', `${target} already exists; overwrite it with force`)
      if (!fs.statSync(target).isFile()) throw new QuietError('conflict', `${target} exists and is not a regular file`)
    }
    try {
      return new SaveTarget(target, size, slices, overwrite)
    } catch (err) {
      throw new QuietError('invalid_argument', `cannot write ${target + PARTIAL_SUFFIX}: ${(err as Error).message}`)
    }
  }

  status (): SaveStatus {
    return { path: this.path, state: this.state, error: this.error }
  }

  /** Takes the authenticated plaintext of slice `sliceNo` (its first `sliceBytes` bytes count). */
  add (sliceNo: number, plaintext: Uint8Array): void {
    if (this.state !== 'writing' || this.written.has(sliceNo)) return
    if (this.runSlices > 0 && (sliceNo !== this.runFirst + this.runSlices || this.runSlices === RECORDS_PER_BATCH)) this.writeRun()
    if (this.runSlices === 0) this.runFirst = sliceNo
    this.run ??= new Uint8Array(RECORDS_PER_BATCH * SLICE_PLAINTEXT_BYTES)
    this.run.set(plaintext.subarray(0, sliceBytes(sliceNo, this.size)), this.runSlices * SLICE_PLAINTEXT_BYTES)
    this.runSlices++
    this.written.add(sliceNo)
  }

  /** Up to `limit` slice numbers not written yet, in order: what to fill from the store. */
  missingSlices (limit: number): number[] {
    const missing: number[] = []
    while (this.scanFrom < this.slices && this.written.has(this.scanFrom)) this.scanFrom++
    for (let i = this.scanFrom; i < this.slices && missing.length < limit; i++) if (!this.written.has(i)) missing.push(i)
    return missing
  }

  /** Writes what is buffered (the file is not durable until `finish`). A write error ends the save. */
  writeRun (): void {
    if (this.runSlices === 0 || this.state !== 'writing' || this.run === null) return
    const at = this.runFirst * SLICE_PLAINTEXT_BYTES
    const bytes = Math.min(this.size, (this.runFirst + this.runSlices) * SLICE_PLAINTEXT_BYTES) - at
    this.runSlices = 0
    try {
      let done = 0
      while (done < bytes) done += fs.writeSync(this.fd, this.run, done, bytes - done, at + done)
      this.unsynced = true
    } catch (err) {
      this.abort(`could not write ${this.partialPath}: ${(err as Error).message}`)
    }
  }

  /** Writes what is buffered and starts an fdatasync of it on the thread pool (one at a time). */
  syncInBackground (): void {
    if (this.state !== 'writing' || this.syncing) return
    this.writeRun()
    if (this.state !== 'writing' || !this.unsynced) return
    this.unsynced = false
    this.syncing = true
    // An error here shows again, and ends the save, at the blocking fdatasync in `finish`.
    fs.fdatasync(this.fd, () => { this.syncing = false })
  }

  /** Every slice is written and the file verified: make it durable and move it into place. */
  finish (): void {
    if (this.state !== 'writing') return
    try {
      this.writeRun()
      if (this.missingSlices(1).length > 0) throw new Error('slices are missing')
      fs.fdatasyncSync(this.fd)
      this.closeFd()
      // Checked again: the file may have appeared while the download ran.
      if (!this.overwrite && fs.existsSync(this.path)) throw new Error(`${this.path} appeared meanwhile; the file is kept as ${this.partialPath}`)
      fs.renameSync(this.partialPath, this.path)
      this.state = 'saved'
    } catch (err) {
      this.closeFd()
      this.state = 'failed'
      this.error = `could not save ${this.path}: ${(err as Error).message}`
    }
  }

  /** Gives up (cancelled, expired, failed verification, the node stopping): the partial file is removed. */
  abort (reason: string): void {
    if (this.state !== 'writing') return
    this.closeFd()
    fs.rmSync(this.partialPath, { force: true })
    this.state = 'failed'
    this.error = reason
  }

  private closeFd (): void {
    if (this.fd >= 0) fs.closeSync(this.fd)
    this.fd = -1
    this.run = null
  }
}
