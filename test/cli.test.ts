import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { QF_MAIN } from '../src/cli/processes.js'
import { startProcessNetwork } from './helpers/daemons.js'
import type { Member } from './helpers/daemons.js'

function run (...args: string[]): { code: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [QF_MAIN, ...args], { encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/** One line on stderr, a non-zero exit, no stack trace. */
function assertCleanError (r: { code: number | null, stderr: string }, pattern: RegExp): void {
  assert.notEqual(r.code, 0)
  assert.match(r.stderr, pattern)
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`)
  assert.doesNotMatch(r.stderr, /\n\s+at /)
}

test('qf: init is idempotent; bad arguments and a missing daemon get one-line errors', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-cli-'))
  try {
    const first = run('init', '--dir', dir, '--name', 'dana')
    assert.equal(first.code, 0)
    assert.match(first.stdout, /created identity [0-9a-f]{64} \(dana\)/)
    const identity = fs.readFileSync(path.join(dir, 'identity.json'), 'utf8')
    const second = run('init', '--dir', dir, '--name', 'other')
    assert.match(second.stdout, /identity already exists/)
    assert.equal(fs.readFileSync(path.join(dir, 'identity.json'), 'utf8'), identity, 'running init again changes nothing')
    assert.equal(fs.statSync(path.join(dir, 'identity.json')).mode & 0o077, 0, 'the secret key is private to its owner')

    assertCleanError(run('files', '--dir', dir), /no daemon is running for .*; start one with: qf daemon --dir/)
    assertCleanError(run('get', 'nothex', '--dir', dir), /not a file id/)
    assertCleanError(run('get', '00'.repeat(16), '--priority', '11', '--dir', dir), /priority must be an integer from 1 to 10/)
    assertCleanError(run('get', '00'.repeat(16), '--daemon-wait', 'soon', '--dir', dir), /daemon-wait must be an integer from 0 to 86400/)
    assertCleanError(run('share', '/no/such/file', '--dir', dir), /no such file/)
    assertCleanError(run('frobnicate'), /unknown command/)
    assertCleanError(run('daemon', '--dir', path.join(dir, 'empty')), /no identity .*qf init/)
    assertCleanError(run('daemon', '--dir', dir, '--announce', 'nowhere'), /expected HOST:PORT, got "nowhere"/)
    assert.match(run('--version').stdout, /^\d+\.\d+\.\d+/)
  } finally { fs.rmSync(dir, { recursive: true, force: true }) }
})

test('qf against a running daemon: invalid invites, unknown files and listing as JSON', async () => {
  const net = await startProcessNetwork(['alice'])
  try {
    const [alice] = net.members as [Member]
    assertCleanError(run('join', 'qf://join#AAAA', '--dir', alice.dir), /invalid invite|already in network/)
    assertCleanError(run('join', 'https://example.com', '--dir', alice.dir), /invalid invite|already in network/)
    assertCleanError(run('pause', 'ab'.repeat(16), '--dir', alice.dir), /unknown file/)
    assertCleanError(run('get', 'ab'.repeat(16), '--dir', alice.dir), /unknown file/)
    const files = run('files', '--dir', alice.dir, '--json')
    assert.deepEqual(JSON.parse(files.stdout), [])
    const status = JSON.parse(run('status', '--dir', alice.dir, '--json').stdout) as { network: { name: string }, name: string }
    assert.equal(status.name, 'alice')
    assert.equal(status.network.name, 'test')
    // Without the token the control API says 401 and nothing else.
    const control = JSON.parse(fs.readFileSync(path.join(alice.dir, 'control.json'), 'utf8')) as { httpPort: number }
    const response = await fetch(`http://127.0.0.1:${control.httpPort}/api/files`)
    assert.equal(response.status, 401)
    assert.deepEqual(await response.json(), { error: 'unauthorized', details: {} })
    const wrong = await fetch(`http://127.0.0.1:${control.httpPort}/api/files`, { headers: { authorization: 'Bearer nope' } })
    assert.equal(wrong.status, 401)
  } finally { await net.close() }
})

test('an expired invite is refused with a one-line error', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice] = net.members as [Member, Member]
    const link = run('invite', '--ttl', '1', '--dir', alice.dir).stdout.trim()
    await new Promise(resolve => setTimeout(resolve, 1500))
    const dir = path.join(net.root, 'late')
    run('init', '--dir', dir, '--name', 'late')
    const { startDaemonProcess, stopDaemonProcess } = await import('../src/cli/processes.js')
    const late = await startDaemonProcess(dir, path.join(net.root, 'late.log'))
    try {
      assertCleanError(run('join', link, '--dir', dir), /invite expired/)
    } finally { await stopDaemonProcess(late) }
  } finally { await net.close() }
})

