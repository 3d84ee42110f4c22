/**
 * One measurement per process, so each peak RSS belongs to one job:
 *   node dist/bench/tasks.js <task> <dir> <bytes>
 * prints {"seconds": …, "peak_rss_mb": …, …} on stdout.
 */
import fs from 'node:fs'
import path from 'node:path'
import Database from 'better-sqlite3'
import { performance } from 'node:perf_hooks'
import { makeCluster, makeFile, sha256OfFile } from '../test/helpers/sim.js'
import { Node } from '../src/node/node.js'
import { randomBytes, signKeyPair } from '../src/crypto/index.js'
import { SliceFileWriter } from '../src/store/slice-file.js'
import { SliceEncryptor } from '../src/files/encrypt.js'
import { SLICE_PLAINTEXT_BYTES, SLICE_RECORD_BYTES } from '../src/wire/slice.js'
import dgram from 'node:dgram'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { settled, startProcessNetwork, waitFor } from '../test/helpers/daemons.js'
import { qf } from '../src/cli/processes.js'
import { sliceCount } from '../src/files/windows.js'
import { DATA_OVERHEAD_BYTES } from '../src/wire/transit.js'
import { EVENT_BYTES } from '../src/wire/constants.js'
import { SOCKET_BUFFER_BYTES } from '../src/net/udp.js'
import { sealedSliceDatagram } from './required-receive-work.js'
import { apiLoad, connectRefusal, udpFlood } from './hardening.js'
import { rateCaps } from './caps.js'
import { cpuSecondsOfPid, peakRssOfPid } from './proc.js'
import type { Member } from '../test/helpers/daemons.js'

type Result = Record<string, number>

function peakRssMb (): number {
  return process.resourceUsage().maxRSS / 1024
}

function sourceFile (dir: string, bytes: number): string {
  const name = `source-${bytes}.bin`
  const existing = path.join(dir, name)
  return fs.existsSync(existing) ? existing : makeFile(dir, name, bytes, 99)
}

/** Slicing + encrypting + storing a file, as `share` does it. */
async function share (dir: string, bytes: number): Promise<Result> {
  const source = sourceFile(dir, bytes)
  const node = Node.open({ dataDir: path.join(dir, `share-node-${process.pid}`), identity: signKeyPair(), networkKey: randomBytes(32) })
  const start = performance.now()
  await node.share(source)
  const seconds = (performance.now() - start) / 1000
  node.close()
  return { seconds, peak_rss_mb: peakRssMb() }
}

/** The baseline for `share`: read and write the same bytes, no crypto, no hashing. */
async function copy (dir: string, bytes: number): Promise<Result> {
  const source = sourceFile(dir, bytes)
  const target = path.join(dir, `copy-${process.pid}.bin`)
  const start = performance.now()
  const writer = new SliceFileWriter(`${target}.tmp`)
  for await (const chunk of fs.createReadStream(source, { highWaterMark: 1 << 20 })) writer.append(chunk as Buffer)
  writer.commit(target)
  return { seconds: (performance.now() - start) / 1000, peak_rss_mb: peakRssMb() }
}

/** Focused sync of one file between two nodes on the simulated network, no loss. */
async function simSync (dir: string, bytes: number): Promise<Result> {
  const source = sourceFile(dir, bytes)
  const cluster = makeCluster(['alice', 'bob'], { latencyMs: 5 })
  try {
    const [alice, bob] = cluster.peers as [typeof cluster.peers[0], typeof cluster.peers[0]]
    const { fileId } = await alice.node.share(source)
    cluster.net.step(10)
    const start = performance.now()
    bob.node.requestFile(fileId)
    const simulatedMs = cluster.net.runUntil(() => bob.node.progress(fileId).state === 'complete', { maxMs: 3_600_000 })
    const seconds = (performance.now() - start) / 1000
    return { seconds, simulated_s: simulatedMs / 1000, peak_rss_mb: peakRssMb(), requests: bob.node.stats().requestsSent }
  } finally {
    cluster.close()
  }
}

/**
 * Focused sync over a simulated 20 Mbit/s path with a 200 ms queue, at 20, 100 and 200 ms
 * round trips, without loss and with 1% random loss: goodput over the link (simulated time).
 */
