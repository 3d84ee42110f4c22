import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { findBrowser, launchBrowser, packagedChromium, NO_BROWSER_MESSAGE } from './helpers/browser.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const readJson = (file: string): any => JSON.parse(fs.readFileSync(path.join(ROOT, file), 'utf8'))

/** The lowest version a `>=X.Y.Z` range admits, as [major, minor, patch]. */
function lowestOf (range: string): number[] {
  const match = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(range.trim())
  if (match === null) throw new Error(`engines.node of this package must read ">=X.Y.Z", not ${range}`)
  return [Number(match[1]), Number(match[2] ?? 0), Number(match[3] ?? 0)]
}

const compare = (a: number[], b: number[]): number => (a[0]! - b[0]!) || (a[1]! - b[1]!) || (a[2]! - b[2]!)

/** Whether one comparator set (`>=X`, `X.x`, `*`, `>= 10.x`) admits `version`. */
function admits (range: string, version: number[]): boolean {
  return range.split('||').some(alternative => {
    const text = alternative.trim()
    if (text === '*' || text === '') return true
    const atLeast = /^>=\s*(\d+)(?:\.(\d+|x))?(?:\.(\d+|x))?$/.exec(text)
    if (atLeast !== null) {
      const floor = [Number(atLeast[1]), Number(atLeast[2] === 'x' ? 0 : atLeast[2] ?? 0), Number(atLeast[3] === 'x' ? 0 : atLeast[3] ?? 0)]
      return compare(version, floor) >= 0
    }
    const major = /^(\d+)\.x$/.exec(text)
    if (major !== null) return version[0] === Number(major[1])
    throw new Error(`an engines range this check does not read: ${text}`)
  })
}

test('every installed package runs on the lowest Node.js this package says it needs (no EBADENGINE on npm ci)', () => {
  const ours = lowestOf(readJson('package.json').engines.node)
  const lock = readJson('package-lock.json')
  const refusing: string[] = []
  for (const [name, entry] of Object.entries<any>(lock.packages)) {
    const range = entry.engines?.node
    if (name !== '' && typeof range === 'string' && !admits(range, ours)) refusing.push(`${name} needs node ${range}`)
  }
  assert.deepEqual(refusing, [], `package.json says node ${ours.join('.')} is enough`)
  assert.ok(admits('>=22', [22, 0, 0]) && !admits('>=22', ours), 'the check itself tells a refusing range apart')
})

test('the page tests find a browser: the one named, else Debian\'s, else the packaged one, else one line on what to install', async () => {
  await assert.rejects(findBrowser({ named: '/nowhere/chromium', debian: '/nowhere/debian', packaged: async () => null }), /QF_CHROMIUM names \/nowhere\/chromium/)
  await assert.rejects(findBrowser({ debian: '/nowhere/debian', packaged: async () => null }), (err: Error) => {
    assert.equal(err.message, NO_BROWSER_MESSAGE)
    assert.ok(!err.message.includes('\n'))
    assert.match(err.message, /apt-get install chromium/)
    return true
  })

  // Without Debian's chromium the packaged one is taken, and it really renders and clicks a page here.
  const packaged = await findBrowser({ debian: '/nowhere/debian', packaged: packagedChromium })
  assert.notEqual(packaged, '/nowhere/debian')
  const server = http.createServer((_req, res) => {
    res.setHeader('content-type', 'text/html')
    res.end('<button id="b" onclick="this.textContent=\'clicked\'">click</button>')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const browser = await launchBrowser(packaged)
  try {
    const page = await browser.newPage()
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
    await page.click('#b')
    assert.equal(await page.textContent('#b'), 'clicked')
  } finally {
    await browser.close()
    server.close()
  }
})
