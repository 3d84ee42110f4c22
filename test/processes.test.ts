import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import dgram from 'node:dgram'
import { spawn } from 'node:child_process'
import { makeFile, partialsOf, sha256OfFile } from './helpers/sim.js'
import { startProcessNetwork, status, waitFor } from './helpers/daemons.js'
import { QF_MAIN, qf, sleep, stopDaemonProcess } from '../src/cli/processes.js'
import { TransitEndpoint } from '../src/net/transit.js'
import { CONNECT_DATAGRAM_BYTES } from '../src/wire/transit.js'
import { loadNetwork, loadIdentity } from '../src/node/config.js'
import { fromHex } from '../src/bytes.js'
import { decodeInvite } from '../src/wire/invite.js'
import { randomBytes, signKeyPair } from '../src/crypto/index.js'
import { startLossyRelay } from './helpers/relay.js'
import type { LossyRelay } from './helpers/relay.js'
import type { Member, ProcessNetwork } from './helpers/daemons.js'
import type { Progress } from '../src/node/progress.js'
import type { ChildProcess } from 'node:child_process'

const MiB = 1024 * 1024

async function seesFile (member: Member, fileId: string): Promise<boolean> {
  const files = await member.api.call<Array<{ fileId: string }>>('GET', '/api/files')
  return files.some(f => f.fileId === fileId)
}

/** `from` shares a generated file with `qf share`; resolves once `to` knows it. */
async function shareAndSee (net: { root: string }, from: Member, to: Member, name: string, size: number, seed: number): Promise<{ source: string, fileId: string }> {
  const source = makeFile(net.root, name, size, seed)
  const fileId = qf('share', source, '--dir', from.dir)
  await waitFor(`${to.name} to see ${name}`, async () => await seesFile(to, fileId))
  return { source, fileId }
}

