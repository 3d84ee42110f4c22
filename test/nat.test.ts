import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Natlab } from './helpers/natlab.js'
import { NatTrio, natPair } from './helpers/nat-pair.js'
import { REPUNCH_RELAYED_MS, PUNCH_MS } from '../src/net/traversal.js'
import type { PairResult } from './helpers/nat-pair.js'
import type { Middlebox } from './helpers/natlab.js'

const MiB = 1024 * 1024

/**
 * Real NATs (nftables in network namespaces, as root): alice on the public segment, bob and
 * carol each behind a middlebox of its own, no address announced by hand. A hole can be
 * punched unless one side's NAT picks a new port for every peer (`random`) while the other
 * lets in only what answers it (all three kinds do): then alice relays.
 */
const PUNCHABLE = (a: Middlebox, b: Middlebox): boolean => a !== 'random' && b !== 'random'
const KINDS: Middlebox[] = ['preserving', 'random', 'firewall']
const CELLS: Array<[Middlebox, Middlebox]> = KINDS.flatMap((a, i) => KINDS.slice(i).map(b => [a, b] as [Middlebox, Middlebox]))

function describe (r: PairResult): string {
  return `bob sees carol ${r.bobSees.route}${r.bobSees.via === null ? '' : ` via ${r.bobSees.via}`} after ${r.msToReach ?? '–'} ms, carol sees bob ${r.carolSees.route}; ` +
    `file ${r.verified ? 'verified' : `not verified (${r.lastState}${r.waiting === null ? '' : `: ${r.waiting}`})`} in ${r.seconds.toFixed(1)} s` +
    (r.diagnosis === null ? '' : `; ${r.diagnosis}`)
}

test('NAT matrix: every pair exchanges a file; punched pairs connect directly within 2 s, the others through the public member', async t => {
  const missing = Natlab.available()
  assert.equal(missing, null, `this test builds network namespaces with nftables NATs: ${missing ?? ''}`)
  for (const [bob, carol] of CELLS) {
    const r = await natPair({ bob, carol, fileBytes: 2 * MiB })
    t.diagnostic(`${bob} / ${carol}: ${describe(r)}`)
    assert.ok(r.verified, `${bob} / ${carol}: ${describe(r)}`)
    // bob announced where alice sees him beside his own address: his NAT's, with the port it kept if it keeps them.
    const publicPorts = r.bobAnnounced.filter(a => a.startsWith(`${r.bobPublicHost}:`)).map(a => Number(a.split(':')[1]))
    assert.ok(publicPorts.length > 0, `bob announced ${r.bobAnnounced.join(', ')}; his public address is ${r.bobPublicHost}`)
    if (bob === 'preserving') assert.ok(publicPorts.includes(7300), `bob's NAT kept his port: ${r.bobAnnounced.join(', ')}`)
    if (PUNCHABLE(bob, carol)) {
      assert.equal(r.firstRoute, 'direct', `${bob} / ${carol} punched: ${describe(r)}`)
      assert.equal(r.bobSees.route, 'direct')
      assert.equal(r.carolSees.route, 'direct')
      assert.ok(r.msToReach !== null && r.msToReach <= 2_000, `${bob} / ${carol}: direct after ${r.msToReach} ms`)
      assert.equal(r.relayedBytes, 0, 'nothing went through alice')
    } else {
      assert.deepEqual(r.bobSees, { route: 'relayed', via: 'alice' }, `${bob} / ${carol}: ${describe(r)}`)
      assert.deepEqual(r.carolSees, { route: 'relayed', via: 'alice' })
      assert.ok(r.relayedBytes >= 2 * MiB, `alice relayed ${r.relayedBytes} bytes`)
    }
  }
})

