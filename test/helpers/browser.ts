import fs from 'node:fs'
import { chromium } from 'playwright-core'
import type { Browser } from 'playwright-core'

/** Where Debian's `chromium` package puts the browser. */
export const DEBIAN_CHROMIUM = '/usr/bin/chromium'

export const NO_BROWSER_MESSAGE =
  'no browser for the page tests: install Debian\'s chromium (apt-get install chromium), ' +
  'or run npm ci to get @sparticuz/chromium, or set QF_CHROMIUM to a Chromium binary'

export interface BrowserSources {
  /** A path the person running the tests named (`QF_CHROMIUM`). */
  named?: string | undefined
  debian: string
  /** A Chromium that an installed npm package carries inside itself; null when none is installed. */
  packaged: () => Promise<string | null>
}

/** The packaged Chromium of `@sparticuz/chromium`: unpacked from the package itself, nothing downloaded. */
export async function packagedChromium (): Promise<string | null> {
  try {
    const mod = await import('@sparticuz/chromium')
    return await mod.default.executablePath()
  } catch {
    return null
  }
}

export const defaultSources: BrowserSources = {
  named: process.env.QF_CHROMIUM,
  debian: DEBIAN_CHROMIUM,
  packaged: packagedChromium
}

/** The browser to drive: the one named, else Debian's, else a packaged one; else one line on what to install. */
export async function findBrowser (sources: BrowserSources = defaultSources): Promise<string> {
  if (sources.named !== undefined && sources.named !== '') {
    if (!fs.existsSync(sources.named)) throw new Error(`QF_CHROMIUM names ${sources.named}, which does not exist`)
    return sources.named
  }
  if (fs.existsSync(sources.debian)) return sources.debian
  const packaged = await sources.packaged()
  if (packaged !== null && fs.existsSync(packaged)) return packaged
  throw new Error(NO_BROWSER_MESSAGE)
}

export const BROWSER_ARGS = [
  '--autoplay-policy=no-user-gesture-required', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

export async function launchBrowser (executablePath?: string): Promise<Browser> {
  return await chromium.launch({
    executablePath: executablePath ?? await findBrowser(),
    headless: true,
    chromiumSandbox: false,
    args: BROWSER_ARGS
  })
}