function runGet (member: Member, fileId: string, out: string, extra: string[] = []): { child: ChildProcess, exited: Promise<{ code: number | null, stdout: string, stderr: string }> } {
  const child = spawn(process.execPath, [QF_MAIN, 'get', fileId, '--dir', member.dir, '--out', out, ...extra], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  return { child, exited: new Promise(resolve => child.on('exit', code => resolve({ code, stdout, stderr }))) }
}

/**
 * alice shares `NAME.bin` (2 MiB) and stops, so nothing can arrive and the download stays
 * open; bob runs `qf get` to `NAME.out`, which has asked for the download and the save.
 */
async function getWhileSharerAway (net: ProcessNetwork, name: string, extra: string[]) {
  const [alice, bob] = net.members as [Member, Member]
  const { source, fileId } = await shareAndSee(net, alice, bob, `${name}.bin`, 2 * MiB, name.length)
  await stopDaemonProcess(alice.daemon)
  const out = path.join(net.root, `${name}.out`)
  const get = runGet(bob, fileId, out, extra)
  await waitFor('the download and the save asked for', async () => (await status(bob, fileId)).saves.length > 0)
  return { alice, bob, source, fileId, out, get }
}

test('three processes over UDP: a 5 MiB file shared by one is fetched by the two others with qf get', async () => {
  const net = await startProcessNetwork(['alice', 'bob', 'carol'])
  try {
    const [alice, bob, carol] = net.members as [Member, Member, Member]
    const source = makeFile(net.root, 'five.bin', 5 * MiB, 21)
    const shared = JSON.parse(qf('share', source, '--dir', alice.dir, '--json')) as { file_id: string, name: string, size: number }
    assert.deepEqual(Object.keys(shared).sort(), ['file_id', 'name', 'size'])
    assert.equal(shared.size, 5 * MiB)
    await waitFor('the descriptor to reach bob and carol', async () => await seesFile(bob, shared.file_id) && await seesFile(carol, shared.file_id))
    const files = JSON.parse(qf('files', '--dir', carol.dir, '--json')) as Array<{ fileId: string, name: string, state: string }>
    assert.deepEqual(files.map(f => [f.fileId, f.name, f.state]), [[shared.file_id, 'five.bin', 'available']])
    const [b, c] = await Promise.all([
      runGet(bob, shared.file_id, path.join(net.root, 'bob.bin'), ['--json']).exited,
      runGet(carol, shared.file_id, path.join(net.root, 'carol.bin')).exited
    ])
    assert.equal(b.code, 0, b.stderr)
    assert.equal(c.code, 0, c.stderr)
    const lines = b.stdout.trim().split('\n').map(l => JSON.parse(l) as { event: string, state?: string })
    assert.equal(lines.at(-1)!.event, 'saved')
    assert.ok(lines.some(l => l.event === 'progress' && l.state === 'complete'))
    const expected = await sha256OfFile(source)
    assert.equal(await sha256OfFile(path.join(net.root, 'bob.bin')), expected)
    assert.equal(await sha256OfFile(path.join(net.root, 'carol.bin')), expected)
    // Never overwrites without --force.
    const again = await runGet(bob, shared.file_id, path.join(net.root, 'bob.bin')).exited
    assert.notEqual(again.code, 0)
    assert.match(again.stderr, /already exists; use --force/)
  } finally { await net.close() }
})

test('over relays that drop 5% of datagrams each way, a 5 MiB file comes through whole with qf get', async () => {
  const relays: LossyRelay[] = []
  // The relays are closed even if the daemons never start: open sockets would hold the test open.
  try {
    const net = await startProcessNetwork(['alice', 'bob'], {
      // Each daemon is reached only through its own lossy relay.
      announce: async (_name, port) => {
        const relay = await startLossyRelay(port, 0.05, relays.length + 1)
        relays.push(relay)
        return [`127.0.0.1:${relay.port}`]
      }
    })
    try {
      const [alice, bob] = net.members as [Member, Member]
      const { source, fileId } = await shareAndSee(net, alice, bob, 'lossy.bin', 5 * MiB, 12)
      const out = path.join(net.root, 'lossy.out')
      const started = performance.now()
      const got = await runGet(bob, fileId, out, ['--json']).exited
      const seconds = (performance.now() - started) / 1000
      assert.equal(got.code, 0, got.stderr)
      assert.equal(await sha256OfFile(out), await sha256OfFile(source))
      const dropped = relays.reduce((n, r) => n + r.dropped, 0)
      const forwarded = relays.reduce((n, r) => n + r.forwarded, 0)
      assert.ok(dropped > 200, `the relays dropped ${dropped} of ${dropped + forwarded} datagrams`)
      const stats = (await bob.api.call<{ stats: { slicesDuplicate: number, requestsTimedOut: number } }>('GET', '/api/status')).stats
      console.log(`# 5 MiB through 5% loss each way: ${seconds.toFixed(2)} s, ${dropped} datagrams dropped, ${stats.requestsTimedOut} requests given up, ${stats.slicesDuplicate} duplicate slices`)
    } finally { await net.close() }
  } finally {
    await Promise.all(relays.map(async r => await r.close()))
  }
})

test('pause, resume and cancel through the CLI against running daemons', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice, bob] = net.members as [Member, Member]
    const { source, fileId } = await shareAndSee(net, alice, bob, 'big.bin', 120 * MiB, 5)
    const get = runGet(bob, fileId, path.join(net.root, 'out.bin'))
    await waitFor('some progress', async () => (await status(bob, fileId)).slicesReceived > 0, 30_000, 5)
    const paused = JSON.parse(qf('pause', fileId, '--dir', bob.dir, '--json')) as { state: string }
    assert.equal(paused.state, 'paused')
    await sleep(1000) // replies in flight drain
    const held = (await status(bob, fileId)).slicesReceived
    await sleep(1500)
    const later = await status(bob, fileId)
    assert.equal(later.slicesReceived, held, 'nothing arrives while paused')
    assert.equal(later.state, 'paused')
    assert.ok(held < later.slicesTotal, 'paused before the end')
    assert.match(qf('resume', fileId, '--dir', bob.dir), /resumed/)
    const done = await get.exited
    assert.equal(done.code, 0, done.stderr)
    assert.equal(await sha256OfFile(path.join(net.root, 'out.bin')), await sha256OfFile(source))

    // Cancel mid-way: qf get reports it and fails; the partial data is gone.
    const { fileId: second } = await shareAndSee(net, alice, bob, 'second.bin', 120 * MiB, 6)
    const get2 = runGet(bob, second, path.join(net.root, 'second.out'))
    await waitFor('some progress', async () => (await status(bob, second)).slicesReceived > 0, 30_000, 5)
    const cancelled = JSON.parse(qf('cancel', second, '--dir', bob.dir, '--json')) as { state: string, bytesReceived: number }
    assert.equal(cancelled.state, 'cancelled')
    assert.equal(cancelled.bytesReceived, 0)
    const result = await get2.exited
    assert.notEqual(result.code, 0)
    // The same words as when it was cancelled while qf get waited for the daemon.
    assert.match(result.stderr, /second\.bin: the download was cancelled/)
    assert.equal(fs.existsSync(path.join(net.root, 'second.out')), false)
    assert.deepEqual(partialsOf(path.join(net.root, 'second.out')), [], 'the partial save is removed')
    assert.equal(fs.existsSync(path.join(bob.dir, 'slices', `${second}.slc`)), false, 'partial slices deleted')
  } finally { await net.close() }
})