test('NAT: with relaying off, members that cannot punch are shown unreachable and the download says it waits for a holder', async () => {
  const r = await natPair({ bob: 'random', carol: 'random', fileBytes: 256 * 1024, aliceArgs: ['--no-relay'], timeoutMs: 8_000 })
  assert.equal(r.verified, false)
  assert.equal(r.bobSees.route, 'unreachable', describe(r))
  assert.equal(r.bobSees.via, null)
  assert.equal(r.waiting, 'waiting for a peer that holds it', describe(r))
  assert.equal(r.relayedBytes, 0)
})

test('NAT: a relay holds to its cap, and qf says who is relayed through whom', async () => {
  const capBytesPerS = 300_000
  const trio = await NatTrio.start({ bob: 'random', carol: 'preserving', aliceArgs: ['--relay-max-rate', String(capBytesPerS)] })
  try {
    const file = trio.share(MiB)
    assert.ok(await trio.bobLog.until('carol', 'relayed', 15_000), JSON.stringify(trio.bobLog.reach('carol')))
    const download = await trio.download(file, 30_000)
    assert.ok(download.verified, JSON.stringify(download))
    const rate = MiB / download.seconds
    assert.ok(rate <= capBytesPerS, `the file came at ${Math.round(rate)} B/s through a relay capped at ${capBytesPerS} B/s`)
    assert.ok(rate >= capBytesPerS * 0.4, `the file came at only ${Math.round(rate)} B/s through a relay capped at ${capBytesPerS} B/s`)
    const shown = trio.lab.procs.qf(trio.bob.ns, 'network', '--dir', trio.bob.dir)
    assert.match(shown, /carol connected through alice \(relayed\) since \d\d:\d\d:\d\d/)
    assert.match(shown, /alice connected directly at 10\.80\.0\.10:7300/)
    // alice passed the datagrams on without opening them: none of the file's slices reached her node.
    const aliceStatus = JSON.parse(trio.lab.procs.qf(trio.alice.ns, 'status', '--dir', trio.alice.dir, '--json')) as { stats: Record<string, number>, transit: { relayedBytes: number } }
    const { slicesAccepted, slicesDuplicate, slicesRejected, slicesUnsolicited } = aliceStatus.stats
    assert.deepEqual([slicesAccepted, slicesDuplicate, slicesRejected, slicesUnsolicited], [0, 0, 0, 0])
    assert.ok(aliceStatus.transit.relayedBytes >= MiB, `alice relayed ${aliceStatus.transit.relayedBytes} bytes`)
    const relay = trio.lab.procs.qf(trio.alice.ns, 'status', '--dir', trio.alice.dir)
    assert.match(relay, /relay: on, at most 300(\.0+)? kB\/s for 16 pairs; relaying for 1 pair now, [\d.]+ MiB passed on, \d+ datagrams dropped/)
  } finally {
    trio.close()
  }
})

test('NAT: members relayed while their direct path is cut keep punching, and move to it once it works', async () => {
  const trio = await NatTrio.start({ bob: 'preserving', carol: 'firewall', cut: true })
  try {
    assert.ok(await trio.bobLog.until('carol', 'relayed', 15_000), `bob reaches carol through alice while the path is cut: ${JSON.stringify(trio.bobLog.reach('carol'))}`)
    trio.lab.cutBetween(trio.at.bob, trio.at.carol, false)
    assert.ok(await trio.bobLog.until('carol', 'direct', REPUNCH_RELAYED_MS + PUNCH_MS + 3_000), `bob moved to the direct path: ${JSON.stringify(trio.bobLog.reach('carol'))}`)
    assert.ok(await trio.carolLog.until('bob', 'direct', 3_000), 'so did carol')
    const relayedBefore = trio.relayedBytes()
    const download = await trio.download(trio.share(MiB), 30_000)
    assert.ok(download.verified)
    const relayed = trio.relayedBytes() - relayedBefore
    assert.ok(relayed < 0.02 * MiB, `${relayed} bytes of it went through alice`)
  } finally {
    trio.close()
  }
})
