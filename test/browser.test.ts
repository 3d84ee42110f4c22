import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeFile, sha256OfFile } from './helpers/sim.js'
import { settled, startProcessNetwork, status, waitFor } from './helpers/daemons.js'
import { qf, stopDaemonProcess } from '../src/cli/processes.js'
import { loadControl } from '../src/node/config.js'
import { launchBrowser } from './helpers/browser.js'
import type { Member } from './helpers/daemons.js'
import type { Browser, Page } from 'playwright-core'

const MiB = 1024 * 1024
const OUTPUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test-output')

/** A WAV file of `seconds` of a quiet tone (44.1 kHz, 16-bit stereo): real media the browser can play. */
function writeWav (filePath: string, seconds: number): string {
  const rate = 44_100
  const frames = rate * seconds
  const data = Buffer.alloc(frames * 4)
  for (let i = 0; i < frames; i++) {
    const sample = Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 3000)
    data.writeInt16LE(sample, i * 4)
    data.writeInt16LE(sample, i * 4 + 2)
  }
  const header = Buffer.alloc(44)
  header.write('RIFF', 0); header.writeUInt32LE(36 + data.length, 4); header.write('WAVE', 8)
  header.write('fmt ', 12); header.writeUInt32LE(16, 16); header.writeUInt16LE(1, 20); header.writeUInt16LE(2, 22)
  header.writeUInt32LE(rate, 24); header.writeUInt32LE(rate * 4, 28); header.writeUInt16LE(4, 32); header.writeUInt16LE(16, 34)
  header.write('data', 36); header.writeUInt32LE(data.length, 40)
  fs.writeFileSync(filePath, Buffer.concat([header, data]))
  return filePath
}

/** Anything the page's Content-Security-Policy blocked: the page must need nothing it forbids. */
const cspViolations: string[] = []

async function openPage (browser: Browser, member: Member): Promise<Page> {
  const url = qf('open', '--dir', member.dir)
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]{64}$/)
  const page = await (await browser.newContext({ acceptDownloads: true })).newPage()
  page.on('console', message => { if (/Content Security Policy/i.test(message.text())) cspViolations.push(message.text()) })
  await page.goto(url)
  await page.waitForFunction(() => document.getElementById('who')?.textContent?.includes('network') === true)
  return page
}

/**
 * Waits for the page to show the download complete. On a timeout the error says what the
 * daemon and the page showed then: a stalled transfer and a page that missed its end differ.
 */
async function completeOnPage (page: Page, member: Member, fileId: string, timeoutMs: number): Promise<void> {
  const cardSelector = `li[data-file-id="${fileId}"]`
  const card = page.locator(cardSelector)
  try {
    await page.locator(`${cardSelector}[data-state="complete"]`).waitFor({ timeout: timeoutMs })
  } catch (err) {
    const daemonSaw = await status(member, fileId).then(p => JSON.stringify(p), (e: unknown) => String(e))
    const pageSaw = await card.getAttribute('data-state', { timeout: 1_000 }).catch(() => null)
    throw new Error(`${member.name}'s page did not show ${fileId} complete in ${timeoutMs} ms: the page showed ${pageSaw ?? 'no card'}, the daemon ${daemonSaw}`, { cause: err })
  }
}