test('SIGKILL mid-download: the restarted daemon resumes by itself, does not fetch stored slices again, and qf get rides it out', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice, bob] = net.members as [Member, Member]
    const { source, fileId } = await shareAndSee(net, alice, bob, 'film.bin', 120 * MiB, 9)
    const out = path.join(net.root, 'film.out')
    const get = runGet(bob, fileId, out, ['--json', '--priority', '7'])
    await waitFor('about half', async () => (await status(bob, fileId)).percent >= 40, 60_000, 5)
    bob.daemon.child.kill('SIGKILL')
    await bob.daemon.exited
    await sleep(1000)
    await net.restart(bob)
    // One snapshot: what is held now, minus what arrived since the restart, is what was kept.
    const snapshot = await bob.api.call<{ downloads: Progress[], stats: { slicesAccepted: number } }>('GET', '/api/status')
    const resumed = snapshot.downloads.find(d => d.fileId === fileId)!
    const kept = resumed.slicesReceived - snapshot.stats.slicesAccepted
    assert.ok(kept > 0 && kept < resumed.slicesTotal, `kept ${kept} slices across the crash`)
    assert.notEqual(resumed.state, 'available', 'the download is still wanted')
    // The qf get started before the crash waits for the daemon, asks again, and finishes.
    const got = await get.exited
    assert.equal(got.code, 0, got.stderr)
    const events = got.stdout.trim().split('\n').map(line => JSON.parse(line) as { event: string })
    const said = events.map(e => e.event)
    assert.ok(said.indexOf('daemon_unreachable') > 0 && said.indexOf('daemon_back') > said.indexOf('daemon_unreachable'), `events: ${[...new Set(said)].join(', ')}`)
    assert.equal(said.at(-1), 'saved')
    assert.equal(await sha256OfFile(out), await sha256OfFile(source))
    assert.deepEqual(partialsOf(out), [], 'no partial file left behind')
    const final = await status(bob, fileId)
    assert.equal(final.state, 'complete')
    const after = await bob.api.call<{ stats: { slicesAccepted: number, slicesDuplicate: number }, transit: unknown }>('GET', '/api/status')
    const stats = after.stats
    const context = JSON.stringify(after)
    assert.equal(stats.slicesAccepted, final.slicesTotal - kept, `exactly the missing slices were stored after the restart: ${context}`)
    assert.equal(stats.slicesDuplicate, 0, `no stored slice was fetched again: ${context}`)
  } finally { await net.close() }
})