async function simPaths (dir: string, bytes: number): Promise<Result> {
  const source = sourceFile(dir, bytes)
  const result: Result = {}
  for (const rttMs of [20, 100, 200]) {
    for (const loss of [0, 0.01]) {
      const cluster = makeCluster(['alice', 'bob'], { latencyMs: rttMs / 2, loss, bandwidthBps: 20e6, maxQueueMs: 200 }, 5)
      try {
        const [alice, bob] = cluster.peers as [typeof cluster.peers[0], typeof cluster.peers[0]]
        const { fileId } = await alice.node.share(source)
        bob.node.ingestEvent(alice.node.descriptorEvent(fileId))
        bob.node.requestFile(fileId)
        const simulatedMs = cluster.net.runUntil(() => bob.node.progress(fileId).state === 'complete', { maxMs: 3_600_000 })
        result[`rtt_${rttMs}ms_loss_${loss * 100}pct_of_link`] = (bytes * 8) / (simulatedMs / 1000) / 20e6
      } finally {
        cluster.close()
      }
    }
  }
  return result
}

/** The two ways to store slices DESIGN.md allows, with the same records. */
async function storeOptions (dir: string, bytes: number): Promise<Result> {
  const source = sourceFile(dir, bytes)
  const batches: Uint8Array[] = []
  const encryptor = new SliceEncryptor(randomBytes(32), randomBytes(20), (_first, records) => batches.push(records.slice()))
  for await (const chunk of fs.createReadStream(source, { highWaterMark: 1 << 20 })) encryptor.push(chunk as Buffer)
  encryptor.finish()
  const fileId = randomBytes(16)

  let start = performance.now()
  const db = new Database(path.join(dir, `slices-${process.pid}.db`))
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec('CREATE TABLE slices (file_id BLOB NOT NULL, slice_no INTEGER NOT NULL, record BLOB NOT NULL, PRIMARY KEY (file_id, slice_no)) WITHOUT ROWID')
  const insert = db.prepare('INSERT INTO slices VALUES (?, ?, ?)')
  let sliceNo = 0
  for (const batch of batches) {
    db.transaction(() => {
      for (let at = 0; at < batch.length; at += SLICE_RECORD_BYTES) insert.run(fileId, sliceNo++, batch.subarray(at, at + SLICE_RECORD_BYTES))
    })()
  }
  db.pragma('wal_checkpoint(TRUNCATE)')
  const sqliteWrite = (performance.now() - start) / 1000
  start = performance.now()
  let read = 0
  for (const row of db.prepare('SELECT record FROM slices WHERE file_id = ? ORDER BY slice_no').iterate(fileId) as IterableIterator<{ record: Buffer }>) read += row.record.length
  const sqliteRead = (performance.now() - start) / 1000
  db.close()

  start = performance.now()
  const target = path.join(dir, `slices-${process.pid}.slc`)
  const writer = new SliceFileWriter(`${target}.tmp`)
  for (const batch of batches) writer.append(batch)
  writer.commit(target)
  const fileWrite = (performance.now() - start) / 1000
  start = performance.now()
  let fileRead = 0
  for await (const chunk of fs.createReadStream(target, { highWaterMark: 1 << 20 })) fileRead += (chunk as Buffer).length
  const sliceFileRead = (performance.now() - start) / 1000
  if (fileRead !== read) throw new Error('store options read back different amounts')
  return { sqlite_write_s: sqliteWrite, sqlite_read_s: sqliteRead, slice_file_write_s: fileWrite, slice_file_read_s: sliceFileRead }
}

/**
 * Two daemons in separate processes on loopback: from the request to the verified plaintext
 * file in place on disk. The first transfer is the figure (fresh daemons, as after a start);
 * a second file then goes the same way on the now warmed-up daemons.
 */
async function udpSync (dir: string, bytes: number): Promise<Result> {
  const sources = [sourceFile(dir, bytes), makeFile(dir, `second-${process.pid}.bin`, bytes, 98)]
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice, bob] = net.members as [Member, Member]
    const fileIds = sources.map(source => qf('share', source, '--dir', alice.dir))
    await waitFor('bob to see the files', async () => {
      const known = await bob.api.call<Array<{ fileId: string }>>('GET', '/api/files')
      return fileIds.every(id => known.some(f => f.fileId === id))
    })
    const fetchOne = async (fileId: string, source: string): Promise<{ seconds: number, cpu: number[] }> => {
      const out = path.join(dir, `udp-${process.pid}.out`)
      const cpuBefore = [alice, bob].map(m => cpuSecondsOfPid(m.daemon.child.pid!))
      const start = performance.now()
      // As `qf get` does: request, then have the daemon save the plaintext as it arrives.
      await bob.api.call('POST', `/api/files/${fileId}/download`, { priority: 8 })
      await bob.api.call('POST', `/api/files/${fileId}/save`, { path: out, force: true })
      const { saving } = await settled(bob, fileId)
      if (saving?.state !== 'saved') throw new Error(`the save failed: ${saving?.error ?? ''}`)
      const seconds = (performance.now() - start) / 1000
      const cpu = [alice, bob].map((m, i) => cpuSecondsOfPid(m.daemon.child.pid!) - cpuBefore[i]!)
      if (await sha256OfFile(out) !== await sha256OfFile(source)) throw new Error('the saved file differs from the shared one')
      return { seconds, cpu }
    }
    const first = await fetchOne(fileIds[0]!, sources[0]!)
    const stats = (await bob.api.call<{ stats: Record<string, number> }>('GET', '/api/status')).stats
    const warm = await fetchOne(fileIds[1]!, sources[1]!)
    const rss = [alice, bob].map(m => peakRssOfPid(m.daemon.child.pid!))
    return {
      seconds: first.seconds,
      sender_cpu_s: first.cpu[0]!,
      receiver_cpu_s: first.cpu[1]!,
      warm_seconds: warm.seconds,
      daemon_peak_rss_mb: Math.max(...rss),
      requests: stats.requestsSent!,
      timeouts: stats.requestsTimedOut!,
      duplicates: stats.slicesDuplicate!
    }
  } finally {
    fs.rmSync(sources[1]!, { force: true })
    await net.close()
  }
}

