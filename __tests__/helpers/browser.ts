import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Debian's chromium, headless, driven by playwright-core (which gives it a fresh temporary profile).
 * A missing browser fails the run — it never skips: `apt-get install -y chromium` (.ci/run does).
 */
export async function launchChromium(): Promise<{ browser: Browser; close: () => Promise<void> }> {
  if (!existsSync(CHROMIUM)) throw new Error(`No browser at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH`)
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Keep chromium off the (closed) network, and let it run as root here.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
  return { browser, close: () => browser.close() }
}