test('in a real browser: share on one page, download with pause and resume on another, save, and read a range', async () => {
  fs.mkdirSync(OUTPUT, { recursive: true })
  // The browser first: if it cannot start, no daemons are left running to hold the test open.
  const browser = await launchBrowser()
  const net = await startProcessNetwork(['alice', 'bob']).catch(async (err: unknown) => { await browser.close(); throw err })
  try {
    const [alice, bob] = net.members as [Member, Member]
    const alicePage = await openPage(browser, alice)
    const bobPage = await openPage(browser, bob)

    // Alice shares by picking a file.
    const source = makeFile(net.root, 'holiday.mp4', 80 * MiB, 77)
    await alicePage.setInputFiles('#picker', source)
    await alicePage.waitForFunction(() => document.getElementById('share-status')?.textContent?.startsWith('Shared holiday.mp4') === true, undefined, { timeout: 60_000 })
    const card = bobPage.locator('li.file', { hasText: 'holiday.mp4' })
    await card.waitFor({ timeout: 30_000 })
    await alicePage.locator('li.file[data-state="complete"]', { hasText: 'holiday.mp4' }).waitFor()
    assert.match(await card.locator('.meta').innerText(), /80\.0 MiB · shared by alice on .+ · video\/mp4/)
    const fileId = await card.getAttribute('data-file-id')
    assert.ok(fileId !== null)

    // Bob downloads with priority 8, pauses from the keyboard, resumes with a click.
    await card.locator('select[data-role="priority"]').selectOption('8')
    await card.locator('[data-action="download"]').click()
    await bobPage.waitForFunction(id => {
      const li = document.querySelector(`li[data-file-id="${id}"]`)
      return li !== null && Number(li.querySelector('progress')?.getAttribute('value') ?? li.querySelector('progress')?.value) > 5
    }, fileId, { polling: 20, timeout: 60_000 })
    await card.locator('[data-action="pause"]').focus()
    await bobPage.keyboard.press('Enter')
    await bobPage.locator(`li[data-file-id="${fileId}"][data-state="paused"]`).waitFor()
    const pausedAt = (await status(bob, fileId)).percent
    assert.ok(pausedAt < 100, `paused at ${pausedAt}%`)
    assert.equal((await status(bob, fileId)).priority, 8)
    await bobPage.screenshot({ path: path.join(OUTPUT, 'bob-paused.png'), fullPage: true })
    await card.locator('[data-action="resume"]').click()
    await completeOnPage(bobPage, bob, fileId, 120_000)
    assert.equal(await card.locator('.percent').innerText(), '100.0%')

    // Save it through the page and compare the bytes.
    const [download] = await Promise.all([bobPage.waitForEvent('download'), card.locator('[data-action="save"]').click()])
    const saved = path.join(net.root, 'saved.mp4')
    await download.saveAs(saved)
    assert.equal(await sha256OfFile(saved), await sha256OfFile(source))

    // A range in the middle of a file bob has not downloaded: the right bytes.
    const other = makeFile(net.root, 'talk.mp3', 12 * MiB, 78)
    const otherId = qf('share', other, '--dir', alice.dir)
    await bobPage.locator(`li[data-file-id="${otherId}"]`).waitFor({ timeout: 30_000 })
    assert.equal((await status(bob, otherId)).state, 'available')
    const token = loadControl(bob.dir)!.token
    const fetched = await bobPage.evaluate(async ({ id, token }) => {
      const response = await fetch(`/api/files/${id}/content`, { headers: { range: 'bytes=6000000-6004999', authorization: `Bearer ${token}` } })
      return { status: response.status, verified: response.headers.get('x-quiet-verified'), bytes: Array.from(new Uint8Array(await response.arrayBuffer())) }
    }, { id: otherId, token })
    assert.equal(fetched.status, 206)
    assert.equal(fetched.verified, 'true', 'only bytes of verified windows are served')
    assert.deepEqual(Buffer.from(fetched.bytes), fs.readFileSync(other).subarray(6_000_000, 6_005_000))

    // Audio plays in the page while the download is paused far from the end.
    const wav = writeWav(path.join(net.root, 'birdsong.wav'), 600)
    const wavId = qf('share', wav, '--message', 'birdsong from the trip', '--dir', alice.dir)
    const wavCard = bobPage.locator(`li[data-file-id="${wavId}"]`)
    await wavCard.waitFor({ timeout: 30_000 })
    // The message it was shared with shows beside it, with who posted it.
    await bobPage.waitForFunction(async id => {
      const files = await (await fetch('/api/files', { headers: { authorization: `Bearer ${new URLSearchParams(location.search).get('token') ?? ''}` } })).json() as Array<{ fileId: string, messages: unknown[] }>
      return files.find(f => f.fileId === id)?.messages.length === 1
    }, wavId, { timeout: 15_000 })
    await bobPage.reload()
    await wavCard.locator('.message').waitFor({ timeout: 15_000 })
    assert.match(await wavCard.locator('.message').textContent() ?? '', /“birdsong from the trip” — alice/)
    await bob.api.call('POST', `/api/files/${wavId}/download`, { priority: 1 })
    await bob.api.call('POST', `/api/files/${wavId}/pause`)
    await wavCard.locator('[data-action="preview"]').click()
    const audio = wavCard.locator('audio')
    await audio.waitFor()
    await bobPage.waitForFunction(id => {
      const element = document.querySelector<HTMLAudioElement>(`li[data-file-id="${id}"] audio`)
      return element !== null && element.readyState >= 2 && Math.abs(element.duration - 600) < 0.5
    }, wavId, { timeout: 30_000 })
    await audio.evaluate(async (element: HTMLAudioElement) => { element.muted = true; await element.play() })
    await bobPage.waitForFunction(id => (document.querySelector<HTMLAudioElement>(`li[data-file-id="${id}"] audio`)?.currentTime ?? 0) > 0.5, wavId, { timeout: 15_000 })
    const whilePlaying = await status(bob, wavId)
    assert.equal(whilePlaying.state, 'paused')
    assert.ok(whilePlaying.percent < 100, `played with ${whilePlaying.percent.toFixed(1)}% held`)

    await alicePage.screenshot({ path: path.join(OUTPUT, 'alice.png'), fullPage: true })
    await bobPage.screenshot({ path: path.join(OUTPUT, 'bob.png'), fullPage: true })
    assert.ok(fs.statSync(path.join(OUTPUT, 'bob.png')).size > 1000)
    assert.deepEqual(cspViolations, [], 'the page broke its own Content-Security-Policy')

    // A replaced token: the open page is refused and says so instead of failing silently.
    qf('token', '--rotate', '--dir', bob.dir)
    await bobPage.reload()
    await bobPage.waitForFunction(() => document.getElementById('who')?.textContent?.includes('no longer valid') === true, undefined, { timeout: 15_000 })
  } finally {
    await browser.close()
    await net.close()
  }
})

