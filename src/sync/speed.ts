/**
 * Transfer speed as a moving average: bytes that arrived in the last `windowMs`, divided by
 * the time they span (at most the window). Fed by the node on every accepted slice.
 */
export class SpeedMeter {
  private readonly times: number[] = []
  private readonly bytes: number[] = []
  private sum = 0
  private firstAt = -1

  constructor (private readonly windowMs = 2000) {}

  add (byteCount: number, tMs: number): void {
    if (this.firstAt < 0) this.firstAt = tMs
    const last = this.times.length - 1
    if (last >= 0 && this.times[last] === tMs) this.bytes[last]! += byteCount
    else { this.times.push(tMs); this.bytes.push(byteCount) }
    this.sum += byteCount
  }

  /** Bytes per second at `tMs`; 0 when nothing arrived within the window. */
  rate (tMs: number): number {
    this.trim(tMs)
    if (this.sum === 0) return 0
    // Span from the start of the window, or from the first arrival ever when younger than
    // the window; at least 1 ms so the first tick does not divide by zero.
    const span = Math.max(1, Math.min(this.windowMs, tMs - this.firstAt))
    return (this.sum * 1000) / span
  }

  reset (): void {
    this.times.length = 0
    this.bytes.length = 0
    this.sum = 0
    this.firstAt = -1
  }

  private trim (tMs: number): void {
    let drop = 0
    while (drop < this.times.length && this.times[drop]! <= tMs - this.windowMs) this.sum -= this.bytes[drop++]!
    if (drop > 0) { this.times.splice(0, drop); this.bytes.splice(0, drop) }
  }
}
