/**
 * Launches sessions of the app process from the orchestrator, the way a browser would: the EHR's launch
 * URL, the app's launch route, the mock EHR's authorization (ehr.authorize plays the user), the app's
 * callback. Each launch returns the cookies to send afterwards (session, browser), as a browser would.
 */
import type { LaunchContext, MockEhr } from 'express-smart-on-fhir/testing'

export interface LaunchRoutes {
  /** The library's (`/launch`, `/callback`) or fhirclient's (`/fc/launch`, `/fc/callback`). */
  launch: string
  /** Where a launched session answers { patient } with 200. */
  check: string
}

export const OUR_ROUTES: LaunchRoutes = { launch: '/launch', check: '/protected' }
export const FHIRCLIENT_ROUTES: LaunchRoutes = { launch: '/fc/launch', check: '/fc/protected' }

/**
 * A browser's cookie jar: every cookie the app set, sent back as one `Cookie` header. The library's launch
 * cookie (`smart-launch-…`) must reach the callback and its browser cookie (`smart-browser`) later requests,
 * besides the session cookie; a Set-Cookie with an empty value or Max-Age=0 deletes.
 */
class CookieJar {
  readonly #cookies = new Map<string, string>()

  get header(): string {
    return [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ')
  }

  update(res: Response): void {
    for (const setCookie of res.headers.getSetCookie()) {
      const [pair, ...attributes] = setCookie.split(';')
      const at = pair.indexOf('=')
      if (at <= 0) continue
      const name = pair.slice(0, at).trim()
      const value = pair.slice(at + 1).trim()
      if (value === '' || attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute))) this.#cookies.delete(name)
      else this.#cookies.set(name, value)
    }
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
