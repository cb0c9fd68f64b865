import { join } from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { launchChromium } from '../helpers/browser'
import { startExample, type RunningExample } from '../helpers/example-app'

jest.setTimeout(60_000)

const redisUrl = process.env.REDIS_URL
const inCi = process.env.CI === 'true'
if (inCi && !redisUrl) throw new Error('CI=true needs REDIS_URL (global-setup starts redis-server)')
// The Redis variant runs wherever Redis is available, and always under CI=true.
const sessionKinds: Array<[string, string | undefined]> = [['memory', undefined], ...(redisUrl ? [['Redis', redisUrl] as [string, string]] : [])]

// Lower case: the page may style names (e.g. family names in capitals); checks compare lower-cased text.
const FAMILY: Record<string, string> = { 'patient-1': 'shaw', 'patient-2': 'adams', 'patient-3': 'martinez' }

let browser: Browser
let closeBrowser: () => Promise<void>
beforeAll(async () => ({ browser, close: closeBrowser } = await launchChromium()))
afterAll(() => closeBrowser())

/** Clicks the EHR's Launch link of a patient; the app opens in a new tab. */
async function launchFromEhr(context: BrowserContext, ehrPage: Page, patient: string): Promise<Page> {
  const [tab] = await Promise.all([context.waitForEvent('page'), ehrPage.click(`a.launch[data-patient-id="${patient}"]`)])
  await tab.waitForLoadState()
  return tab
}

/** Waits for the app's banner and returns which patient it shows. */
async function bannerOf(tab: Page): Promise<{ id: string | null; text: string }> {
  const banner = await tab.waitForSelector('#patient-banner[data-patient-id]', { state: 'visible', timeout: 15_000 })
  return { id: await banner.getAttribute('data-patient-id'), text: ((await banner.textContent()) ?? '').toLowerCase() }
}

