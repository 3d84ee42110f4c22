import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import { QF_MAIN, qf, sleep, startDaemonProcess, stopDaemonProcess } from '../src/cli/processes.js'
import { daemonClient } from '../src/cli/client.js'
import { makeFile } from './helpers/sim.js'
import { waitFor } from './helpers/daemons.js'
import type { DaemonProcess } from '../src/cli/processes.js'

const NOBODY = { uid: 65534, gid: 65534 }

function chownTree (dir: string, owner: { uid: number, gid: number }): void {
  fs.chownSync(dir, owner.uid, owner.gid)
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) chownTree(full, owner)
    else fs.chownSync(full, owner.uid, owner.gid)
  }
}

test('a daemon that cannot read a file says "permission denied: PATH"; a share cut off by SIGKILL leaves nothing behind', async () => {
  if (process.getuid?.() !== 0) throw new Error('this test runs the daemon as another user and needs root (CI runs as root)')
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'qf-errors-'))
  const dir = path.join(root, 'alice')
  const log = path.join(root, 'alice.log')
  let daemon: DaemonProcess | null = null
  try {
    qf('init', '--dir', dir, '--name', 'alice')
    chownTree(root, NOBODY)
    // The daemon runs as an ordinary user: root would read anything.
    daemon = await startDaemonProcess(dir, log, undefined, undefined, NOBODY)
    qf('network', 'create', 'team', '--dir', dir)
    const secret = makeFile(root, 'secret.bin', 1000, 5)
    fs.chownSync(secret, 0, 0)
    fs.chmodSync(secret, 0o600)
    const shared = spawnSync(process.execPath, [QF_MAIN, 'share', secret, '--dir', dir], { encoding: 'utf8' })
    assert.equal(shared.status, 1)
    assert.equal(shared.stderr.trim(), `qf: permission denied: ${secret}`)
    const response = await daemonClient(dir).fetchRaw('/api/share', { method: 'POST', body: JSON.stringify({ path: secret }), headers: { 'content-type': 'application/json' } })
    assert.equal(response.status, 403)

    // A big share, killed while its slice file is being written.
    const big = makeFile(root, 'big.bin', 300 * 1024 * 1024, 6)
    fs.chownSync(big, NOBODY.uid, NOBODY.gid)
    void daemonClient(dir).call('POST', '/api/share', { path: big }).catch(() => {})
    const slices = path.join(dir, 'slices')
    const leftovers = (): string[] => (fs.existsSync(slices) ? fs.readdirSync(slices) : []).filter(n => /^share-.*\.tmp$/.test(n))
    await waitFor('the share to start writing', async () => leftovers().length > 0, 30_000, 5)
    daemon.child.kill('SIGKILL')
    await daemon.exited
    assert.equal(leftovers().length, 1, 'the killed share left its slice file')
    fs.rmSync(big)
    await sleep(200)
    daemon = await startDaemonProcess(dir, log, undefined, undefined, NOBODY)
    assert.deepEqual(leftovers(), [], 'removed at start')
  } finally {
    if (daemon !== null) await stopDaemonProcess(daemon)
    fs.rmSync(root, { recursive: true, force: true })
  }
})
