/**
 * Launches sessions of the app process from the orchestrator, the way a browser would: the EHR's launch
 * URL, the app's launch route, the mock EHR's authorization (ehr.authorize plays the user), the app's
 * callback. Each launch returns the cookies to send afterwards (session, browser), as a browser would.
 */
import type { LaunchContext, MockEhr } from 'express-smart-on-fhir/testing'
import { applySetCookies } from '../__tests__/helpers/cookie-jar'

export interface LaunchRoutes {
  /** The library's (`/launch`, `/callback`) or fhirclient's (`/fc/launch`, `/fc/callback`). */
  launch: string
  /** Where a launched session answers { patient } with 200. */
  check: string
}

export const OUR_ROUTES: LaunchRoutes = { launch: '/launch', check: '/protected' }
export const FHIRCLIENT_ROUTES: LaunchRoutes = { launch: '/fc/launch', check: '/fc/protected' }

/** A browser's cookie jar, sent back as one `Cookie` header. */
class CookieJar {
  header = ''

  update(res: Response): void {
    this.header = applySetCookies(this.header, res.headers.getSetCookie())
  }
}

/** One GET without following redirects, carrying and updating the browser's cookies. */
async function step(url: string, jar: CookieJar): Promise<Response> {
  const cookie = jar.header
  const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} })
  jar.update(res)
  return res
}

async function expectStatus(res: Response, status: number, what: string): Promise<Response> {
  if (res.status !== status) throw new Error(`${what} answered ${res.status} instead of ${status}: ${(await res.text()).slice(0, 300)}`)
  return res
}

/** Launches one session through `routes` of the app at `base`; resolves with the browser's cookies (a `Cookie` header). */
export async function launchSession(base: string, ehr: MockEhr, routes: LaunchRoutes, context: LaunchContext = { patient: 'patient-1' }): Promise<string> {
  const jar = new CookieJar()
  const ehrLaunch = new URL(ehr.launchUrl(`${base}${routes.launch}`, context))
  const launched = await expectStatus(await step(ehrLaunch.href, jar), 302, `GET ${routes.launch}`)
  await launched.body?.cancel()
  const back = await ehr.authorize(launched.headers.get('location')!)
  const called = await step(`${base}${back.pathname}${back.search}`, jar)
  if (called.status !== 302 && called.status !== 200) await expectStatus(called, 302, `GET ${back.pathname}`)
  await called.body?.cancel()
  return jar.header
}

/** Asserts that `cookie` is a launched session of `patient` at `routes.check`. */
export async function checkSession(base: string, routes: LaunchRoutes, cookie: string, patient = 'patient-1'): Promise<void> {
  const res = await expectStatus(await fetch(`${base}${routes.check}`, { headers: { cookie } }), 200, `GET ${routes.check}`)
  const body = (await res.json()) as { patient?: string }
  if (body.patient !== patient) throw new Error(`GET ${routes.check} answered patient ${body.patient} instead of ${patient}`)
}

/** Launches `count` sessions of patient-1, `concurrency` at a time; resolves with their cookies. */
export async function launchMany(base: string, ehr: MockEhr, count: number, concurrency: number): Promise<string[]> {
  const cookies: string[] = []
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      next++
      cookies.push(await launchSession(base, ehr, OUR_ROUTES))
    }
  }))
  return cookies
}
