import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { makeFile } from './helpers/sim.js'
import { sliceCount, windowCount } from '../src/files/windows.js'
import { startProcessNetwork, status, waitFor } from './helpers/daemons.js'
import { loadControl } from '../src/node/config.js'
import type { Member } from './helpers/daemons.js'
import type { Progress } from '../src/node/progress.js'

const MiB = 1024 * 1024

function http (member: Member) {
  const control = loadControl(member.dir)!
  const base = `http://127.0.0.1:${control.httpPort}`
  return async (route: string, init: RequestInit = {}): Promise<Response> =>
    await fetch(base + route, { ...init, headers: { authorization: `Bearer ${control.token}`, ...(init.headers as Record<string, string> | undefined) } })
}

test('HTTP API: raw and multipart uploads, ranges of a file still downloading, 416, and server-sent progress', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice, bob] = net.members as [Member, Member]
    const aliceHttp = http(alice)
    const bobHttp = http(bob)
    const source = makeFile(net.root, 'movie.bin', 24 * MiB, 31)
    const bytes = fs.readFileSync(source)

    const raw = await aliceHttp('/api/files', { method: 'POST', body: fs.createReadStream(source) as unknown as BodyInit, duplex: 'half', headers: { 'x-file-name': encodeURIComponent('holiday film.mp4'), 'content-type': 'video/mp4' } } as RequestInit)
    assert.equal(raw.status, 201)
    const rawShared = await raw.json() as { file_id: string, name: string, size: number }
    assert.deepEqual({ name: rawShared.name, size: rawShared.size }, { name: 'holiday film.mp4', size: 24 * MiB })

    const form = new FormData()
    form.append('file', new Blob([Buffer.from('hello from a form')], { type: 'text/plain' }), 'note.txt')
    const multi = await aliceHttp('/api/files', { method: 'POST', body: form })
    assert.equal(multi.status, 201)
    const noteShared = await multi.json() as { file_id: string, name: string, size: number }
    assert.deepEqual({ name: noteShared.name, size: noteShared.size }, { name: 'note.txt', size: 17 })
    const missingName = await aliceHttp('/api/files', { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })
    assert.equal(missingName.status, 400)
    assert.match((await missingName.json() as { error: string }).error, /X-File-Name/)

    await waitFor('bob to see both files', async () => {
      const files = await (await bobHttp('/api/files')).json() as Array<{ fileId: string, shared_by_name: string | null, root_hash: string, windows: number, bytesTotal: number }>
      return files.length === 2 && files.every(f => f.shared_by_name === 'alice' && /^[0-9a-f]{64}$/.test(f.root_hash)) &&
        files.find(f => f.fileId === rawShared.file_id)?.windows === windowCount(sliceCount(24 * MiB))
    })

    // Server-sent events: read the stream while things change.
    const events = await bobHttp('/api/events')
    assert.equal(events.headers.get('content-type'), 'text/event-stream')
    const reader = events.body!.getReader()
    const seen: Progress[] = []
    let text = ''
    const collect = (async () => {
      for (;;) {
        const { value, done } = await reader.read()
        if (done) return
        text += Buffer.from(value).toString()
        let cut
        while ((cut = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, cut); text = text.slice(cut + 2)
          const data = block.split('\n').find(l => l.startsWith('data: '))
          if (block.startsWith('event: progress') && data !== undefined) seen.push(JSON.parse(data.slice(6)) as Progress)
        }
      }
    })()

    // A range in the middle of a file bob does not have yet: the right bytes, at once.
    assert.equal((await status(bob, rawShared.file_id)).state, 'available')
    // Waiting on a download that is not settling answers with its progress when the wait is over.
    const waitedFrom = Date.now()
    const waited = await bobHttp(`/api/files/${rawShared.file_id}/status?wait=300`)
    assert.equal((await waited.json() as Progress).state, 'available')
    assert.ok(Date.now() - waitedFrom >= 290, 'the answer waited')
    assert.equal((await bobHttp(`/api/files/${rawShared.file_id}/status?wait=-1`)).status, 400)
    const start = 15 * MiB + 123
    const end = start + 200_000 - 1
    const ranged = await bobHttp(`/api/files/${rawShared.file_id}/content`, { headers: { range: `bytes=${start}-${end}` } })
    assert.equal(ranged.status, 206)
    assert.equal(ranged.headers.get('content-range'), `bytes ${start}-${end}/${24 * MiB}`)
    assert.equal(ranged.headers.get('accept-ranges'), 'bytes')
    assert.equal(ranged.headers.get('content-type'), 'video/mp4')
    // Served only from windows that passed their hash: verified, though the file is not whole yet.
    assert.equal(ranged.headers.get('x-quiet-verified'), 'true')
    const body = Buffer.from(await ranged.arrayBuffer())
    assert.equal(body.length, 200_000)
    assert.ok(body.equals(bytes.subarray(start, end + 1)), 'the bytes of that range')

    const suffix = await bobHttp(`/api/files/${noteShared.file_id}/content`, { headers: { range: 'bytes=-5' } })
    assert.equal(suffix.status, 206)
    assert.equal(await suffix.text(), ' form')
    const past = await bobHttp(`/api/files/${rawShared.file_id}/content`, { headers: { range: `bytes=${30 * MiB}-` } })
    assert.equal(past.status, 416)
    assert.equal(past.headers.get('content-range'), `bytes */${24 * MiB}`)

    // The read started the download; it finishes and is then served as verified.
    await waitFor('the whole file', async () => (await status(bob, rawShared.file_id)).state === 'complete', 60_000, 50)
    const whole = await bobHttp(`/api/files/${rawShared.file_id}/content`)
    assert.equal(whole.status, 200)
    assert.equal(whole.headers.get('x-quiet-verified'), 'true')
    assert.equal(whole.headers.get('content-length'), String(24 * MiB))
    assert.ok(Buffer.from(await whole.arrayBuffer()).equals(bytes))

    await waitFor('events up to completion', async () => seen.some(p => p.fileId === rawShared.file_id && p.state === 'complete'), 5000)
    const states = new Set(seen.filter(p => p.fileId === rawShared.file_id).map(p => p.state))
    assert.ok(states.has('active') && states.has('complete'), `states seen: ${[...states].join(', ')}`)
    await reader.cancel()
    await collect.catch(() => {})

    // Saving to a path on the daemon's machine: absolute paths only, in place once verified.
    const postJson = async (url: string, body: unknown) => await bobHttp(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
    assert.equal((await postJson(`/api/files/${noteShared.file_id}/save`, { path: 'relative.txt' })).status, 400)
    assert.equal((await postJson(`/api/files/${noteShared.file_id}/save`, {})).status, 400)
    const savedNote = path.join(net.root, 'saved-note.txt')
    assert.equal((await postJson(`/api/files/${noteShared.file_id}/save`, { path: savedNote })).status, 200)
    assert.equal((await postJson(`/api/files/${noteShared.file_id}/download`, {})).status, 200)
    // One request that answers once the download has settled: complete, verified and in place.
    const settledNote = await (await bobHttp(`/api/files/${noteShared.file_id}/status?wait=20000`)).json() as Progress
    assert.equal(settledNote.state, 'complete')
    assert.equal(settledNote.saving?.state, 'saved')
    assert.equal(fs.readFileSync(savedNote, 'utf8'), 'hello from a form')
    assert.equal((await postJson(`/api/files/${noteShared.file_id}/save`, { path: savedNote })).status, 409, 'an existing file is not overwritten')

    const unknown = await bobHttp(`/api/files/${'ab'.repeat(16)}/status`)
    assert.equal(unknown.status, 404)
    assert.deepEqual(Object.keys(await unknown.json() as object).sort(), ['details', 'error'])
  } finally { await net.close() }
})

