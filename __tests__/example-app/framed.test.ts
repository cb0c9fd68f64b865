// Issue 20 (SECURITY S36), in a real browser: the example app inside the EHR's own page. The mock EHR is on
// http://127.0.0.1, the app on https://localhost (a self-signed certificate, as `npm start` serves it): two sites,
// so the app's frame is a cross-site frame and its cookies are third-party cookies. Chromium blocks third-party
// cookies in each test, set explicitly in a fresh profile, and each test shows in its own frame that the block is
// real (an unpartitioned cookie is dropped, a partitioned one kept), so none can pass on a browser that lets
// cookies through; one test shows that the probe does see them where they are allowed. The library side
// (supertest) is __tests__/middleware/framing.test.ts.
import { createServer as createHttpServer, type Server } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import express from 'express'
import type { BrowserContext, Frame, Page } from 'playwright-core'
import { createMockEhr, type MockEhr } from 'express-smart-on-fhir/testing'
import { createExampleApp } from '../../example-app/server'
import type { ExampleSettings } from '../../example-app/settings'
import { selfSignedCertificate } from '../../example-app/tls'
import { launchChromiumProfile } from '../helpers/browser'

jest.setTimeout(60_000)

// Lower case: the page may style names (e.g. family names in capitals); checks compare lower-cased text.
const FAMILY: Record<string, string> = { 'patient-1': 'shaw', 'patient-2': 'adams', 'patient-3': 'martinez' }
const ANY_FAMILY = /shaw|adams|martinez/i

interface FramedExample {
  ehr: MockEhr
  /** The EHR's home page, on http://127.0.0.1. */
  ehrHome: string
  /** The app, on https://localhost. */
  appUrl: string
  close: () => Promise<void>
}

const listen = (server: Server) => new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))

/**
 * The mock EHR and the example app wired as `npm start` wires them (https://localhost, the EHR's origin in
 * frameAncestors), with `sessionCookie` as given. Two probe routes stand in front of the app: `/__probe/set`
 * sets two `SameSite=None; Secure` cookies, one Partitioned and one not, and `/__probe/cookies` answers the
 * names of the cookies the browser sent.
 */
async function startFramedExample(sessionCookie?: ExampleSettings['sessionCookie']): Promise<FramedExample> {
  const server = createHttpsServer(selfSignedCertificate())
  const appUrl = `https://localhost:${await listen(server)}`
  const ehr = await createMockEhr({ appLaunchUrl: `${appUrl}/launch`, appLoginUrl: `${appUrl}/login` })
  const ehrHome = new URL('/', ehr.iss)
  const { app, close } = await createExampleApp({
    publicUrl: appUrl, sessionSecret: 'framed-test-secret', redisUrl: undefined, clientId: 'mock-app', issuers: [ehr.iss],
    allowHttpIssuer: true, refreshLeewaySeconds: 60, frameAncestors: [ehrHome.origin], sessionCookie,
  })
  const probe = express()
  probe.get('/__probe/set', (_req, res) => {
    res.set('Cache-Control', 'no-store')
    res.append('Set-Cookie', 'probe-unpartitioned=1; Path=/; SameSite=None; Secure')
    res.append('Set-Cookie', 'probe-partitioned=1; Path=/; SameSite=None; Secure; Partitioned')
    res.end()
  })
  probe.get('/__probe/cookies', (req, res) => {
    res.set('Cache-Control', 'no-store')
    res.json((req.headers.cookie ?? '').split(';').map((pair) => pair.split('=')[0].trim()).filter(Boolean))
  })
  probe.use(app)
  server.on('request', probe)
  return {
    ehr, ehrHome: ehrHome.href, appUrl,
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await Promise.all([ehr.close(), close()])
    },
  }
}

/** Runs `body` in a fresh Chromium profile with third-party cookies blocked (or allowed). */
async function inChromium(thirdPartyCookies: 'blocked' | 'allowed', body: (context: BrowserContext) => Promise<void>): Promise<void> {
  const { context, close } = await launchChromiumProfile({ thirdPartyCookies })
  try {
    await body(context)
  } finally {
    await close()
  }
}

