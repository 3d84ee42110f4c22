import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { execFileSync } from 'node:child_process'
import { startProcessNetwork, waitFor } from './helpers/daemons.js'
import { loadControl } from '../src/node/config.js'
import { QF_MAIN, qf, stopDaemonProcess } from '../src/cli/processes.js'
import fs from 'node:fs'

interface RawAnswer { status: number, headers: http.IncomingHttpHeaders, body: string }

/** One request with the path sent exactly as written (fetch would normalise it). */
async function raw (port: number, method: string, rawPath: string, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return await new Promise((resolve, reject) => {
    // An empty host means none is sent at all.
    const all: Record<string, string> = { host: `127.0.0.1:${port}`, ...headers }
    const setHost = all.host !== ''
    if (!setHost) delete all.host
    const request = http.request({ host: '127.0.0.1', port, method, path: rawPath, headers: all, setHost }, response => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', chunk => { body += chunk })
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }))
    })
    request.on('error', reject)
    request.end()
  })
}

test('API access: decided by the route that matched, for every spelling of a path; hosts other than loopback refused', async () => {
  const net = await startProcessNetwork(['alice'])
  try {
    const [alice] = net.members
    const control = loadControl(alice!.dir)!
    const port = control.httpPort
    const spellings = [
      '/api/invite', '/%61pi/invite', '/a%70i/invite', '/ap%69/invite', '/api%2Finvite', '/api%2finvite', '//api/invite', '/./api/invite',
      '/api/../api/invite', '/API/invite', '/Api/Invite', '/api/invite?x=/../', '/api/invite/', '/api/./invite', '/%2e/api/invite',
      '/api/status', '/%61pi/status', '/a%70i/files', '/api/peers', '/api/events', '/api/files/00000000000000000000000000000000/content'
    ]
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST', 'DELETE']) {
      for (const spelling of spellings) {
        const answer = await raw(port, method, spelling)
        assert.ok(answer.status === 401 || answer.status === 404, `${method} ${spelling} answered ${answer.status} without a token`)
        assert.doesNotMatch(answer.body, /qf:\/\/|network|public_key/, `${method} ${spelling} revealed something`)
      }
    }
    // With the token, the API answers; the page's files need none.
    const auth = { authorization: `Bearer ${control.token}` }
    assert.equal((await raw(port, 'GET', '/%61pi/status', auth)).status, 200)
    assert.equal((await raw(port, 'GET', '/api/status', auth)).status, 200)
    const page = await raw(port, 'GET', '/')
    assert.equal(page.status, 200)
    assert.equal(page.headers['referrer-policy'], 'no-referrer')
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'.*script-src 'self'/)
    assert.equal((await raw(port, 'HEAD', '/app.js')).status, 200)
    const favicon = await raw(port, 'GET', '/favicon.ico')
    assert.equal(favicon.status, 200)
    assert.equal(favicon.headers['content-type'], 'image/svg+xml')
    // The content route's ?token= works only with the real token.
    assert.equal((await raw(port, 'GET', '/api/files/00000000000000000000000000000000/content?token=nope')).status, 401)
    assert.equal((await raw(port, 'GET', `/api/files/00000000000000000000000000000000/content?token=${control.token}`)).status, 404)

    // DNS rebinding: a request naming another host is refused, token or not, API or page.
    // (No Host at all: Node's server refuses it with 400 before any route.)
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1.evil.example:${port}`, `localhost:${port + 1}`, '']) {
      const refused = host === '' ? [400, 403] : [403]
      assert.ok(refused.includes((await raw(port, 'GET', '/', { host })).status), `page for host "${host}"`)
      assert.ok(refused.includes((await raw(port, 'GET', '/api/status', { ...auth, host })).status), `API for host "${host}"`)
    }
    for (const host of [`localhost:${port}`, `LOCALHOST:${port}`]) assert.equal((await raw(port, 'GET', '/api/status', { ...auth, host })).status, 200)

    // The daemon's log never carries the token; qf open prints the link with it.
    assert.ok(!fs.readFileSync(alice!.log, 'utf8').includes(control.token), 'the log holds the token')
    assert.equal(qf('open', '--dir', alice!.dir).trim(), `http://127.0.0.1:${port}/?token=${control.token}`)

    // The token survives a restart; qf token --rotate replaces it and the old one stops working.
    await stopDaemonProcess(alice!.daemon)
    await net.restart(alice!)
    const after = loadControl(alice!.dir)!
    assert.equal(after.token, control.token, 'the token changed at a restart')
    const fileMode = fs.statSync(`${alice!.dir}/api-token`).mode & 0o777
    assert.equal(fileMode, 0o600)
    const rotated = execFileSync(process.execPath, [QF_MAIN, 'token', '--rotate', '--json', '--dir', alice!.dir], { encoding: 'utf8' })
    const fresh = (JSON.parse(rotated) as { token: string }).token
    assert.match(fresh, /^[0-9a-f]{64}$/)
    assert.notEqual(fresh, control.token)
    assert.equal((await raw(after.httpPort, 'GET', '/api/status', auth)).status, 401)
    assert.equal((await raw(after.httpPort, 'GET', '/api/status', { authorization: `Bearer ${fresh}` })).status, 200)
    await waitFor('the control file to carry the new token', async () => loadControl(alice!.dir)?.token === fresh)
    assert.equal(qf('token', '--dir', alice!.dir).trim(), fresh)
  } finally {
    await net.close()
  }
})