/**
 * The baseline: a raw dgram blast between two processes of as many datagrams, of the same
 * size, as a focused sync of `bytes` sends (two slice events per datagram), nothing else.
 * `withRequiredCrypto`: the datagrams are real sealed slices, and the receiver does the
 * protocol's required crypto on each (and still nothing else).
 */
async function udpRaw (bytes: number, withRequiredCrypto: boolean): Promise<Result> {
  const datagrams = Math.ceil(sliceCount(bytes) / 2)
  const size = DATA_OVERHEAD_BYTES + 2 * EVENT_BYTES
  const receiverArgs = [path.join(path.dirname(fileURLToPath(import.meta.url)), 'udp-raw-receiver.js'), ...(withRequiredCrypto ? ['crypto'] : [])]
  const receiver = spawn(process.execPath, receiverArgs, { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: string[] = []
  let buffered = ''
  const gotLine = new Promise<void>(resolve => receiver.stdout.on('data', (d: Buffer) => {
    buffered += d.toString()
    const parts = buffered.split('\n'); buffered = parts.pop()!
    lines.push(...parts)
    if (lines.length >= 1) resolve()
  }))
  await gotLine
  const { port } = JSON.parse(lines[0]!) as { port: number }
  const socket = dgram.createSocket({ type: 'udp4', sendBufferSize: SOCKET_BUFFER_BYTES })
  const payload = withRequiredCrypto ? Buffer.from(sealedSliceDatagram()) : Buffer.alloc(size, 0xab)
  if (payload.length !== size) throw new Error('the sealed datagram is not the size a focused sync sends')
  for (let i = 0; i < datagrams; i++) {
    socket.send(payload, port, '127.0.0.1')
    // Yield now and then, as a real sender does between batches, so the loop does not just pile up.
    if (i % 256 === 255) await new Promise(resolve => setImmediate(resolve))
  }
  await new Promise(resolve => receiver.on('exit', resolve))
  socket.close()
  const result = JSON.parse(lines[1] ?? buffered) as { received: number, bytes: number, seconds: number, failures: number }
  if (result.failures > 0) throw new Error(`${result.failures} sealed datagrams or slices did not authenticate`)
  const payloadBytes = result.received * 2 * SLICE_PLAINTEXT_BYTES
  return { seconds: result.seconds, received: result.received, sent: datagrams, payload_mbps: payloadBytes * 8 / 1e6 / result.seconds }
}

const tasks: Record<string, (dir: string, bytes: number) => Promise<Result>> = {
  share,
  copy,
  'sim-sync': simSync,
  'sim-paths': simPaths,
  'store-options': storeOptions,
  'udp-sync': udpSync,
  'udp-raw': async (_dir, bytes) => await udpRaw(bytes, false),
  'udp-raw-crypto': async (_dir, bytes) => await udpRaw(bytes, true),
  'connect-refusal': connectRefusal,
  'udp-flood': udpFlood,
  'api-load': apiLoad,
  'rate-caps': async () => await rateCaps()
}

const [task, dir, bytes] = process.argv.slice(2)
const run = tasks[task ?? '']
if (run === undefined || dir === undefined || bytes === undefined) {
  console.error(`usage: tasks.js <${Object.keys(tasks).join('|')}> <dir> <bytes>`)
  process.exit(2)
}
process.stdout.write(JSON.stringify(await run(dir, Number(bytes))) + '\n')