test('a paused download still serves the range a reader asks for, and nothing more', async () => {
  const net = await startProcessNetwork(['alice', 'bob'])
  try {
    const [alice, bob] = net.members as [Member, Member]
    const bobHttp = http(bob)
    const source = makeFile(net.root, 'song.bin', 30 * MiB, 41)
    const fileId = JSON.parse(await (await http(alice)('/api/files', { method: 'POST', body: fs.readFileSync(source), headers: { 'x-file-name': 'song.mp3', 'content-type': 'audio/mpeg' } })).text()).file_id as string
    await waitFor('bob to see it', async () => (await (await bobHttp('/api/files')).json() as unknown[]).length === 1)
    await bobHttp(`/api/files/${fileId}/download`, { method: 'POST', body: JSON.stringify({ priority: 3 }), headers: { 'content-type': 'application/json' } })
    await bobHttp(`/api/files/${fileId}/pause`, { method: 'POST' })
    await new Promise(resolve => setTimeout(resolve, 1500))
    const held = (await status(bob, fileId)).slicesReceived
    const at = 25 * MiB
    const response = await bobHttp(`/api/files/${fileId}/content`, { headers: { range: `bytes=${at}-${at + 9999}` } })
    assert.equal(response.status, 206)
    assert.ok(Buffer.from(await response.arrayBuffer()).equals(fs.readFileSync(source).subarray(at, at + 10_000)))
    const after = await status(bob, fileId)
    assert.equal(after.state, 'paused')
    assert.ok(after.slicesReceived - held < 6000, `only the asked range and its read-ahead came (${after.slicesReceived - held} slices)`)
    assert.ok(after.slicesReceived < after.slicesTotal / 2)
    assert.equal(path.basename(source), 'song.bin')
  } finally { await net.close() }
})
