/**
 * `npm run demo`: two daemons (alice, bob) as separate processes on loopback, each with a
 * temporary data directory. Alice creates a network and invites bob; alice shares a fresh
 * 50 MiB file; bob fetches it with the live progress bar, pauses at about 40% for two
 * seconds, resumes and finishes; the SHA-256 of both files must match.
 *   node dist/src/cli/demo.js [--size BYTES] [--keep]
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import crypto from 'node:crypto'
import { spawn } from 'node:child_process'
import { daemonClient } from './client.js'
import { formatBytes } from './format.js'
import { QF_MAIN, qf, sleep, startDaemonProcess, stopDaemonProcess } from './processes.js'
import type { DaemonProcess } from './processes.js'
import type { Progress } from '../node/progress.js'

const args = process.argv.slice(2)
const keep = args.includes('--keep')
const unknown = args.filter((a, i) => a !== '--keep' && a !== '--size' && args[i - 1] !== '--size')
if (unknown.length > 0) {
  console.error(`demo: unknown argument ${unknown[0]!}; usage: demo.js [--size BYTES] [--keep]`)
  process.exit(2)
}
const sizeText = args.includes('--size') ? args[args.indexOf('--size') + 1] ?? '' : String(50 * 1024 * 1024)
const size = Number(sizeText)
if (!/^\d+$/.test(sizeText) || !Number.isSafeInteger(size) || size < 1) {
  console.error(`demo: --size needs a whole number of bytes of at least 1, got "${sizeText}"`)
  process.exit(2)
}

async function startDaemon (name: string, dir: string, logFile: string): Promise<DaemonProcess> {
  const daemon = await startDaemonProcess(dir, logFile)
  console.log(`  ${name}: daemon pid ${daemon.child.pid}, udp 127.0.0.1:${daemon.port}`)
  return daemon
}

function writeRandomFile (filePath: string, bytes: number): void {
  const fd = fs.openSync(filePath, 'w')
  const chunk = Buffer.alloc(1 << 20)
  for (let written = 0; written < bytes; written += chunk.length) {
    crypto.randomFillSync(chunk)
    fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - written))
  }
  fs.closeSync(fd)
}

async function sha256 (filePath: string): Promise<string> {
  const hash = crypto.createHash('sha256')
  for await (const chunk of fs.createReadStream(filePath)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

async function main (): Promise<number> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-demo-'))
  const alice = path.join(root, 'alice')
  const bob = path.join(root, 'bob')
  const daemons: DaemonProcess[] = []
  try {
    console.log(`quiet-files demo in ${root}`)
    qf('init', '--dir', alice, '--name', 'alice')
    qf('init', '--dir', bob, '--name', 'bob')
    daemons.push(await startDaemon('alice', alice, path.join(root, 'alice.log')))
    daemons.push(await startDaemon('bob', bob, path.join(root, 'bob.log')))

    qf('network', 'create', 'demo', '--dir', alice)
    const link = qf('invite', '--dir', alice)
    console.log(`  alice created network "demo" and an invite: ${link.slice(0, 40)}…`)
    qf('join', link, '--dir', bob)
    console.log('  bob joined')

    const source = path.join(root, 'holiday-video.bin')
    writeRandomFile(source, size)
    const fileId = qf('share', source, '--dir', alice, '--message', 'from the demo')
    console.log(`  alice shared ${path.basename(source)} (${formatBytes(size)}): ${fileId}`)

    const bobClient = daemonClient(bob)
    for (let i = 0; ; i++) {
      const files = await bobClient.call<Progress[]>('GET', '/api/files')
      if (files.some(f => f.fileId === fileId)) break
      if (i > 300) throw new Error('the file never reached bob')
      await sleep(50)
    }
    console.log('  bob sees the file; fetching it:\n')

    const out = path.join(root, 'bob-download.bin')
    const started = Date.now()
    const get = spawn(process.execPath, [QF_MAIN, 'get', fileId, '--dir', bob, '--out', out, '--priority', '8'], { stdio: 'inherit' })
    const exited = new Promise<number>(resolve => get.on('exit', code => resolve(code ?? 1)))
    let pausedMs = 0
    for (;;) {
      const p = await bobClient.call<Progress>('GET', `/api/files/${fileId}/status`).catch(() => null)
      if (p !== null && p.percent >= 40 && p.state === 'active') {
        const paused = await bobClient.call<Progress>('POST', `/api/files/${fileId}/pause`)
        const pausedAt = Date.now()
        console.log(`\n  [demo] paused at ${paused.percent.toFixed(1)}% for two seconds: no new requests from now on`)
        await sleep(2000)
        const held = await bobClient.call<Progress>('GET', `/api/files/${fileId}/status`)
        await bobClient.call('POST', `/api/files/${fileId}/resume`)
        pausedMs = Date.now() - pausedAt
        // Slices asked for before the pause still land: that is what moved while paused.
        const inFlight = held.bytesReceived - paused.bytesReceived
        console.log(`  [demo] ${formatBytes(inFlight)} already on their way when it paused arrived during the pause`)
        console.log(`  [demo] resumed at ${held.percent.toFixed(1)}%\n`)
        break
      }
      if (p?.state === 'complete') { console.log('\n  [demo] finished before 40% could be seen; no pause'); break }
      await sleep(20)
    }
    const code = await exited
    const elapsedMs = Date.now() - started
    if (code !== 0) throw new Error(`qf get exited with ${code}`)

    const [a, b] = await Promise.all([sha256(source), sha256(out)])
    console.log(`\n  sha256 alice ${a}`)
    console.log(`  sha256 bob   ${b}`)
    if (a !== b) throw new Error('the files differ')
    const transferMs = Math.max(1, elapsedMs - pausedMs)
    console.log(`  identical. ${formatBytes(size)} in ${(elapsedMs / 1000).toFixed(2)} s with the pause, ` +
      `${(transferMs / 1000).toFixed(2)} s without: goodput ${(size / 1e6 / (transferMs / 1000)).toFixed(1)} MB/s`)
    return 0
  } catch (err) {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`)
    return 1
  } finally {
    await Promise.all(daemons.map(stopDaemonProcess))
    if (!keep) fs.rmSync(root, { recursive: true, force: true })
  }
}

process.exit(await main())