describe.each(sessionKinds)('the example app in Chromium, sessions in %s', (kind, url) => {
  let example: RunningExample
  beforeAll(async () => (example = await startExample({ redisUrl: url })))
  afterAll(() => example.close())

  it('two patients launched in two tabs each show their own patient, also after a reload', async () => {
    const context = await browser.newContext({ viewport: { width: 1100, height: 900 } })
    try {
      const ehrPage = await context.newPage()
      await ehrPage.goto(example.ehrHome)
      const tabA = await launchFromEhr(context, ehrPage, 'patient-1')
      expect(await bannerOf(tabA)).toMatchObject({ id: 'patient-1', text: expect.stringContaining(FAMILY['patient-1']) })
      const tabB = await launchFromEhr(context, ehrPage, 'patient-2')
      expect(await bannerOf(tabB)).toMatchObject({ id: 'patient-2', text: expect.stringContaining(FAMILY['patient-2']) })

      for (const [tab, patient] of [[tabA, 'patient-1'], [tabB, 'patient-2']] as const) {
        expect(new URL(tab.url()).searchParams.has('patient')).toBe(false)
        await tab.reload()
        const banner = await bannerOf(tab)
        expect(banner.id).toBe(patient)
        expect(banner.text).toContain(FAMILY[patient])
        await tab.waitForSelector('#vitals-chart svg', { state: 'visible' })
        expect(await tab.locator('#conditions li').count()).toBeGreaterThan(0)
        expect(await tab.locator('#medications li').count()).toBeGreaterThan(0)
        const other = patient === 'patient-1' ? 'patient-2' : 'patient-1'
        expect((await tab.locator('body').innerText()).toLowerCase()).not.toContain(FAMILY[other])
      }
      // The README's picture is regenerated on purpose only (`npm run screenshot`): tests write nothing tracked.
      if (kind === 'memory' && process.env.UPDATE_SCREENSHOT === '1') await tabA.screenshot({ path: join(__dirname, '..', '..', 'example-app', 'screenshot.png'), fullPage: true })
    } finally {
      await context.close()
    }
  })

  it('at phone width (390 px) nothing is wider than the screen, every chart fits its card, and the encounter is today\'s', async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } })
    try {
      const ehrPage = await context.newPage()
      await ehrPage.goto(example.ehrHome)
      const tab = await launchFromEhr(context, ehrPage, 'patient-2')
      expect((await bannerOf(tab)).id).toBe('patient-2')
      await tab.waitForSelector('#vitals-chart svg', { state: 'visible' })
      const layout = await tab.evaluate(() => {
        const width = document.documentElement.clientWidth
        const describe = (el: Element) => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}.${[...el.classList].join('.')}`
        // Anything drawn past the right edge of the screen, or of the card holding it (SVG text included).
        const outside = [...document.querySelectorAll('body *')].flatMap((el) => {
          const box = el.getBoundingClientRect()
          if (box.width === 0) return []
          const card = el.closest('.vitals-chart')?.getBoundingClientRect()
          const limit = Math.min(width, card ? card.right : width)
          return box.right > limit + 0.5 ? [`${describe(el)} ends at ${Math.round(box.right)} px, beyond ${Math.round(limit)} px`] : []
        })
        return { width, scrollWidth: document.documentElement.scrollWidth, charts: document.querySelectorAll('#vitals-chart svg').length, outside }
      })
      expect(layout.charts).toBeGreaterThan(0)
      expect(layout.outside).toEqual([])
      expect(layout.scrollWidth).toBeLessThanOrEqual(layout.width)
      // The mock EHR's clinical data is dated relative to today: the encounter in progress started today.
      // (Either date within the hour: a run just after midnight sees an encounter that began yesterday.)
      const day = new Intl.DateTimeFormat('en-US', { year: 'numeric', month: 'short', day: 'numeric' })
      const dates = [...new Set([day.format(new Date()), day.format(new Date(Date.now() - 3_600_000))])]
      expect(await tab.locator('#encounter').innerText()).toMatch(new RegExp(dates.map((d) => d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')))
    } finally {
      await context.close()
    }
  })

  it('a tab whose sessionStorage was cleared, or a direct visit, shows the relaunch message and no patient data', async () => {
    const context = await browser.newContext()
    try {
      const ehrPage = await context.newPage()
      await ehrPage.goto(example.ehrHome)
      const tab = await launchFromEhr(context, ehrPage, 'patient-3')
      await bannerOf(tab)
      await tab.evaluate(() => sessionStorage.clear())
      await tab.reload()
      await tab.waitForSelector('#relaunch', { state: 'visible' })
      expect((await tab.locator('body').innerText()).toLowerCase()).not.toContain(FAMILY['patient-3'])

      const direct = await context.newPage()
      await direct.goto(example.appUrl)
      await direct.waitForSelector('#relaunch', { state: 'visible' })
      expect(await direct.locator('body').innerText()).not.toMatch(/shaw|adams|martinez/i)
    } finally {
      await context.close()
    }
  })
})

describe.each(sessionKinds)('standalone launch in Chromium, sessions in %s', (_kind, url) => {
  let example: RunningExample
  beforeAll(async () => (example = await startExample({ redisUrl: url })))
  afterAll(() => example.close())

  it('the app opened directly offers "Sign in with the EHR"; the EHR\'s picker chooses the patient the app then shows', async () => {
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      await page.goto(example.appUrl)
      await page.waitForSelector('#relaunch', { state: 'visible' })
      await Promise.all([page.waitForURL((url) => url.origin === new URL(example.ehr.issuer).origin), page.click('a.sign-in-link')])
      await page.waitForSelector('tr[data-patient-id="patient-2"] button.choose')
      expect((await page.locator('body').innerText()).toLowerCase()).toContain(FAMILY['patient-3'])
      await page.click('tr[data-patient-id="patient-2"] button.choose')
      expect(await bannerOf(page)).toMatchObject({ id: 'patient-2', text: expect.stringContaining(FAMILY['patient-2']) })
      await page.reload()
      expect((await bannerOf(page)).id).toBe('patient-2')
      // An EHR launch of another patient in a second tab keeps both.
      const ehrPage = await context.newPage()
      await ehrPage.goto(example.ehrHome)
      const tab = await launchFromEhr(context, ehrPage, 'patient-1')
      expect((await bannerOf(tab)).id).toBe('patient-1')
      await page.reload()
      expect((await bannerOf(page)).id).toBe('patient-2')
    } finally {
      await context.close()
    }
  })

  it('"Deny" at the picker brings the user back to the page, which says so and shows no patient', async () => {
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      await page.goto(example.appUrl)
      await Promise.all([page.waitForURL((url) => url.origin === new URL(example.ehr.issuer).origin), page.click('a.sign-in-link')])
      await page.click('button.deny')
      await page.waitForSelector('#relaunch[data-reason="failed"]', { state: 'visible' })
      expect(await page.locator('#relaunch').innerText()).toContain('AUTHORIZATION_DENIED')
      expect(new URL(page.url()).searchParams.has('error')).toBe(false)
      expect(await page.locator('body').innerText()).not.toMatch(/shaw|adams|martinez/i)
    } finally {
      await context.close()
    }
  })
})

describe.each(sessionKinds)('two EHRs launching the same patient id, sessions in %s', (_kind, url) => {
  let example: RunningExample
  beforeAll(async () => (example = await startExample({ redisUrl: url, twoEhrs: true })))
  afterAll(() => example.close())

  /** Which EHR and patient a tab shows. */
  async function shownBy(tab: Page): Promise<{ patient: string | null; fhirServer: string | null }> {
    await bannerOf(tab)
    return { patient: await tab.getAttribute('body', 'data-patient-id'), fhirServer: await tab.getAttribute('body', 'data-fhir-server') }
  }

  it('each tab keeps its own EHR\'s patient, also after a reload', async () => {
    const { ehr } = example
    const other = example.otherEhr!
    const context = await browser.newContext()
    try {
      const ehrPage = await context.newPage()
      await ehrPage.goto(example.ehrHome)
      const otherPage = await context.newPage()
      await otherPage.goto(other.ehrHome)
      const tabA = await launchFromEhr(context, ehrPage, 'patient-1')
      expect(await shownBy(tabA)).toEqual({ patient: 'patient-1', fhirServer: ehr.iss })
      const tabB = await launchFromEhr(context, otherPage, 'patient-1')
      expect(await shownBy(tabB)).toEqual({ patient: 'patient-1', fhirServer: other.ehr.iss })

      for (const [tab, target] of [[tabA, ehr], [tabB, other.ehr]] as const) {
        const elsewhere = target === ehr ? other.ehr : ehr
        const before = { target: target.fhirLog.length, elsewhere: elsewhere.fhirLog.length }
        await tab.reload()
        expect(await shownBy(tab)).toEqual({ patient: 'patient-1', fhirServer: target.iss })
        await tab.waitForSelector('#vitals-chart svg', { state: 'visible' })
        // The reload's FHIR reads went to this tab's EHR, none to the other.
        expect(target.fhirLog.length).toBeGreaterThan(before.target)
        expect(elsewhere.fhirLog.length).toBe(before.elsewhere)
      }
    } finally {
      await context.close()
    }
  })

  it('"Close patient" ends that tab\'s launch only; the other tab keeps its patient', async () => {
    const context = await browser.newContext()
    try {
      const ehrPage = await context.newPage()
      await ehrPage.goto(example.ehrHome)
      const tabA = await launchFromEhr(context, ehrPage, 'patient-2')
      const tabB = await launchFromEhr(context, ehrPage, 'patient-3')
      await bannerOf(tabA)
      await bannerOf(tabB)
      const revocations = example.ehr.stats.revocations
      await tabA.click('#close-patient')
      await tabA.waitForSelector('#relaunch[data-reason="closed"]', { state: 'visible' })
      expect((await tabA.locator('body').innerText()).toLowerCase()).not.toContain(FAMILY['patient-2'])
      expect(example.ehr.stats.revocations).toBeGreaterThan(revocations)
      await tabA.reload()
      await tabA.waitForSelector('#relaunch', { state: 'visible' })
      await tabB.reload()
      expect((await bannerOf(tabB)).id).toBe('patient-3')
    } finally {
      await context.close()
    }
  })

  // The echo alone is not enough (issue 19: a re-bound selector echoed the page's own value): the EHR and patient are checked too.
  it.each([
    ['another selector', 'x-active-patient', 'patient-3'],
    ['another EHR, the same selector', 'x-smart-iss', 'http://127.0.0.1:1/fhir'],
    ['another patient, the same selector', 'x-smart-patient', 'patient-3'],
  ])('an answer naming another launch than the tab\'s (%s) is never shown: the page asks for a relaunch', async (_case, header, value) => {
    const context = await browser.newContext()
    try {
      const ehrPage = await context.newPage()
      await ehrPage.goto(example.ehrHome)
      const tab = await launchFromEhr(context, ehrPage, 'patient-2')
      await bannerOf(tab)
      await tab.route('**/api/**', async (route) => {
        const response = await route.fetch()
        await route.fulfill({ response, headers: { ...response.headers(), [header]: value } })
      })
      await tab.reload()
      await tab.waitForSelector('#relaunch', { state: 'visible' })
      expect((await tab.locator('body').innerText()).toLowerCase()).not.toContain(FAMILY['patient-2'])
    } finally {
      await context.close()
    }
  })
})

describe('an expired access token in the browser', () => {
  let example: RunningExample
  beforeAll(async () => (example = await startExample({ accessTokenTtlSeconds: 2, refreshLeewaySeconds: 1 })))
  afterAll(() => example.close())

  it('is refreshed without the user noticing', async () => {
    const context = await browser.newContext()
    try {
      const ehrPage = await context.newPage()
      await ehrPage.goto(example.ehrHome)
      const tab = await launchFromEhr(context, ehrPage, 'patient-1')
      await bannerOf(tab)
      const grants = example.ehr.stats.refreshGrants
      await new Promise((resolve) => setTimeout(resolve, 2500))
      await tab.reload()
      expect((await bannerOf(tab)).id).toBe('patient-1')
      await tab.waitForSelector('#vitals-chart svg', { state: 'visible' })
      expect(await tab.locator('#relaunch').isVisible()).toBe(false)
      expect(await tab.locator('#error').isVisible()).toBe(false)
      expect(example.ehr.stats.refreshGrants).toBeGreaterThan(grants)
    } finally {
      await context.close()
    }
  })
})