/** Opens the EHR's home page and clicks one of its links that open a new tab; returns the tab and its app frame. */
async function openFromEhr(context: BrowserContext, example: FramedExample, link: string): Promise<{ tab: Page; frame: Frame }> {
  const ehrPage = await context.newPage()
  await ehrPage.goto(example.ehrHome)
  const [tab] = await Promise.all([context.waitForEvent('page'), ehrPage.click(link)])
  await tab.waitForLoadState()
  if (new URL(tab.url()).origin !== new URL(example.ehrHome).origin) throw new Error(`not the EHR's page: ${tab.url()}`)
  const frame = await (await tab.waitForSelector('iframe#app-frame')).contentFrame()
  if (!frame) throw new Error('the EHR page has no app frame')
  return { tab, frame }
}

const launchInFrame = (context: BrowserContext, example: FramedExample, patient: string) =>
  openFromEhr(context, example, `a.launch-in-frame[data-patient-id="${patient}"]`)

/** Waits for the app's banner in the frame and returns which patient it shows. */
async function bannerOf(frame: Frame): Promise<{ id: string | null; text: string }> {
  const banner = await frame.waitForSelector('#patient-banner[data-patient-id]', { state: 'visible', timeout: 15_000 })
  return { id: await banner.getAttribute('data-patient-id'), text: ((await banner.textContent()) ?? '').toLowerCase() }
}

/** The frame shows the patient and the data of every API call of the page. */
async function expectPatientShown(frame: Frame, patient: string): Promise<void> {
  expect(await bannerOf(frame)).toEqual({ id: patient, text: expect.stringContaining(FAMILY[patient]) })
  await frame.waitForSelector('#vitals-chart svg', { state: 'visible' })
  expect(await frame.locator('#conditions li').count()).toBeGreaterThan(0)
  expect(await frame.locator('#medications li').count()).toBeGreaterThan(0)
  expect(await frame.locator('#practitioner').innerText()).toContain('Susan Clark')
  const others = Object.entries(FAMILY).filter(([id]) => id !== patient).map(([, family]) => family)
  const text = (await frame.locator('body').innerText()).toLowerCase()
  for (const family of others) expect(text).not.toContain(family)
}

async function reloadFrame(frame: Frame): Promise<void> {
  await Promise.all([frame.waitForNavigation({ waitUntil: 'load' }), frame.evaluate(() => location.reload())])
}

/** Which probe cookies the app's document in `frame` keeps: as sent to the app, and as seen by the page. */
async function probeCookies(frame: Frame): Promise<{ sent: string[]; visible: string[] }> {
  return frame.evaluate(async () => {
    await fetch('/__probe/set', { cache: 'no-store' })
    const sent: string[] = await (await fetch('/__probe/cookies', { cache: 'no-store' })).json()
    const visible = document.cookie.split(';').map((pair) => pair.split('=')[0].trim())
    return { sent: sent.filter((name) => name.startsWith('probe-')).sort(), visible: visible.filter((name) => name.startsWith('probe-')).sort() }
  })
}

/** Third-party cookies are blocked in this frame: the unpartitioned cookie was dropped, the partitioned one kept. */
async function expectThirdPartyCookiesBlocked(frame: Frame): Promise<void> {
  expect(await probeCookies(frame)).toEqual({ sent: ['probe-partitioned'], visible: ['probe-partitioned'] })
}

/** The app's own cookies the browser holds: name, SameSite and the top-level site they are kept for. */
async function appCookies(context: BrowserContext, example: FramedExample) {
  const cookies = await context.cookies(example.appUrl)
  return cookies.filter((c) => !c.name.startsWith('probe-')).map((c) => ({ name: c.name, sameSite: c.sameSite, secure: c.secure, partitionKey: c.partitionKey }))
}

