import fs from 'node:fs'
import path from 'node:path'
import { randomBytes } from '../crypto/index.js'
import { toHex } from '../bytes.js'
import { Bitset } from '../sync/bitset.js'
import { sliceBytes } from '../files/windows.js'
import { RECORDS_PER_BATCH } from '../files/encrypt.js'
import { SLICE_PLAINTEXT_BYTES } from '../wire/slice.js'
import { QuietError } from './errors.js'
import type { SaveState, SaveStatus } from './progress.js'

/** Ends the name of the file a save fills; the verified file is then moved into place. */
export const PARTIAL_SUFFIX = '.qf-partial'

/**
 * Creates the partial file beside `target` under a random name, as mkstemp does: it must be
 * new (O_EXCL) and not a link (O_NOFOLLOW), so nothing planted there is ever written through.
 */
function createPartial (target: string): { partialPath: string, fd: number } {
  const { O_CREAT, O_EXCL, O_NOFOLLOW, O_WRONLY } = fs.constants
  for (let attempt = 0; ; attempt++) {
    const partialPath = path.join(path.dirname(target), `.${path.basename(target)}.${toHex(randomBytes(6))}${PARTIAL_SUFFIX}`)
    try {
      return { partialPath, fd: fs.openSync(partialPath, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY, 0o644) }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 8) throw err
    }
  }
}

/** Removes a partial file left by an earlier run (a link there is removed, never followed). */
export function removePartial (partialPath: string): void {
  try {
    if (path.basename(partialPath).endsWith(PARTIAL_SUFFIX)) fs.unlinkSync(partialPath)
  } catch { /* already gone, or not ours to remove */ }
}

/** What sits at `target`, without following a link there: null when nothing does. */
function lstatOrNull (target: string): fs.Stats | null {
  try {
    return fs.lstatSync(target)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

/**
 * A download being saved as plaintext to a path of the user's choosing. Slices are written
 * to a new partial file beside it (`.<name>.<random>.qf-partial`) as they arrive and
 * authenticate (the receiver decrypts them to check them anyway), so a finished download
 * needs no second pass over the file; the partial file is moved to `<path>` only after the
 * whole file passed its root-hash check, and only if it is still the file created here.
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
    const created = createPartial(path)
    this.partialPath = created.partialPath
    this.fd = created.fd
    this.written = new Bitset(slices)
    try {
      fs.ftruncateSync(this.fd, size)
    } catch (err) {
      this.closeFd()
      removePartial(this.partialPath)
      throw err
    }
  }

  /**
   * Starts saving a file of `size` bytes to the absolute path `target`. Refuses an existing
   * file unless `overwrite`, anything at `target` that is not a regular file (a link, a
   * directory), and a directory that does not exist.
   */
  static open (target: string, size: number, slices: number, overwrite: boolean): SaveTarget {
    if (!path.isAbsolute(target)) throw new QuietError('invalid_argument', `the path to save to must be absolute: ${target}`)
    const dir = path.dirname(target)
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new QuietError('invalid_argument', `no such directory: ${dir}`)
    const existing = lstatOrNull(target)
    if (existing !== null) {
      if (!existing.isFile()) throw new QuietError('conflict', `${target} exists and is not a regular file`)
      if (!overwrite) throw new QuietError('conflict', `${target} already exists; overwrite it with force`)
    }
    try {
      return new SaveTarget(target, size, slices, overwrite)
    } catch (err) {
      throw new QuietError('invalid_argument', `cannot write in ${dir}: ${(err as Error).message}`)
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

  /** Slices `[first, first+count)` count as not written (what was written there was forged). */
  forget (first: number, count: number): void {
    if (this.state !== 'writing') return
    // Buffered ones are written first, so they cannot land after the forgetting.
    this.writeRun()
    for (let i = first; i < first + count; i++) this.written.remove(i)
    this.scanFrom = Math.min(this.scanFrom, first)
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
      // Only the file created here moves: not whatever was put at its name meanwhile.
      const ours = fs.fstatSync(this.fd)
      const there = lstatOrNull(this.partialPath)
      this.closeFd()
      if (there === null || !there.isFile() || there.ino !== ours.ino || there.dev !== ours.dev) throw new Error(`${this.partialPath} was replaced while it filled`)
      if (this.overwrite) {
        // A rename replaces a link at the target itself, never the file it points to.
        const existing = lstatOrNull(this.path)
        if (existing !== null && !existing.isFile()) throw new Error(`${this.path} is no longer a regular file; the file is kept as ${this.partialPath}`)
        fs.renameSync(this.partialPath, this.path)
      } else {
        // A hard link fails if anything, a link included, appeared at the target meanwhile.
        try {
          fs.linkSync(this.partialPath, this.path)
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code
          if (code === 'EEXIST') throw new Error(`${this.path} appeared meanwhile; the file is kept as ${this.partialPath}`)
          // A file system without hard links: checked just before the rename instead.
          if ((code !== 'EPERM' && code !== 'ENOTSUP') || lstatOrNull(this.path) !== null) throw err
          fs.renameSync(this.partialPath, this.path)
        }
        removePartial(this.partialPath)
      }
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
    removePartial(this.partialPath)
    this.state = 'failed'
    this.error = reason
  }

  private closeFd (): void {
    if (this.fd >= 0) fs.closeSync(this.fd)
    this.fd = -1
    this.run = null
  }
}
