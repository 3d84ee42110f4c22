/**
 * What the daemon's defences cost and keep: refusing a bogus connect, a transfer under a
 * flood of them, and the control API under many clients and open event streams.
 */
import fs from 'node:fs'
import path from 'node:path'
import dgram from 'node:dgram'
import { performance } from 'node:perf_hooks'
import { makeFile, sha256OfFile } from '../test/helpers/sim.js'
import { settled, startProcessNetwork, waitFor } from '../test/helpers/daemons.js'
import { qf, sleep } from '../src/cli/processes.js'
import { loadControl } from '../src/node/config.js'
import { TransitEndpoint } from '../src/net/transit.js'
import { openSealed, randomBytes, signKeyPair } from '../src/crypto/index.js'
import { CONNECT_DATAGRAM_BYTES, ConnectMacOffset, DatagramKind } from '../src/wire/transit.js'
import { cpuSecondsOfPid } from './proc.js'
import type { Member } from '../test/helpers/daemons.js'

type Result = Record<string, number>

function bogusConnects (count: number): Uint8Array[] {
  return Array.from({ length: count }, () => {
    const bogus = randomBytes(CONNECT_DATAGRAM_BYTES)
    bogus[0] = DatagramKind.connect
    return bogus
  })
}

/**
 * The CPU one bogus connect costs the transit layer before it is refused (its mac1 fails),
 * next to what the sealed-box open alone costs, which every connect paid before.
 */
export async function connectRefusal (): Promise<Result> {
  const identity = signKeyPair()
  const endpoint = new TransitEndpoint({
    identity, networkId: randomBytes(16), networkKey: randomBytes(32), sendDatagram: () => {}, deliver: () => {}, now: () => Date.now()
  })
  const datagrams = bogusConnects(1024)
  const from = { host: '10.0.0.1', port: 4000 }
  const refusals = 200_000
  for (let i = 0; i < 10_000; i++) endpoint.onDatagram(datagrams[i % 1024]!, from)
  let start = performance.now()
  for (let i = 0; i < refusals; i++) endpoint.onDatagram(datagrams[i % 1024]!, from)
  const refusalUs = (performance.now() - start) * 1000 / refusals
  if (endpoint.stats.connectsOpened !== 0) throw new Error('a bogus connect reached the public-key checks')
  const opens = 2000
  start = performance.now()
  for (let i = 0; i < opens; i++) openSealed(datagrams[i % 1024]!.subarray(1, ConnectMacOffset.mac1), identity.publicKey, identity.secretKey)
  const sealedOpenUs = (performance.now() - start) * 1000 / opens
  return { seconds: 0, refusal_us: refusalUs, sealed_open_us: sealedOpenUs }
}

/**
 * A transfer of `bytes` between two daemons, alternately alone and under a flood of bogus
 * connects at `FLOOD_PER_SECOND` aimed at the receiver: two of each, medians compared.
 */
