import { RECORDS_PER_BATCH } from '../files/encrypt.js'
import { SLICE_RECORD_BYTES } from '../wire/slice.js'

/**
 * Accepted slice records waiting to be written, up to one batch: written with one call
 * per run of consecutive slices, straight from the buffer when they arrived in order.
 */
export class PendingRecords {
  /** `slices[k]` is in `records` at record k. */
  private slices: number[] = []
  private records: Uint8Array | null = null
  private readonly scratch = new Uint8Array(RECORDS_PER_BATCH * SLICE_RECORD_BYTES)

  get size (): number {
    return this.slices.length
  }

  /** Takes a copy of `record`; true when the batch is full and should be written. */
  add (sliceNo: number, record: Uint8Array): boolean {
    this.records ??= new Uint8Array(RECORDS_PER_BATCH * SLICE_RECORD_BYTES)
    this.records.set(record, this.slices.length * SLICE_RECORD_BYTES)
    this.slices.push(sliceNo)
    return this.slices.length === RECORDS_PER_BATCH
  }

  /**
   * Hands every run of consecutive slices to `write` (first slice, its records) and empties
   * the batch. When a write throws, the slices not written (that run and the ones after it)
   * go to `lost` with the error, and nothing more is written.
   */
  drain (write: (firstSlice: number, records: Uint8Array) => void, lost: (slices: number[], err: unknown) => void): void {
    const slices = this.slices
    const records = this.records
    if (slices.length === 0 || records === null) return
    this.slices = []
    const order = slices.map((_, k) => k)
    order.sort((a, b) => slices[a]! - slices[b]!)
    let i = 0
    while (i < order.length) {
      let j = i + 1
      let inPlace = order[i] === i
      while (j < order.length && slices[order[j]!] === slices[order[j - 1]!]! + 1) {
        inPlace &&= order[j] === order[j - 1]! + 1
        j++
      }
      let run: Uint8Array
      if (inPlace) {
        // Arrived in order (the usual case): write straight from the pending buffer.
        run = records.subarray(order[i]! * SLICE_RECORD_BYTES, (order[i]! + j - i) * SLICE_RECORD_BYTES)
      } else {
        for (let k = i; k < j; k++) this.scratch.set(records.subarray(order[k]! * SLICE_RECORD_BYTES, (order[k]! + 1) * SLICE_RECORD_BYTES), (k - i) * SLICE_RECORD_BYTES)
        run = this.scratch.subarray(0, (j - i) * SLICE_RECORD_BYTES)
      }
      try {
        write(slices[order[i]!]!, run)
      } catch (err) {
        lost(order.slice(i).map(k => slices[k]!), err)
        return
      }
      i = j
    }
  }
}