test('qf: --dir and --json may come before the command; bad demo sizes and taken ports get one-line errors', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-cli-'))
  const socket = (await import('node:dgram')).createSocket('udp4')
  try {
    assert.match(run('--dir', dir, 'init', '--name', 'erin').stdout, /created identity [0-9a-f]{64} \(erin\)/)
    assert.match(run('--dir', dir, '--json', 'files').stderr, /no daemon is running for/, '--dir before the command is the one used')
    const demoMain = path.join(path.dirname(QF_MAIN), 'demo.js')
    for (const size of ['abc', '0', '-5', '1.5']) {
      const demo = spawnSync(process.execPath, [demoMain, '--size', size], { encoding: 'utf8' })
      assertCleanError({ code: demo.status, stderr: demo.stderr }, /--size needs a whole number of bytes/)
    }
    // A UDP port another program holds.
    await new Promise<void>(resolve => socket.bind(0, resolve))
    const taken = socket.address().port
    assertCleanError(run('daemon', '--dir', dir, '--port', String(taken)), new RegExp(`UDP port ${taken} is in use by another program; choose another with --port`))
    const { startDaemonProcess, stopDaemonProcess } = await import('../src/cli/processes.js')
    const daemon = await startDaemonProcess(dir, path.join(dir, 'daemon.log'))
    try {
      assertCleanError(run('daemon', '--dir', dir), /a daemon is already running for .* \(pid \d+/)
      const other = path.join(dir, 'other')
      run('init', '--dir', other, '--name', 'frank')
      const httpPort = (JSON.parse(fs.readFileSync(path.join(dir, 'control.json'), 'utf8')) as { httpPort: number }).httpPort
      assertCleanError(run('daemon', '--dir', other, '--http', String(httpPort)), new RegExp(`control port ${httpPort} on 127.0.0.1 is in use by another program; choose another with --http`))
    } finally { await stopDaemonProcess(daemon) }
  } finally {
    socket.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('qf get --out DIRECTORY saves into it under the file\'s name; the daemons say what happened in their logs', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice, bob] = net.members as [Member, Member]
    const source = path.join(net.root, 'notes.txt')
    fs.writeFileSync(source, 'minutes of the meeting\n'.repeat(500))
    const fileId = run('share', source, '--message', 'from the meeting', '--dir', alice.dir).stdout.trim()
    const into = path.join(net.root, 'downloads')
    fs.mkdirSync(into)
    let got = run('get', fileId, '--out', into, '--json', '--dir', bob.dir)
    for (let i = 0; i < 50 && got.code !== 0 && /unknown file/.test(got.stderr); i++) {
      await new Promise(resolve => setTimeout(resolve, 200))
      got = run('get', fileId, '--out', into, '--json', '--dir', bob.dir)
    }
    assert.equal(got.code, 0, got.stderr)
    assert.equal(fs.readFileSync(path.join(into, 'notes.txt'), 'utf8'), fs.readFileSync(source, 'utf8'))
    // One line each, read back once a second.
    await new Promise(resolve => setTimeout(resolve, 1500))
    const aliceLog = fs.readFileSync(alice.log, 'utf8')
    const bobLog = fs.readFileSync(bob.log, 'utf8')
    assert.match(aliceLog, /quiet-files: created network "test"/)
    assert.match(aliceLog, new RegExp(`quiet-files: shared notes\\.txt \\(11500 B, ${fileId}\\)`))
    assert.match(aliceLog, /quiet-files: connected to (bob|[0-9a-f]{16}…) directly/)
    assert.match(bobLog, /quiet-files: joined network "test"/)
    assert.match(bobLog, /quiet-files: (alice|[0-9a-f]{16}…) shared notes\.txt/)
    assert.match(bobLog, /quiet-files: downloaded notes\.txt, verified/)
    // Sharing the same file again says so, and makes a second file.
    const again = run('share', source, '--dir', alice.dir)
    assert.equal(again.code, 0)
    assert.match(again.stderr, new RegExp(`notes\\.txt \\(.+\\) was already shared as ${fileId}; sharing it again as a new file`))
    assert.notEqual(again.stdout.trim(), fileId)
    // qf network: the network, this node and the others, and how they are reached.
    const shown = run('network', '--dir', bob.dir).stdout
    assert.match(shown, /network "test" \([0-9a-f]{32}\)/)
    assert.match(shown, /bob \(this node\)/)
    assert.match(shown, /alice connected directly at 127\.0\.0\.1:\d+ since \d\d:\d\d:\d\d/)
    // A finished download is summed up in one line, not listed like one still going.
    const statusText = run('status', '--dir', bob.dir).stdout
    assert.match(statusText, /finished \(1\): notes\.txt/)
    assert.doesNotMatch(statusText, /complete 100/)
    // The message it was shared with, beside it in qf files and in the API.
    assert.match(run('files', '--dir', bob.dir).stdout, /notes\.txt .* alice .* from the meeting/)
    const listed = JSON.parse(run('files', '--json', '--dir', bob.dir).stdout) as Array<{ fileId: string, messages: Array<{ text: string, author_name: string }> }>
    assert.deepEqual(listed.find(f => f.fileId === fileId)!.messages.map(m => [m.text, m.author_name]), [['from the meeting', 'alice']])
  } finally { await net.close() }
})

test('the demo pauses, says what was already on its way, resumes and ends with identical files', () => {
  const demoMain = path.join(path.dirname(QF_MAIN), 'demo.js')
  const demo = spawnSync(process.execPath, [demoMain, '--size', String(80 * 1024 * 1024)], { encoding: 'utf8', timeout: 240_000 })
  assert.equal(demo.status, 0, demo.stderr)
  const paused = /\[demo\] paused at ([\d.]+)% for two seconds: no new requests from now on/.exec(demo.stdout)
  const moved = /\[demo\] ([\d.]+ \w+) already on their way when it paused arrived during the pause/.exec(demo.stdout)
  const resumed = /\[demo\] resumed at ([\d.]+)%/.exec(demo.stdout)
  assert.ok(paused !== null && moved !== null && resumed !== null, demo.stdout)
  assert.ok(Number(resumed[1]) >= Number(paused[1]))
  assert.match(demo.stdout, /identical\. 80\.0 MiB/)
})
