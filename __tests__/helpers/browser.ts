import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type BrowserContext } from 'playwright-core'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
// Keep chromium off the (closed) network, and let it run as root here.
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

function checkChromium(): void {
  if (!existsSync(CHROMIUM)) throw new Error(`No browser at ${CHROMIUM}: install Debian's chromium (apt-get install -y chromium) or set CHROMIUM_PATH`)
}

/**
 * Debian's chromium, headless, driven by playwright-core (which gives it a fresh temporary profile).
 * A missing browser fails the run — it never skips: `apt-get install -y chromium` (.ci/run does).
 */
export async function launchChromium(): Promise<{ browser: Browser; close: () => Promise<void> }> {
  checkChromium()
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
  return { browser, close: () => browser.close() }
}

// playwright-core turns Chromium's ThirdPartyStoragePartitioning off (microsoft/playwright#32230), and with it a
// cross-site frame gets no storage at all (sessionStorage throws SecurityError) where third-party cookies are
// blocked; Chrome has partitioned that storage by default since version 115. Chromium keeps the last
// --disable-features it is given, so this list replaces playwright-core's (kept but for that feature).
const DISABLE_FEATURES = '--disable-features=' + [
  'AvoidUnnecessaryBeforeUnloadCheckSync', 'DestroyProfileOnBrowserClose', 'HttpsUpgrades', 'HttpsFirstBalancedModeAutoEnable',
  'LensOverlay', 'MediaRouter', 'PaintHolding', 'AvoidCorsURLLoaderRestartOnRedirect', 'OptimizationHints',
  'NetworkTimeServiceQuerying', 'AimEnabled', 'PreconnectToSearch',
].join(',')

/**
 * Chromium as a user has it, with a fresh profile of its own whose third-party cookie setting is chosen, not
 * left to the version's default: the profile preference `profile.cookie_controls_mode` (what
 * chrome://settings/cookies writes), 1 = block third-party cookies, 0 = allow them. Partitioned (CHIPS)
 * cookies, and a cross-site frame's partitioned storage, are kept either way. HTTPS errors are ignored
 * (self-signed certificates of local servers). The profile is deleted on close.
 */
export async function launchChromiumProfile(opts: { thirdPartyCookies: 'blocked' | 'allowed' }): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  checkChromium()
  const userDataDir = await mkdtemp(join(tmpdir(), 'chromium-profile-'))
  try {
    await mkdir(join(userDataDir, 'Default'))
    const mode = opts.thirdPartyCookies === 'blocked' ? 1 : 0
    await writeFile(join(userDataDir, 'Default', 'Preferences'), JSON.stringify({ profile: { cookie_controls_mode: mode } }))
    const context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: [...ARGS, DISABLE_FEATURES], ignoreHTTPSErrors: true })
    return {
      context,
      close: async () => {
        await context.close()
        await rm(userDataDir, { recursive: true, force: true })
      },
    }
  } catch (err) {
    await rm(userDataDir, { recursive: true, force: true })
    throw err
  }
}