describe('the example app inside the EHR\'s frame, third-party cookies blocked', () => {
  let example: FramedExample
  beforeAll(async () => (example = await startFramedExample()))
  afterAll(() => example?.close())

  it('the probe tells blocked from allowed: with third-party cookies allowed the unpartitioned cookie is kept in the frame too', async () => {
    await inChromium('allowed', async (context) => {
      const { frame } = await launchInFrame(context, example, 'patient-3')
      await bannerOf(frame)
      expect(await probeCookies(frame)).toEqual({ sent: ['probe-partitioned', 'probe-unpartitioned'], visible: ['probe-partitioned', 'probe-unpartitioned'] })
    })
  })

  it('an EHR launch in the frame shows the patient and the data of every API call; the app\'s cookies are partitioned under the EHR\'s site', async () => {
    await inChromium('blocked', async (context) => {
      const { tab, frame } = await launchInFrame(context, example, 'patient-1')
      await expectPatientShown(frame, 'patient-1')
      expect(await tab.getAttribute('#chart-banner', 'data-patient-id')).toBe('patient-1')
      expect(new URL(frame.url()).origin).toBe(example.appUrl)
      expect(new URL(frame.url()).searchParams.has('patient')).toBe(false)
      await expectThirdPartyCookiesBlocked(frame)
      const ehrSite = new URL(example.ehrHome).origin.replace(/:\d+$/, '')
      const cookies = await appCookies(context, example)
      expect(cookies.map((c) => c.name)).toEqual(expect.arrayContaining(['__Host-example.sid', '__Host-smart-browser']))
      for (const cookie of cookies) expect(cookie).toMatchObject({ sameSite: 'None', secure: true, partitionKey: ehrSite })
    })
  })

  it('a standalone login in the frame: the EHR\'s picker inside the frame, the chosen patient shown; "Sign in with the EHR" in the frame does it again', async () => {
    await inChromium('blocked', async (context) => {
      const { frame } = await openFromEhr(context, example, 'a#standalone-in-frame')
      await frame.waitForSelector('tr[data-patient-id="patient-2"] button.choose')
      expect(new URL(frame.url()).origin).toBe(new URL(example.ehrHome).origin)
      await frame.click('tr[data-patient-id="patient-2"] button.choose')
      await expectPatientShown(frame, 'patient-2')
      await expectThirdPartyCookiesBlocked(frame)
      await reloadFrame(frame)
      expect((await bannerOf(frame)).id).toBe('patient-2')

      await frame.click('#close-patient')
      await frame.waitForSelector('#relaunch[data-reason="closed"]', { state: 'visible' })
      await frame.click('a.sign-in-link')
      await frame.waitForSelector('tr[data-patient-id="patient-3"] button.choose')
      await frame.click('tr[data-patient-id="patient-3"] button.choose')
      await expectPatientShown(frame, 'patient-3')
    })
  })

  it('two EHR tabs framing the app for two patients (multi-launch) each keep their patient after reloading the frame', async () => {
    await inChromium('blocked', async (context) => {
      const a = await launchInFrame(context, example, 'patient-1')
      await expectPatientShown(a.frame, 'patient-1')
      const b = await launchInFrame(context, example, 'patient-2')
      await expectPatientShown(b.frame, 'patient-2')
      await expectThirdPartyCookiesBlocked(b.frame)
      for (const [{ frame }, patient] of [[a, 'patient-1'], [b, 'patient-2'], [a, 'patient-1']] as const) {
        await reloadFrame(frame)
        await expectPatientShown(frame, patient)
      }
    })
  })
})

