import { Bitset } from '../sync/bitset.js'
import { windowHashOf } from '../files/hashing.js'
import { HASH_BYTES } from '../crypto/index.js'
import { bytesEqual } from '../bytes.js'
import { WindowSuppliers } from './window-suppliers.js'
import type { FileLayout } from '../files/windows.js'

/** A window whose records did not match its hash, and the peers whose slices were in it. */
export interface FailedWindow {
  window: number
  first: number
  count: number
  suppliers: Set<string>
}

/**
 * Which windows of one file passed their hash. A window counts as held, is served to others
 * and is readable only once it did (`servable` holds the slices of verified windows). The
 * window hashes themselves were checked against the file's root hash before any window is
 * (slices asked for alongside them wait, unverified, until they come). Held slices are
 * counted per window; a window whose last slice arrived waits in `due` until its records
 * are on disk and can be hashed.
 */
export class VerifiedWindows {
  readonly verified: Bitset
  /** Slices of verified windows. */
  readonly servable: Bitset
  verifiedCount = 0
  private readonly held: Uint32Array
  private readonly due = new Set<number>()
  /**
   * `suppliers`: who supplied the slices held already, per window (those asked for alongside
   * the hashes); it is kept up to date from here on.
   */
  constructor (private readonly layout: FileLayout, private readonly hashes: Uint8Array,
    private readonly suppliers = new WindowSuppliers()) {
    this.verified = new Bitset(layout.windows)
    this.servable = new Bitset(layout.slices)
    this.held = new Uint32Array(layout.windows)
    // An empty window (an empty file's only one) is complete from the start.
    for (let w = 0; w < layout.windows; w++) if (layout.windowLength(w) === 0) this.due.add(w)
  }

  get complete (): boolean {
    return this.verifiedCount === this.layout.windows
  }

  get pending (): boolean {
    return this.due.size > 0
  }

  /** A slice is held (`supplier`: who sent it, if anyone did). */
  onHeld (sliceNo: number, supplier?: string): void {
    const w = this.layout.windowOf(sliceNo)
    if (supplier !== undefined) this.suppliers.add(w, supplier)
    if (++this.held[w]! === this.layout.windowLength(w)) this.due.add(w)
  }

  /** A held slice was forgotten (a failed write, a damaged record): its window is not whole any more. */
  onForgotten (sliceNo: number): void {
    const w = this.layout.windowOf(sliceNo)
    this.held[w]!--
    this.due.delete(w)
    if (this.verified.has(w)) this.unverify(w)
  }

  /**
   * Windows not verified yet that `peer` supplied slices of: a liar's slices are not to be
   * mixed with others' (a failure then could not tell who lied). Their suppliers are cleared.
   */
  unverifiedFrom (peer: string): number[] {
    const windows = this.suppliers.takeFrom(peer)
    for (const w of windows) this.due.delete(w)
    return windows
  }

  /** Every slice of every window is held and verified (a file this node shared, or one complete before). */
  trustAll (): void {
    for (let w = 0; w < this.layout.windows; w++) {
      this.held[w] = this.layout.windowLength(w)
      if (!this.verified.has(w)) this.markVerified(w)
    }
    this.due.clear()
    this.suppliers.clear()
  }

  /**
   * Hashes the windows whose slices are all held (their records read by `read`), at most
   * `budget` records. Verified ones become servable; the others are returned, for their
   * slices to be forgotten and their suppliers charged.
   */
  check (read: (first: number, count: number) => Uint8Array, budget: number): FailedWindow[] {
    const failed: FailedWindow[] = []
    let spent = 0
    for (const w of this.due) {
      if (spent >= budget) break
      this.due.delete(w)
      const first = this.layout.windowStart(w)
      const count = this.layout.windowLength(w)
      spent += count
      const intact = this.matches(w, count === 0 ? new Uint8Array(0) : read(first, count))
      const suppliers = this.suppliers.take(w)
      if (intact) {
        this.markVerified(w)
      } else {
        failed.push({ window: w, first, count, suppliers })
      }
    }
    return failed
  }

  /** Whether `records`, all of window `w`'s, hash to its window hash. */
  matches (w: number, records: Uint8Array): boolean {
    return bytesEqual(windowHashOf(w, records), this.hashes.subarray(w * HASH_BYTES, (w + 1) * HASH_BYTES))
  }

  private markVerified (w: number): void {
    this.verified.add(w)
    this.verifiedCount++
    const first = this.layout.windowStart(w)
    for (let i = first; i < first + this.layout.windowLength(w); i++) this.servable.add(i)
  }

  private unverify (w: number): void {
    this.verified.remove(w)
    this.verifiedCount--
    const first = this.layout.windowStart(w)
    for (let i = first; i < first + this.layout.windowLength(w); i++) this.servable.remove(i)
  }
}
