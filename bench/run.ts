/**
 * `npm run bench`: runs each measurement in its own process and prints one JSON object.
 * Ratios compare figures taken in this same run, so a loaded machine shifts both sides.
 * Timed figures are the median of three runs; peak RSS is the highest of them. The UDP
 * transfer and its raw baseline run in alternating pairs, and the ratio is the median of the
 * pairs' ratios: this machine's speed drifts over seconds, and a pair sees the same drift.
 * Each pair also blasts real sealed slices at a receiver that does only the protocol's
 * required crypto: over the raw rate, that is the highest ratio a receiver can reach here.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { middle } from './middle.js'

const MiB = 1024 * 1024
/** UDP transfer + raw baseline pairs. */
const UDP_PAIRS = 7
const here = path.dirname(fileURLToPath(import.meta.url))
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-bench-'))

function task (name: string, bytes: number): Record<string, number> {
  const out = execFileSync(process.execPath, [path.join(here, 'tasks.js'), name, dir, String(bytes)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
  return JSON.parse(out) as Record<string, number>
}

/** Runs a task `times` times; returns the run with the median time, and the highest peak RSS seen. */
function median (name: string, bytes: number, times = 3): Record<string, number> {
  const runs = Array.from({ length: times }, () => task(name, bytes))
  return { ...middle(runs, r => r.seconds!), peak_rss_mb: Math.max(...runs.map(r => r.peak_rss_mb ?? 0)) }
}

const round = (x: number, digits = 3): number => Number(x.toFixed(digits))
/** Goodput of a 50 MiB transfer that took `seconds`, in Mbit/s. */
const goodputOf50MiB = (seconds: number): number => 50 * MiB * 8 / 1e6 / seconds

try {
  const copy50 = median('copy', 50 * MiB)
  const share50 = median('share', 50 * MiB)
  const sim50 = median('sim-sync', 50 * MiB)
  const share200 = task('share', 200 * MiB)
  const store = task('store-options', 50 * MiB)
  const pairs = Array.from({ length: UDP_PAIRS }, () => {
    const sync = task('udp-sync', 50 * MiB)
    const raw = task('udp-raw', 50 * MiB)
    const crypto = task('udp-raw-crypto', 50 * MiB)
    const ratioAt = (seconds: number): number => goodputOf50MiB(seconds) / raw.payload_mbps!
    return {
      sync,
      raw,
      crypto,
      ratio: ratioAt(sync.seconds!),
      warmRatio: ratioAt(sync.warm_seconds!),
      ceiling: crypto.payload_mbps! / raw.payload_mbps!,
      ofCeiling: goodputOf50MiB(sync.seconds!) / crypto.payload_mbps!
    }
  })
  const refusal = task('connect-refusal', 0)
  const flood = task('udp-flood', 20 * MiB)
  const api = task('api-load', MiB)
  const caps = task('rate-caps', 0)
  const paths = task('sim-paths', 32 * MiB)
  // Real kernel bottlenecks (needs root): its own process, one JSON object.
  const links = JSON.parse(execFileSync(process.execPath, [path.join(here, 'links.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })) as { links: unknown, tcp_congestion_control?: string, why?: string }
  // Real NATs (needs root and nftables): the same.
  const nat = JSON.parse(execFileSync(process.execPath, [path.join(here, 'nat.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })) as { nat: unknown, why?: string }
  const udp50 = middle(pairs.map(p => p.sync), r => r.seconds!)
  const raw50 = middle(pairs.map(p => p.raw), r => r.payload_mbps!)
  const goodputMbps = goodputOf50MiB(udp50.seconds!)
  const result = {
    share_50mib_s: round(share50.seconds!),
    copy_50mib_baseline_s: round(copy50.seconds!),
    share_vs_copy_ratio: round(share50.seconds! / copy50.seconds!, 2),
    share_50mib_mb_per_s: round(50 * MiB / 1e6 / share50.seconds!, 1),
    sim_sync_50mib_s: round(sim50.seconds!),
    sim_sync_50mib_simulated_s: round(sim50.simulated_s!),
    sim_sync_50mib_mb_per_s: round(50 * MiB / 1e6 / sim50.seconds!, 1),
    sim_sync_vs_share_ratio: round(sim50.seconds! / share50.seconds!, 2),
    sim_sync_50mib_requests: sim50.requests,
    share_200mib_s: round(share200.seconds!),
    peak_rss_mb: round(Math.max(share50.peak_rss_mb!, sim50.peak_rss_mb!), 1),
    share_50mib_peak_rss_mb: round(share50.peak_rss_mb!, 1),
    sim_sync_50mib_peak_rss_mb: round(sim50.peak_rss_mb!, 1),
    share_200mib_peak_rss_mb: round(share200.peak_rss_mb!, 1),
    store_sqlite_rows_write_50mib_s: round(store.sqlite_write_s!),
    store_sqlite_rows_read_50mib_s: round(store.sqlite_read_s!),
    store_slice_file_write_50mib_s: round(store.slice_file_write_s!),
    store_slice_file_read_50mib_s: round(store.slice_file_read_s!),
    udp_sync_50mib_s: round(udp50.seconds!),
    udp_goodput_mbps: round(goodputMbps, 1),
    udp_raw_baseline_mbps: round(raw50.payload_mbps!, 1),
    udp_raw_baseline_delivered: round(raw50.received! / raw50.sent!, 3),
    udp_goodput_ratio: round(middle(pairs, p => p.ratio).ratio, 3),
    udp_goodput_ratio_range: [round(Math.min(...pairs.map(p => p.ratio)), 3), round(Math.max(...pairs.map(p => p.ratio)), 3)],
    udp_sync_50mib_s_range: [round(Math.min(...pairs.map(p => p.sync.seconds!))), round(Math.max(...pairs.map(p => p.sync.seconds!)))],
    udp_required_crypto_mbps: round(middle(pairs.map(p => p.crypto), r => r.payload_mbps!).payload_mbps!, 1),
    udp_goodput_ratio_ceiling: round(middle(pairs, p => p.ceiling).ceiling, 3),
    udp_goodput_vs_required_crypto: round(middle(pairs, p => p.ofCeiling).ofCeiling, 3),
    udp_sync_50mib_warm_s: round(middle(pairs.map(p => p.sync), r => r.warm_seconds!).warm_seconds!),
    udp_goodput_ratio_warm: round(middle(pairs, p => p.warmRatio).warmRatio, 3),
    udp_sync_sender_cpu_s: round(udp50.sender_cpu_s!, 2),
    udp_sync_receiver_cpu_s: round(udp50.receiver_cpu_s!, 2),
    udp_daemon_peak_rss_mb: round(udp50.daemon_peak_rss_mb!, 1),
    udp_sync_timeouts: udp50.timeouts,
    connect_refusal_us: round(refusal.refusal_us!, 2),
    connect_sealed_open_us: round(refusal.sealed_open_us!, 1),
    udp_sync_20mib_s: round(flood.clean_s!),
    udp_sync_20mib_flooded_s: round(flood.flooded_s!),
    udp_flood_speed_kept: round(flood.clean_s! / flood.flooded_s!, 3),
    udp_flood_connects_per_s: 5000,
    udp_flood_refused_by_mac: flood.refused_by_mac,
    udp_flood_opened: flood.opened,
    api_streams_open: 200,
    api_idle_cpu_with_200_streams: round(api.idle_cpu_with_streams!, 3),
    api_status_100_clients_p50_ms: round(api.status_p50_ms!, 1),
    api_status_100_clients_p99_ms: round(api.status_p99_ms!, 1),
    api_status_daemon_cpu_ms: round(api.daemon_cpu_per_status_ms!, 3),
    rate_cap_download_ratio_10s: round(caps.download_ratio!),
    rate_cap_upload_ratio_10s: round(caps.upload_ratio!),
    sim_paths_20mbit_32mib_of_link: Object.fromEntries(Object.entries(paths).map(([key, value]) => [key, round(value)])),
    links_tcp_congestion_control: links.tcp_congestion_control ?? null,
    links: links.links ?? links.why,
    nat: nat.nat ?? nat.why,
    node: process.version,
    cpus: os.cpus().length
  }
  console.log(JSON.stringify(result, null, 2))
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}
