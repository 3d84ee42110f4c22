/**
 * Rates as people write them: `500K`, `2M`, `1.5MB/s`, `800KiB/s` (bytes per second; K, M, G
 * are powers of 1000, Ki, Mi, Gi of 1024), or `off` for no cap.
 */
const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3 }

export const RATE_SYNTAX = 'a rate in bytes per second such as 500K, 2M, 1.5MB/s or 800KiB/s, or "off"'

/** Bytes per second, or null for "off"; throws on anything else. */
export function parseRate (text: string): number | null {
  const trimmed = text.trim().toLowerCase()
  if (trimmed === 'off' || trimmed === 'none') return null
  const match = /^(\d+(?:\.\d+)?)\s*(k|m|g|ki|mi|gi)?(?:b(?:\/s)?)?$/.exec(trimmed)
  if (match === null) throw new Error(`expected ${RATE_SYNTAX}, got "${text}"`)
  const value = Number(match[1]) * UNITS[match[2] ?? '']!
  if (!Number.isFinite(value) || value < 1) throw new Error(`expected ${RATE_SYNTAX}, got "${text}"`)
  return Math.round(value)
}

export function formatRate (bytesPerS: number | null): string {
  if (bytesPerS === null) return 'no cap'
  if (bytesPerS >= 1e6) return `${(bytesPerS / 1e6).toFixed(2)} MB/s`
  if (bytesPerS >= 1e3) return `${(bytesPerS / 1e3).toFixed(1)} kB/s`
  return `${bytesPerS} B/s`
}