const FLOOD_PER_SECOND = 5000
export async function udpFlood (dir: string, bytes: number): Promise<Result> {
  const net = await startProcessNetwork(['alice', 'bob'])
  const socket = dgram.createSocket('udp4')
  try {
    const [alice, bob] = net.members as [Member, Member]
    const sources = [0, 1, 2, 3].map(i => makeFile(dir, `flood-${process.pid}-${i}.bin`, bytes, 70 + i))
    const fileIds = sources.map(source => qf('share', source, '--dir', alice.dir))
    await waitFor('bob to see the files', async () => {
      const known = await bob.api.call<Array<{ fileId: string }>>('GET', '/api/files')
      return fileIds.every(id => known.some(f => f.fileId === id))
    })
    const bobPort = loadControl(bob.dir)!.udpPort
    const datagrams = bogusConnects(1024)
    let sent = 0
    const fetchOne = async (i: number, flooded: boolean): Promise<number> => {
      const out = path.join(dir, `flood-${process.pid}.out`)
      // 50 every 10 ms: FLOOD_PER_SECOND, spread out as a real flood arrives.
      const perTick = FLOOD_PER_SECOND / 100
      const flood = flooded ? setInterval(() => { for (let k = 0; k < perTick; k++) socket.send(datagrams[sent++ % 1024]!, bobPort, '127.0.0.1') }, 10) : null
      if (flooded) await sleep(500)
      const start = performance.now()
      await bob.api.call('POST', `/api/files/${fileIds[i]!}/download`, { priority: 8 })
      await bob.api.call('POST', `/api/files/${fileIds[i]!}/save`, { path: out, force: true })
      const { saving } = await settled(bob, fileIds[i]!)
      const seconds = (performance.now() - start) / 1000
      if (flood !== null) clearInterval(flood)
      if (saving?.state !== 'saved') throw new Error(`the save failed: ${saving?.error ?? ''}`)
      if (await sha256OfFile(out) !== await sha256OfFile(sources[i]!)) throw new Error('the saved file differs from the shared one')
      return seconds
    }
    const clean = [await fetchOne(0, false)]
    const flooded = [await fetchOne(1, true)]
    clean.push(await fetchOne(2, false))
    flooded.push(await fetchOne(3, true))
    const status = await bob.api.call<{ transit: { connectsBadMac: number, connectsOpened: number } }>('GET', '/api/status')
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
    for (const source of sources) fs.rmSync(source, { force: true })
    return {
      seconds: mean(flooded),
      clean_s: mean(clean),
      flooded_s: mean(flooded),
      flood_datagrams: sent,
      refused_by_mac: status.transit.connectsBadMac,
      opened: status.transit.connectsOpened
    }
  } finally {
    socket.close()
    await net.close()
  }
}

const STREAMS = 200
const CLIENTS = 100
const REQUESTS_PER_CLIENT = 20

/**
 * The control API with STREAMS event streams open: the daemon's CPU while nothing changes,
 * then the latency of `/api/status` from CLIENTS concurrent clients.
 */
export async function apiLoad (dir: string, bytes: number): Promise<Result> {
  const net = await startProcessNetwork(['alice', 'bob'])
  const streams: AbortController[] = []
  try {
    const [alice, bob] = net.members as [Member, Member]
    for (let i = 0; i < 8; i++) qf('share', makeFile(dir, `api-${process.pid}-${i}.bin`, bytes, 40 + i), '--dir', alice.dir)
    await waitFor('bob to see the files', async () => (await bob.api.call<unknown[]>('GET', '/api/files')).length === 8)
    const control = loadControl(bob.dir)!
    const base = `http://127.0.0.1:${control.httpPort}`
    const headers = { authorization: `Bearer ${control.token}` }
    for (let i = 0; i < STREAMS; i++) {
      const abort = new AbortController()
      streams.push(abort)
      const response = await fetch(`${base}/api/events`, { headers, signal: abort.signal })
      void response.body!.pipeTo(new WritableStream()).catch(() => {})
    }
    await sleep(1000)
    const pid = bob.daemon.child.pid!
    const idleSeconds = 5
    const cpuBefore = cpuSecondsOfPid(pid)
    await sleep(idleSeconds * 1000)
    const idleCpu = (cpuSecondsOfPid(pid) - cpuBefore) / idleSeconds
    const latencies: number[] = []
    const round = async (record: boolean): Promise<void> => {
      await Promise.all(Array.from({ length: CLIENTS }, async () => {
        for (let r = 0; r < REQUESTS_PER_CLIENT; r++) {
          const start = performance.now()
          const response = await fetch(`${base}/api/status`, { headers })
          await response.json()
          if (record) latencies.push(performance.now() - start)
        }
      }))
    }
    // A first round warms up both sides (JIT, connections); the second is measured.
    await round(false)
    const daemonCpuBefore = cpuSecondsOfPid(pid)
    await round(true)
    const daemonCpuPerRequestMs = (cpuSecondsOfPid(pid) - daemonCpuBefore) * 1000 / latencies.length
    latencies.sort((a, b) => a - b)
    const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!
    return { seconds: at(0.5) / 1000, idle_cpu_with_streams: idleCpu, status_p50_ms: at(0.5), status_p99_ms: at(0.99), daemon_cpu_per_status_ms: daemonCpuPerRequestMs, requests: latencies.length }
  } finally {
    for (const abort of streams) abort.abort()
    await net.close()
  }
}
