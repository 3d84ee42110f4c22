/**
 * The path's minimum round trip, and the round trip while this download keeps quiet, measured
 * as BBR's ProbeRTT does. Pure: fed round trips and time.
 *
 * A focused download that finds a queue standing (see StandingQueue) paces low for a short
 * while (see RateControl). The lowest round trip of that while is the quiet round trip: the
 * path's own, and the queue other flows hold by themselves. It is lower than the minimum when
 * the minimum was measured while a queue stood (another flow's, or this download's own
 * startup), and then becomes the minimum; it is higher when another flow keeps a queue of
 * its own, which is that flow's and not this download's to drain.
 *
 * Either finding shows another flow to yield to: its queue, or one that stood while the
 * minimum was measured. Such a flow is taken to stay for a while (OTHERS_LIFETIME_MS), and a
 * probe that finds neither does not say it left: a minimum measured while it already ran
 * holds its queue, and a flow whose window bounds it (BBR's) holds next to none once its
 * share is small, so a quiet round trip at the minimum is what a path shared with it shows
 * too. A probe that finds neither doubles the wait before the next: alone on a path (or on
 * loopback, where the receiver's busy moments read as queue) a download's own queue stands
 * now and then with nobody to yield to.
 */

/**
 * A higher minimum replaces the old one only after this long: a queue another flow keeps full
 * is not to be mistaken for the path's own delay.
 */
const MIN_RTT_WINDOW_MS = 30_000
/** Probes come at least this far apart; after each that finds no other flow, twice as far, up to MAX_PROBE_INTERVAL_MS. */
const PROBE_INTERVAL_MS = 2_000
const MAX_PROBE_INTERVAL_MS = 16_000
/**
 * A quiet round trip this far above the minimum (ms, or NEAR_RTT_FRACTION of it if more) is
 * another flow's queue. (Round trips are whole milliseconds, and jitter by a part of
 * themselves.) Round trips this near the minimum do not put off a probe: they show only
 * that the queue sank to the minimum, which may itself be too high.
 */
const NEAR_MS = 2
const NEAR_RTT_FRACTION = 0.1
/**
 * A minimum this low is never taken for one that another flow's queue inflated: the
 * endpoints' own delays while a transfer starts (code still cold, the first writes) lift the
 * round trips of an idle short path this much (1–4 ms in 30 runs alone on 50 Mbit/s), and
 * a quiet round trip under them would make a download alone take itself for shared. Beside
 * BBR started before it, the minimum startup measures reads 5–18 ms when a probe shows it
 * too high.
 */
const ENDPOINT_DELAY_MS = 4
/**
 * A probe lasts this long, and a smoothed round trip more: long enough for the lower pace to
 * reach the sender, for the queue to drain, and for requests sent then to come back.
 */
const PROBE_MS = 100
/** Another flow's queue changes as it does: the quiet round trip is measured again after this long. */
const QUIET_RTT_LIFETIME_MS = 5_000
/**
 * Another flow found is taken to be there this long after the last probe that found it. Not
 * for good: a flow that left shows only as room the probes find, and meanwhile the download
 * keeps a shorter queue and probes the round trip more often than it needs to.
 */
const OTHERS_LIFETIME_MS = 30_000

export class MinRtt {
  /** The minimum round trip, ms; Infinity before the first. */
  value = Infinity
  private measuredAtMs = -Infinity
  /** The probe under way, the lowest round trip it saw, and the minimum when it began. */
  private probe: { endsAtMs: number, lowest: number, minBefore: number } | null = null
  private lastProbeMs = -Infinity
  private probeIntervalMs = PROBE_INTERVAL_MS
  private quiet: { rttMs: number, atMs: number } | null = null
  /** When a probe last found another flow. */
  private othersFoundAtMs = -Infinity

  onSample (rttMs: number, tMs: number): void {
    if (this.probe !== null) this.probe.lowest = Math.min(this.probe.lowest, rttMs)
    if (rttMs < this.value || tMs - this.measuredAtMs > MIN_RTT_WINDOW_MS) {
      this.value = rttMs
      this.measuredAtMs = tMs
    }
  }

  /** The round trip a queue this download holds is measured from: the quiet one while it is fresh, else the minimum. */
  baseline (tMs: number): number {
    return this.freshQuiet(tMs) ? Math.max(this.value, this.quiet!.rttMs) : this.value
  }

  /** Whether a probe found another flow lately: its queue, or a minimum it had inflated. */
  othersFound (tMs: number): boolean {
    return tMs - this.othersFoundAtMs <= OTHERS_LIFETIME_MS
  }

  private freshQuiet (tMs: number): boolean {
    return this.quiet !== null && tMs - this.quiet.atMs <= QUIET_RTT_LIFETIME_MS
  }

  /** Whether a probe may start now. */
  probeAllowed (tMs: number): boolean {
    return this.probe === null && Number.isFinite(this.value) && tMs - this.lastProbeMs > this.probeIntervalMs
  }

  startProbe (tMs: number, srttMs: number): void {
    this.probe = { endsAtMs: tMs + PROBE_MS + Math.max(0, srttMs), lowest: Infinity, minBefore: this.value }
  }

  /** Ends the probe once its time is up. True when it ended. */
  endProbe (tMs: number): boolean {
    if (this.probe === null || tMs < this.probe.endsAtMs) return false
    const { lowest, minBefore } = this.probe
    if (Number.isFinite(lowest)) {
      const othersQueue = lowest >= this.value + nearMs(this.value)
      const minWasHigh = minBefore > ENDPOINT_DELAY_MS && lowest <= minBefore - nearMs(minBefore)
      this.quiet = { rttMs: lowest, atMs: tMs }
      if (othersQueue || minWasHigh) this.othersFoundAtMs = tMs
    }
    this.probeIntervalMs = this.othersFound(tMs) ? PROBE_INTERVAL_MS : Math.min(MAX_PROBE_INTERVAL_MS, 2 * this.probeIntervalMs)
    this.lastProbeMs = tMs
    this.probe = null
    return true
  }
}

/** How far from a round trip another is more than its noise. */
function nearMs (rttMs: number): number {
  return Math.max(NEAR_MS, NEAR_RTT_FRACTION * rttMs)
}