describe('a session cookie the browser does not keep in the frame', () => {
  let lax: FramedExample
  let unpartitioned: FramedExample
  beforeAll(async () => {
    lax = await startFramedExample({ sameSite: 'lax' })
    unpartitioned = await startFramedExample({ sameSite: 'none', partitioned: false })
  })
  // Optional chaining: when a start fails, its own error is the one to read, not a TypeError here.
  afterAll(() => Promise.all([lax?.close(), unpartitioned?.close()]))

  it('SameSite=Lax: the framed launch is refused and the page says why (SameSite=None, Secure, Partitioned); top-level the launch works', async () => {
    await inChromium('blocked', async (context) => {
      const { frame } = await launchInFrame(context, lax, 'patient-1')
      const notice = await frame.waitForSelector('#relaunch[data-reason="framed-cookie"]', { state: 'visible', timeout: 15_000 })
      const text = await notice.innerText()
      for (const word of ['MISCONFIGURED', 'SameSite=None', 'Secure', 'Partitioned']) expect(text).toContain(word)
      expect(await frame.locator('#sign-in').isVisible()).toBe(false)
      expect(await frame.locator('body').innerText()).not.toMatch(ANY_FAMILY)
      expect(new URL(frame.url()).searchParams.has('error')).toBe(false)
      // Refused before anything was stored: the app set no cookie.
      expect(await appCookies(context, lax)).toEqual([])
      await expectThirdPartyCookiesBlocked(frame)

      const ehrPage = await context.newPage()
      await ehrPage.goto(lax.ehrHome)
      const [topLevel] = await Promise.all([context.waitForEvent('page'), ehrPage.click('a.launch[data-patient-id="patient-1"]')])
      await expectPatientShown(topLevel.mainFrame(), 'patient-1')
    })
  })

  it('SameSite=None; Secure without Partitioned: the framed launch loses its session where third-party cookies are blocked, and works where they are not', async () => {
    await inChromium('blocked', async (context) => {
      const { frame } = await launchInFrame(context, unpartitioned, 'patient-2')
      const notice = await frame.waitForSelector('#relaunch[data-reason="failed"]', { state: 'visible', timeout: 15_000 })
      expect(await notice.innerText()).toContain('INVALID_STATE')
      expect(await frame.locator('body').innerText()).not.toMatch(ANY_FAMILY)
      expect(await appCookies(context, unpartitioned)).toEqual([])
      await expectThirdPartyCookiesBlocked(frame)
    })
    await inChromium('allowed', async (context) => {
      const { frame } = await launchInFrame(context, unpartitioned, 'patient-2')
      await expectPatientShown(frame, 'patient-2')
    })
  })
})

describe('only the EHR may frame the app (CSP frame-ancestors)', () => {
  let example: FramedExample
  let other: Server
  let otherOrigin: string
  beforeAll(async () => {
    example = await startFramedExample()
    // A page of another origin that frames the app's page.
    other = createHttpServer((_req, res) => {
      res.setHeader('Content-Type', 'text/html')
      res.end(`<!doctype html><title>Another site</title><iframe id="app-frame" src="${example.appUrl}/"></iframe>`)
    })
    otherOrigin = `http://127.0.0.1:${await listen(other)}`
  })
  afterAll(async () => {
    other.closeAllConnections()
    await new Promise((resolve) => other.close(resolve))
    await example.close()
  })

  it('the app\'s page in a frame of the EHR\'s origin shows; in a frame of another origin the browser refuses it', async () => {
    await inChromium('blocked', async (context) => {
      const { frame } = await launchInFrame(context, example, 'patient-1')
      await bannerOf(frame)
      await frame.goto(`${example.appUrl}/`)
      expect((await bannerOf(frame)).id).toBe('patient-1')
      await expectThirdPartyCookiesBlocked(frame)

      const page = await context.newPage()
      const refusals: string[] = []
      page.on('console', (message) => void (/frame-ancestors/.test(message.text()) && refusals.push(message.text())))
      const responded = page.waitForResponse((response) => response.url() === `${example.appUrl}/`)
      await page.goto(otherOrigin)
      // The app answered, with its policy; the browser did not show the answer.
      expect((await responded).headers()['content-security-policy']).toBe(`frame-ancestors 'self' ${new URL(example.ehrHome).origin}`)
      const framed = await (await page.waitForSelector('iframe#app-frame')).contentFrame()
      for (const until = Date.now() + 10_000; refusals.length === 0 && Date.now() < until;) await page.waitForTimeout(50)
      expect(refusals[0]).toContain(`Framing '${example.appUrl}/' violates the following Content Security Policy directive: "frame-ancestors`)
      expect(framed!.url()).not.toContain(example.appUrl)
      expect(await framed!.locator('#relaunch, #patient-banner').count()).toBe(0)
    })
  })
})