test('qf get whose daemon stops and does not come back gives up after --daemon-wait with one line', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const { bob, out, get: started } = await getWhileSharerAway(net, 'note', ['--json', '--daemon-wait', '1'])
    await stopDaemonProcess(bob.daemon)
    const got = await started.exited
    assert.notEqual(got.code, 0)
    assert.match(got.stderr, /stopped and did not run again within 1 s/)
    assert.equal(got.stderr.trim().split('\n').length, 1, `one line: ${got.stderr}`)
    const said = got.stdout.trim().split('\n').map(line => (JSON.parse(line) as { event: string }).event)
    assert.ok(said.includes('daemon_unreachable') && !said.includes('daemon_back') && !said.includes('saved'), `events: ${said.join(', ')}`)
    assert.equal(fs.existsSync(out), false)
  } finally { await net.close() }
})

test('an invite carries every announced address, and a member reaches the inviter at the one that answers', async () => {
  // 192.0.2.1 is reserved for documentation: nothing answers there.
  const net = await startProcessNetwork(['alice', 'bob'], { announce: (name, port) => [...name === 'alice' ? ['192.0.2.1:9'] : [], `127.0.0.1:${port}`] })
  try {
    const [alice, bob] = net.members as [Member, Member]
    const working = `127.0.0.1:${alice.daemon.port}`
    const invite = decodeInvite(qf('invite', '--dir', alice.dir))
    assert.deepEqual(invite.addresses.map(a => `${a.host}:${a.port}`), ['192.0.2.1:9', working])
    const peer = await waitFor('bob to connect to alice', async () => {
      const peers = await bob.api.call<Array<{ name: string, address: string, addresses: string[], connected: boolean }>>('GET', '/api/peers')
      return peers.find(p => p.name === 'alice' && p.connected)
    })
    assert.equal(peer.address, working)
    assert.deepEqual([...peer.addresses].sort(), [working, '192.0.2.1:9'])
    const { fileId } = await shareAndSee(net, alice, bob, 'notes.txt', 10_000, 4)
    assert.match(fileId, /^[0-9a-f]{32}$/)
  } finally { await net.close() }
})

test('qf get stopped with Ctrl-C leaves the download and the save to the daemon, which finishes both even across a restart', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const { alice, bob, source, fileId, out, get } = await getWhileSharerAway(net, 'later', ['--json'])
    get.child.kill('SIGINT')
    const got = await get.exited
    assert.equal(got.code, 130)
    assert.equal(got.stdout.trim().split('\n').map(line => (JSON.parse(line) as { event: string }).event).at(-1), 'detached')
    bob.daemon.child.kill('SIGKILL')
    await bob.daemon.exited
    await net.restart(bob)
    assert.deepEqual((await status(bob, fileId)).saves, [{ path: out, state: 'writing', error: null }], 'the restarted daemon took the save up again')
    await net.restart(alice)
    const saved = await waitFor('the file saved with nobody asking', async () => {
      const progress = await status(bob, fileId)
      return progress.saves[0]?.state === 'saved' ? progress : null
    }, 60_000)
    assert.equal(saved.state, 'complete')
    assert.equal(await sha256OfFile(out), await sha256OfFile(source))
    assert.deepEqual(partialsOf(out), [])
  } finally { await net.close() }
})

test('qf get that finds its download cancelled while it waited for the daemon stops, and does not ask for it again', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const { bob, fileId, get } = await getWhileSharerAway(net, 'maybe', ['--json'])
    // qf get is frozen while the daemon dies, comes back, and the download is cancelled.
    get.child.kill('SIGSTOP')
    bob.daemon.child.kill('SIGKILL')
    await bob.daemon.exited
    await net.restart(bob)
    qf('cancel', fileId, '--dir', bob.dir)
    get.child.kill('SIGCONT')
    // Were the download asked for again, qf get would wait for it: give it 30 s.
    const got = await Promise.race([get.exited, sleep(30_000).then(async () => { get.child.kill('SIGKILL'); return await get.exited })])
    assert.equal(got.code, 1, `qf get: ${got.stdout} ${got.stderr}`)
    assert.match(got.stderr, /maybe\.bin: the download was cancelled/)
    assert.equal((await status(bob, fileId)).state, 'cancelled', 'still cancelled')
  } finally { await net.close() }
})

