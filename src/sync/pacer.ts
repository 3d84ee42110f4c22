/**
 * A token bucket that spreads a sender's events over time at a rate, instead of sending each
 * request's answer as one burst that a small bottleneck queue cannot hold. Pure: time comes
 * in as `tMs`; the caller sends what `take` allows and wakes up at `nextAtMs`.
 */

/** The most a bucket holds: this many milliseconds of its rate, and never less than `MIN_BURST_BYTES` or one item. */
export const BURST_MS = 2
/** Two events: one full datagram may always go at once. */
export const MIN_BURST_BYTES = 1024
/**
 * When the caller came late while items waited (a timer that fired late, a busy loop), this
 * much of the lost time is made up at once: the rate holds, at the price of a burst. A host
 * that calls only once a tick needs a tick's worth; one with a fine timer, less.
 */
export const CATCH_UP_MS = 12
/**
 * For a host with a fine timer (the daemon's): bursts stay small for small queues, yet an
 * event loop that comes late keeps most of its pace. At 3 ms, a loop late by 2 ms on average
 * kept a quarter less than asked, and the requester, which paces by what arrives, then asked
 * for less, and less, down to a trickle.
 */
export const FINE_TIMER_CATCH_UP_MS = 6

export class Pacer {
  private tokens = MIN_BURST_BYTES
  private lastMs = -1
  /** Items were left waiting at the last call: the time since was owed to them. */
  private backlogged = false

  /** `rateBytesPerS`: 0 means unpaced (everything may go at once). */
  constructor (private rateBytesPerS = 0, private readonly catchUpMs = CATCH_UP_MS) {}

  get rate (): number {
    return this.rateBytesPerS
  }

  setRate (rateBytesPerS: number): void {
    this.rateBytesPerS = Math.max(0, rateBytesPerS)
  }

  private depth (itemBytes: number): number {
    return Math.max(MIN_BURST_BYTES, itemBytes, (this.rateBytesPerS * BURST_MS) / 1000)
  }

  /** Items of `itemBytes` must fit in the bucket, or none would ever go. */
  private refill (tMs: number, itemBytes: number): void {
    if (this.lastMs >= 0 && tMs > this.lastMs) {
      const depth = this.depth(itemBytes)
      const cap = this.backlogged ? Math.max(depth, (this.rateBytesPerS * this.catchUpMs) / 1000) : depth
      this.tokens = Math.min(cap, this.tokens + ((tMs - this.lastMs) * this.rateBytesPerS) / 1000)
    }
    if (tMs > this.lastMs) this.lastMs = tMs
  }

  /** How many items of `itemBytes` may go now (at most `wanted`); they are paid for. */
  take (tMs: number, itemBytes: number, wanted: number): number {
    if (this.rateBytesPerS === 0) return wanted
    this.refill(tMs, itemBytes)
    const n = Math.min(wanted, Math.floor(this.tokens / itemBytes))
    this.tokens -= n * itemBytes
    this.backlogged = n < wanted
    return n
  }

  /** When the next item of `itemBytes` may go (now or later). */
  nextAtMs (tMs: number, itemBytes: number): number {
    if (this.rateBytesPerS === 0) return tMs
    this.refill(tMs, itemBytes)
    const lacking = itemBytes - this.tokens
    return lacking <= 0 ? tMs : tMs + (lacking * 1000) / this.rateBytesPerS
  }
}
