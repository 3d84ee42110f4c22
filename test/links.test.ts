import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { Netlab, median, pingTimes, sampleTcpSocket, tcpFlow } from './helpers/netlab.js'
import { shapedTransfer } from './helpers/shaped-transfer.js'
import { deleteNamespace, running } from './helpers/lab-namespaces.js'
import { waitFor } from './helpers/daemons.js'
import { sleep } from '../src/cli/processes.js'

const MiB = 1024 * 1024
const KB = 1024

/**
 * On a real kernel bottleneck (namespaces, veth, tc tbf), as root. What is asserted does not
 * depend on this machine's speed: what crossed the link, what arrived twice, what the queue
 * dropped, and the delay the queue added. `npm run bench` measures the speeds.
 */
test('a shaped 10 Mbit/s link with a 512 KB queue: the file is not sent twice, and the queue stays short', async () => {
  const missing = Netlab.available()
  assert.equal(missing, null, `this test builds network namespaces: ${missing ?? ''}`)
  const result = await shapedTransfer({ rateMbit: 10, queueBytes: 512 * KB }, { sizeBytes: 6 * MiB, priority: 8, ping: true })
  assert.ok(result.complete, 'the download completed')
  assert.ok(result.duplicateFraction < 0.01, `${(result.duplicateFraction * 100).toFixed(1)}% of the slices arrived twice`)
  assert.ok(result.sentOverMinimum <= 1.1, `the sender put ${result.sentOverMinimum.toFixed(2)}× the least its framing needs on the link`)
  assert.ok(result.busyRttMs !== null && result.idleRttMs !== null)
  assert.ok(result.busyRttMs - result.idleRttMs <= 100, `the queue added ${(result.busyRttMs - result.idleRttMs).toFixed(0)} ms`)
})

test('the lab\'s router: CUBIC from a, past the bottleneck on a bridge between a and b, fills the queue as across the internet', async () => {
  const lab = Netlab.create({ rateMbit: 10, queueBytes: 128 * KB, router: true, tcp: 'cubic' })
  try {
    const idle = median(await pingTimes(lab, 1))
    const flow = tcpFlow(lab, 6)
    await sleep(3_000)
    const socket = sampleTcpSocket(lab, 250)
    const busy = median(await pingTimes(lab, 2))
    const samples = socket.stop()
    const perSecond = await flow
    // 128 KB at 10 Mbit/s is about 105 ms of queue; BBR, which keeps its queue short, adds
    // about 11 ms here.
    assert.ok(busy - idle >= 50, `the queue added ${(busy - idle).toFixed(1)} ms`)
    assert.ok(median(perSecond.slice(1)) * 8 / 1e6 >= 9, `TCP carried ${perSecond.join(', ')} bytes a second`)
    assert.ok(lab.stats().drops > 0, 'the full queue dropped')
    // The sender's socket as the kernel shows it: a round trip with the queue in it, and a
    // window that carries the link's rate over it.
    assert.ok(samples.length >= 4, `${samples.length} samples of the TCP socket`)
    const rttMs = median(samples.map(s => s.rttMs))
    const windowOverRtt = median(samples.map(s => s.windowOverRttMbit)) / 10
    assert.ok(rttMs >= 50, `the socket's round trip read ${rttMs} ms`)
    assert.ok(windowOverRtt > 0.7 && windowOverRtt < 1.5, `its window over its round trip was ${windowOverRtt.toFixed(2)} of the link`)
  } finally {
    lab.close()
  }
})

test('the lab\'s processes die with the run that started them, though it is killed before it can end them, and the next run deletes its namespaces', async () => {
  const missing = Netlab.available()
  assert.equal(missing, null, `this test builds network namespaces: ${missing ?? ''}`)
  // A run that builds a lab, starts a long command in it, says what it started, and is then
  // killed outright: its `finally` never runs.
  const script = `
    const { Netlab } = await import(${JSON.stringify(new URL('./helpers/netlab.js', import.meta.url).href)})
    const lab = Netlab.create({ rateMbit: 10, queueBytes: 32 * 1024 })
    const child = lab.spawn(lab.nsA, ['sleep', '60'])
    child.on('spawn', () => console.log(JSON.stringify({ pid: child.pid, namespaces: [lab.nsA, lab.nsB] })))
    setInterval(() => {}, 1000)
  `
  const run = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let said = ''
  const started = await new Promise<{ pid: number, namespaces: string[] }>((resolve, reject) => {
    run.stdout.on('data', (d: Buffer) => {
      said += d.toString()
      if (said.includes('\n')) resolve(JSON.parse(said) as { pid: number, namespaces: string[] })
    })
    run.on('exit', code => reject(new Error(`the run ended first (${String(code)})`)))
  })
  try {
    await sleep(300)
    assert.ok(running(started.pid), 'the command runs in the lab')
    run.kill('SIGKILL')
    await waitFor('the command to die with the run that started it', async () => !running(started.pid), 5_000, 50)
    // Its namespaces outlive it, until the first lab a later run builds.
    const listed = (): string[] => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map(line => line.split(' ')[0]!)
    assert.ok(started.namespaces.every(ns => listed().includes(ns)), 'the killed run\'s namespaces are left')
    const later = `
      const { Netlab } = await import(${JSON.stringify(new URL('./helpers/netlab.js', import.meta.url).href)})
      Netlab.create({ rateMbit: 10, queueBytes: 32 * 1024 }).close()
    `
    execFileSync(process.execPath, ['--input-type=module', '-e', later], { stdio: 'inherit' })
    const left = started.namespaces.filter(ns => listed().includes(ns))
    assert.deepEqual(left, [], 'the next run deleted the namespaces of the one killed')
  } finally {
    run.kill('SIGKILL')
    try { process.kill(started.pid, 'SIGKILL') } catch {}
    for (const ns of started.namespaces) deleteNamespace(ns)
  }
})
