/**
 * Through real NATs (network namespaces, nftables): the matrix of middlebox pairs (how bob
 * reached carol, how long after he first knew her, how long a 4 MiB file took once reached)
 * and relayed transfers on a shaped relay uplink (goodput against the uplink, against the
 * framing ceiling of a relayed path, and how full the uplink was). Needs root. Prints one
 * JSON object.
 *   node dist/bench/nat.js
 */
import { Natlab } from '../test/helpers/natlab.js'
import { natPair } from '../test/helpers/nat-pair.js'
import type { Middlebox } from '../test/helpers/natlab.js'

const MiB = 1024 * 1024
const KINDS: Middlebox[] = ['preserving', 'random', 'firewall']
/**
 * File bytes per byte on the relay's uplink: a datagram of two events carries 900 file bytes
 * in 1,081 bytes of transit datagram, plus the relay's 9-byte header, UDP and IP (28) and
 * Ethernet (14).
 */
export const RELAYED_FRAMING_CEILING = 900 / (1081 + 9 + 28 + 14)

const round = (x: number, digits = 3): number => Number(x.toFixed(digits))

export async function measureNat (): Promise<Record<string, unknown>> {
  const matrix: Array<Record<string, unknown>> = []
  for (const [i, bob] of KINDS.entries()) {
    for (const carol of KINDS.slice(i)) {
      const r = await natPair({ bob, carol, fileBytes: 4 * MiB, reachFirst: true })
      matrix.push({ bob, carol, route: r.bobSees.route, via: r.bobSees.via, carol_sees: r.carolSees.route, ms_to_reach: r.msToReach, file_4mib_s: round(r.seconds, 2), verified: r.verified })
    }
  }
  const relayed: Array<Record<string, unknown>> = []
  for (const mbit of [10, 50]) {
    const fileBytes = Math.round(10 * mbit * 1e6 * RELAYED_FRAMING_CEILING / 8 / MiB) * MiB
    const r = await natPair({ bob: 'random', carol: 'random', fileBytes, relayUplinkMbit: mbit, reachFirst: true, timeoutMs: 180_000 })
    const goodputMbit = fileBytes * 8 / r.seconds / 1e6
    relayed.push({
      relay_uplink_mbit: mbit,
      file_mib: fileBytes / MiB,
      seconds: round(r.seconds, 2),
      goodput_mbit: round(goodputMbit, 2),
      goodput_of_uplink: round(goodputMbit / mbit),
      goodput_of_relayed_ceiling: round(goodputMbit / (mbit * RELAYED_FRAMING_CEILING)),
      uplink_busy: r.uplinkBytes === null ? null : round(r.uplinkBytes * 8 / r.seconds / 1e6 / mbit),
      route: r.bobSees.route,
      verified: r.verified
    })
  }
  return { matrix, relayed, relayed_framing_ceiling: round(RELAYED_FRAMING_CEILING) }
}

if (process.argv[1]?.endsWith('nat.js') === true) {
  const missing = Natlab.available()
  console.log(JSON.stringify(missing !== null ? { nat: null, why: missing } : { nat: await measureNat() }, null, 2))
}