test('in a real browser: the page shows where bytes came from, refreshes its header live, says when the daemon stops, and carries on after a restart', async () => {
  const browser = await launchBrowser()
  const net = await startProcessNetwork(['alice', 'bob', 'carol']).catch(async (err: unknown) => { await browser.close(); throw err })
  try {
    const [alice, bob, carol] = net.members as [Member, Member, Member]
    const source = makeFile(net.root, 'film.mkv', 24 * MiB, 91)
    const fileId = qf('share', source, '--dir', alice.dir)
    await waitFor('carol to see the film', async () => (await carol.api.call<Array<{ fileId: string }>>('GET', '/api/files')).some(f => f.fileId === fileId))
    await carol.api.call('POST', `/api/files/${fileId}/download`, { priority: 8 })
    assert.equal((await settled(carol, fileId)).state, 'complete')

    const page = await openPage(browser, bob)
    const header = page.locator('#who')
    // Both others connect after the page opened: the header follows without a reload.
    await page.waitForFunction(() => document.getElementById('who')?.dataset.connected === '2', undefined, { timeout: 20_000 })
    assert.match(await header.innerText(), /bob · network “test” · 2 peers connected/)
    // Each member and how it is reached.
    const peerList = page.locator('#peers')
    await peerList.locator('li[data-route="direct"]').nth(1).waitFor({ timeout: 5_000 })
    assert.deepEqual((await peerList.locator('li').allInnerTexts()).sort(), ['alice · direct', 'carol · direct'])

    // Bob fetches the film from both holders; its card names them, with each one's share.
    const card = page.locator(`li[data-file-id="${fileId}"]`)
    await card.locator('[data-action="download"]').click()
    await completeOnPage(page, bob, fileId, 60_000)
    const sources = await card.locator('.sources').innerText()
    assert.match(sources, /^from (alice|carol) \d+% · (alice|carol) \d+%$/)
    assert.ok(sources.includes('alice') && sources.includes('carol'), sources)
    const shares = [...sources.matchAll(/(\d+)%/g)].map(m => Number(m[1]))
    assert.ok(Math.abs(shares[0]! + shares[1]! - 100) <= 1, sources)

    // Carol goes away: the header says so by itself.
    carol.daemon.child.kill('SIGKILL')
    await carol.daemon.exited
    await page.waitForFunction(() => document.getElementById('who')?.dataset.connected === '1', undefined, { timeout: 10_000 })
    assert.match(await header.innerText(), /1 peer connected/)
    await peerList.locator('li[data-route="unreachable"]').waitFor({ timeout: 5_000 })
    assert.match(await peerList.locator('li[data-route="unreachable"]').innerText(), /^carol · unreachable since \d/)

    // Bob's own daemon stops: the page says so instead of keeping a stale state.
    const banner = page.locator('#daemon-state')
    assert.equal(await banner.isVisible(), false)
    await stopDaemonProcess(bob.daemon)
    await banner.waitFor({ state: 'visible', timeout: 10_000 })
    assert.match(await banner.innerText(), /daemon stopped; reconnecting/)

    // It comes back on the same port with the same token: the page carries on, events included.
    await net.restart(bob)
    await banner.waitFor({ state: 'hidden', timeout: 15_000 })
    await page.waitForFunction(() => document.getElementById('who')?.dataset.connected === '1', undefined, { timeout: 20_000 })
    const later = makeFile(net.root, 'later.txt', 3 * MiB, 92)
    const laterId = qf('share', later, '--dir', alice.dir, '--message', 'notes for later')
    const laterCard = page.locator(`li[data-file-id="${laterId}"]`)
    await laterCard.waitFor({ timeout: 30_000 })
    await laterCard.locator('.message').waitFor({ timeout: 15_000 })
    assert.match(await laterCard.locator('.message').innerText(), /“notes for later” — alice, .*\d/)
    await laterCard.locator('[data-action="download"]').click()
    await completeOnPage(page, bob, laterId, 60_000)
    assert.match(await laterCard.locator('.sources').innerText(), /^from alice 100%$/)
    await page.screenshot({ path: path.join(OUTPUT, 'bob-after-restart.png'), fullPage: true })
    assert.deepEqual(cspViolations, [], 'the page broke its own Content-Security-Policy')
  } finally {
    await browser.close()
    await net.close()
  }
})
