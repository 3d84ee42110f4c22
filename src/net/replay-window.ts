/**
 * Rejects replayed or very old datagram counters: remembers the highest counter seen and
 * which of the `size` counters below it arrived (a ring of bits).
 */
export class ReplayWindow {
  private highest = -1
  private readonly bits: Uint32Array

  constructor (private readonly size = 1024) {
    this.bits = new Uint32Array(size / 32)
  }

  /** True (and remembered) the first time a counter is seen within the window. */
  accept (counter: number): boolean {
    if (counter > this.highest) {
      const advance = Math.min(counter - this.highest, this.size)
      for (let k = 1; k <= advance; k++) this.clear(this.highest + k)
      this.highest = counter
      this.set(counter)
      return true
    }
    if (this.highest - counter >= this.size || this.has(counter)) return false
    this.set(counter)
    return true
  }

  private has (counter: number): boolean {
    const i = counter % this.size
    return (this.bits[i >>> 5]! & (1 << (i & 31))) !== 0
  }

  private set (counter: number): void {
    const i = counter % this.size
    this.bits[i >>> 5]! |= 1 << (i & 31)
  }

  private clear (counter: number): void {
    const i = counter % this.size
    this.bits[i >>> 5]! &= ~(1 << (i & 31))
  }
}
