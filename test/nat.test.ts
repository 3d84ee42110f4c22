import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Natlab } from './helpers/natlab.js'
import { natPair } from './helpers/nat-pair.js'
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
    `file ${r.verified ? 'verified' : `not verified (${r.lastState}${r.waiting === null ? '' : `: ${r.waiting}`})`} in ${r.seconds.toFixed(1)} s`
}

test('NAT matrix: every pair exchanges a file; punched pairs connect directly within 2 s, the others through the public member', async t => {
  const missing = Natlab.available()
  assert.equal(missing, null, `this test builds network namespaces with nftables NATs: ${missing ?? ''}`)
  for (const [bob, carol] of CELLS) {
    const r = await natPair({ bob, carol, fileBytes: 2 * MiB })
    t.diagnostic(`${bob} / ${carol}: ${describe(r)}`)
    assert.ok(r.verified, `${bob} / ${carol}: ${describe(r)}`)
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

test('NAT: a relay holds to its cap', async () => {
  const capBytesPerS = 300_000
  const fileBytes = MiB
  const r = await natPair({ bob: 'random', carol: 'preserving', fileBytes, aliceArgs: ['--relay-max-rate', String(capBytesPerS)] })
  assert.ok(r.verified, describe(r))
  assert.deepEqual(r.bobSees, { route: 'relayed', via: 'alice' })
  const rate = fileBytes / r.seconds
  assert.ok(rate <= capBytesPerS, `the file came at ${Math.round(rate)} B/s through a relay capped at ${capBytesPerS} B/s`)
  assert.ok(rate >= capBytesPerS * 0.4, `the file came at only ${Math.round(rate)} B/s through a relay capped at ${capBytesPerS} B/s`)
})