test('a stranger without the invite gets nothing back: no accept, no descriptor, no slice', async () => {
  const net = await startProcessNetwork(['alice'])
  const socket = dgram.createSocket('udp4')
  try {
    const [alice] = net.members as [Member]
    const fileId = qf('share', makeFile(net.root, 'secret.bin', 100_000, 2), '--dir', alice.dir)
    const alicePk = loadIdentity(alice.dir)!.publicKey
    const received: Buffer[] = []
    socket.on('message', msg => received.push(msg))
    await new Promise<void>(resolve => socket.bind(0, '127.0.0.1', resolve))
    const target = { host: '127.0.0.1', port: alice.daemon.port }
    const endpointWith = (networkKey: Uint8Array, networkId: Uint8Array) => new TransitEndpoint({
      identity: signKeyPair(), networkId, networkKey,
      sendDatagram: (bytes, to) => socket.send(bytes, to.port, to.host),
      deliver: () => {},
      now: () => Date.now()
    })
    const realNetwork = loadNetwork(alice.dir)!
    // A stranger who knows alice's key and address but not the network key.
    endpointWith(randomBytes(32), realNetwork.networkId).connect(alicePk, target)
    // Garbage, a truncated connect, and data for a connection that does not exist.
    socket.send(Buffer.from('hello'), target.port, target.host)
    socket.send(Buffer.alloc(286, 0x51), target.port, target.host)
    const fake = Buffer.concat([Buffer.from([0x52]), randomBytes(16), Buffer.alloc(24), randomBytes(1040)])
    socket.send(fake, target.port, target.host)
    await sleep(1500)
    assert.equal(received.length, 0, 'nothing came back')
    const transit = (await alice.api.call<{ transit: Record<string, number> }>('GET', '/api/status')).transit
    assert.equal(transit.connectsBadMac, 1, 'the stranger\'s connect fails its mac1')
    assert.equal(transit.connectsOpened, 0, 'no public-key work for any of it')
    assert.equal(transit.unknownConnection, 1)
    assert.ok(transit.malformed! >= 2)

    // The same connect from a member (who has the key) is accepted, with a reply smaller than the connect.
    endpointWith(realNetwork.networkKey, realNetwork.networkId).connect(alicePk, target)
    await waitFor('an accept', async () => received.length > 0, 5000)
    assert.ok(received[0]!.length < CONNECT_DATAGRAM_BYTES, 'the accept is smaller than the connect')
    assert.ok(fileId.length === 32 && fromHex(fileId).length === 16)
  } finally {
    socket.close()
    await net.close()
  }
})

test('a download with no reachable holder says it waits for a peer that holds it, and goes on when one is back', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice, bob] = net.members as [Member, Member]
    const { source, fileId } = await shareAndSee(net, alice, bob, 'away.bin', 2 * MiB, 17)
    alice.daemon.child.kill('SIGKILL')
    await alice.daemon.exited
    // Connected means heard from within 1.5 s (keepalives every 0.5 s): bob stops saying so within 3 s.
    await waitFor('bob to notice alice is gone', async () => (await bob.api.call<Array<{ connected: boolean }>>('GET', '/api/peers')).every(p => !p.connected), 3_000, 100)
    await bob.api.call('POST', `/api/files/${fileId}/download`, { priority: 8 })
    const waiting = await status(bob, fileId)
    assert.equal(waiting.state, 'queued')
    assert.equal(waiting.reason, 'waiting for a peer that holds it')
    assert.match(qf('status', '--dir', bob.dir), /away\.bin queued: waiting for a peer that holds it/)
    await net.restart(alice)
    const out = path.join(net.root, 'away.out')
    await bob.api.call('POST', `/api/files/${fileId}/save`, { path: out })
    await waitFor('the download to finish', async () => (await status(bob, fileId)).saving?.state === 'saved', 60_000)
    assert.equal(await sha256OfFile(out), await sha256OfFile(source))
  } finally { await net.close() }
})
