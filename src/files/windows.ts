import { SLICE_PLAINTEXT_BYTES } from '../wire/slice.js'
import { MAX_RANGE_SLICES } from '../wire/sync-file.js'

/** About this many slices per window; the spec's formula rounds the window count up to a power of two. */
export const TARGET_SLICES_PER_WINDOW = 100
export const MAX_WINDOWS = 65536

export function sliceCount (fileBytes: number): number {
  return Math.ceil(fileBytes / SLICE_PLAINTEXT_BYTES)
}

/** Plaintext bytes slice `i` holds: 450 except for a short last slice. */
export function sliceBytes (sliceNo: number, fileBytes: number): number {
  return Math.max(0, Math.min(SLICE_PLAINTEXT_BYTES, fileBytes - sliceNo * SLICE_PLAINTEXT_BYTES))
}

/** `W = clamp(2^ceil(log2(ceil(n/100))), 1, 65536)`, in integers. */
export function windowCount (slices: number): number {
  const wanted = Math.ceil(slices / TARGET_SLICES_PER_WINDOW)
  let windows = 1
  while (windows < wanted && windows < MAX_WINDOWS) windows *= 2
  return windows
}

/** First slice of window `w`: `floor(w·n/W)`. w may equal W (gives n). */
export function windowStart (w: number, slices: number, windows: number): number {
  return Math.floor((w * slices) / windows)
}

/**
 * A file's request ranges: its windows in order, grouped so that one `sync-file` request
 * covers as many whole consecutive windows as fit in `maxRangeSlices` (at most 512, the
 * bitmap's size). A window larger than that (only files above ~15 GB) is cut into pieces.
 * Range r covers `[start(r), start(r+1))`. Fewer, larger requests mean fewer signatures
 * per byte; whole windows keep the spec's reconciliation unit and streaming order.
 */
export class FileLayout {
  readonly windows: number
  /** starts[r] = first slice of range r; starts[rangeCount] = slices. */
  private readonly starts: Uint32Array

  constructor (readonly slices: number, maxRangeSlices = MAX_RANGE_SLICES) {
    if (maxRangeSlices < 1 || maxRangeSlices > MAX_RANGE_SLICES) throw new RangeError('range size must be 1..512 slices')
    this.windows = windowCount(slices)
    const starts: number[] = []
    let open = -1 // first slice of the range being filled, -1 when none
    for (let w = 0; w < this.windows; w++) {
      const from = windowStart(w, slices, this.windows)
      const to = windowStart(w + 1, slices, this.windows)
      if (from === to) continue
      if (open >= 0 && to - open <= maxRangeSlices) continue // window joins the open range
      if (to - from <= maxRangeSlices) { starts.push(from); open = from; continue }
      for (let s = from; s < to; s += maxRangeSlices) starts.push(s)
      open = -1
    }
    starts.push(slices)
    this.starts = Uint32Array.from(starts)
  }

  /** First slice of window `w`. */
  windowStart (w: number): number {
    return windowStart(w, this.slices, this.windows)
  }

  windowLength (w: number): number {
    return windowStart(w + 1, this.slices, this.windows) - windowStart(w, this.slices, this.windows)
  }

  /** The window holding slice `i`: the largest w with floor(w·n/W) ≤ i, i.e. ceil((i+1)·W/n) − 1. */
  windowOf (sliceNo: number): number {
    return Math.floor(((sliceNo + 1) * this.windows + this.slices - 1) / this.slices) - 1
  }

  get rangeCount (): number {
    return this.starts.length - 1
  }

  rangeStart (r: number): number {
    return this.starts[r]!
  }

  rangeLength (r: number): number {
    return this.starts[r + 1]! - this.starts[r]!
  }

  /** The range holding slice `i` (binary search). */
  rangeOf (sliceNo: number): number {
    let lo = 0
    let hi = this.rangeCount - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (this.starts[mid]! <= sliceNo) lo = mid
      else hi = mid - 1
    }
    return lo
  }
}
