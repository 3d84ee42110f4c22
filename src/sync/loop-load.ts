/**
 * Whether the receiving node itself was a round's bottleneck: its event loop busy nearly all
 * the round. Pure: fed the loop's utilization over spans of time, asked once per round.
 *
 * A path faster than the receiver can take in (loopback, a fast LAN) queues slices in the
 * receiver's own socket buffer, and that queue shows in the round trips just as a router's
 * does. It is no other flow's, though: no flow beside this one waits behind it, and draining
 * it only leaves the receiver idle, while its speed still grows (a freshly started daemon's
 * code is compiled over its first second). So while the loop is saturated a focused download
 * does not read that delay as a path queue, and the window (see RateControl.window) is what
 * bounds the backlog.
 */

/** A loop busy this part of a round or more is saturated. */
export const SATURATED_LOAD = 0.9
/**
 * Only this many saturated rounds in a row make the receiver the bottleneck: a daemon busy
 * for a moment (its code compiled as a download starts, a window hashed, a batch written)
 * saturates one round now and then on a path slower than itself, where that round's delay
 * is the path's.
 */
export const SATURATED_ROUNDS = 3

export class LoopLoad {
  private busyMs = 0
  private spanMs = 0
  private saturatedRounds = 0

  /** The loop was busy `utilization` (0..1) of the last `ms` milliseconds. */
  onSample (utilization: number, ms: number): void {
    if (!(ms > 0) || !Number.isFinite(utilization)) return
    this.busyMs += Math.min(1, Math.max(0, utilization)) * ms
    this.spanMs += ms
  }

  /**
   * Whether the loop was saturated over the round that closes and the SATURATED_ROUNDS - 1
   * before, none of them losing slices (`lost`: this one did); the next round starts. A
   * receiver's socket buffer, sized for thousands of datagrams, seldom overflows: losses say
   * a queue on the path is full too.
   */
  closeRound (lost: boolean): boolean {
    const saturated = !lost && this.spanMs > 0 && this.busyMs >= SATURATED_LOAD * this.spanMs
    this.saturatedRounds = saturated ? this.saturatedRounds + 1 : 0
    this.busyMs = 0
    this.spanMs = 0
    return this.saturatedRounds >= SATURATED_ROUNDS
  }
}
