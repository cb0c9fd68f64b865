import express, { type Express } from 'express'
import session, { type Store } from 'express-session'
import {
  requireSmartContext,
  smartCallback,
  smartErrorHandler,
  smartLaunch,
  smartLogin,
  smartLogout,
  type SmartClientConfiguration,
  type SmartClientOptions,
  type SmartStorage,
} from '../../lib'
import request from 'supertest'
import type { LaunchContext, MockEhr } from '../../lib/testing'
import { applySetCookies } from './cookie-jar'
import { openConfig } from './smart'

export interface TestAppOptions {
  store: Store
  config?: Partial<SmartClientConfiguration>
  options?: SmartClientOptions
  storage?: SmartStorage
  /** Mount the SMART routes on a router under this path. Default: the app's root. */
  mountAt?: string
  /** Use smartErrorHandler() (JSON bodies); otherwise Express's own handler answers the status. */
  jsonErrors?: boolean
  /** Leave express-session out (misconfiguration tests). */
  withoutSession?: boolean
  /** express-session's saveUninitialized. Default: false (the documented setup). */
  saveUninitialized?: boolean
  /** express-session's cookie. Default: HttpOnly, SameSite=Lax, not Secure (tests speak http). */
  cookie?: session.CookieOptions
  /** Express's `trust proxy` (so that `X-Forwarded-Proto: https` makes the request secure). */
  trustProxy?: boolean
  /** More routes beside the API routes, given this app's `requireSmartContext` middleware. */
  routes?: (router: express.Router, requireContext: express.RequestHandler) => void
}

/** The documented setup: express-session (HttpOnly, SameSite=Lax), the SMART middlewares, a few API routes. */
export function testApp(opts: TestAppOptions): Express {
  const mount = opts.mountAt ?? ''
  const config = openConfig({ callbackUrl: `http://app.test${mount}/callback`, redirectUrl: `${mount}/app`, ...opts.config })
  // A fetch of its own per app: its own discovery cache, so EHR faults are reached.
  const options: SmartClientOptions = { allowNonHttpsLaunch: true, fetch: (input, init) => fetch(input, init), ...opts.options }
  const smart = { config, options, ...(opts.storage ? { storage: opts.storage } : {}) }

  const app = express()
  if (opts.trustProxy) app.set('trust proxy', 1)
  if (!opts.withoutSession) {
    const cookie = opts.cookie ?? { httpOnly: true, sameSite: 'lax', secure: false }
    app.use(session({ store: opts.store, secret: 'test-secret', resave: false, saveUninitialized: opts.saveUninitialized ?? false, cookie }))
  }
  const router = express.Router()
  router.get('/launch', smartLaunch(smart))
  router.get('/login', smartLogin(smart))
  router.get('/callback', smartCallback(smart))
  router.get('/api/context', requireSmartContext(smart), (req, res) => {
    res.json(req.smart)
  })
  router.get('/api/patient', requireSmartContext(smart), async (req, res) => {
    res.json(await req.smart.request(`Patient/${req.smart.patient?.id}`))
  })
  router.get('/api/fhir', requireSmartContext(smart), async (req, res) => {
    res.json(await req.smart.request(String(req.query.path)))
  })
  router.post('/logout', smartLogout(smart))
  opts.routes?.(router, requireSmartContext(smart))
  if (mount) app.use(mount, router)
  else app.use(router)
  if (opts.jsonErrors) app.use(smartErrorHandler())
  return app
}

/** Records every token, code and verifier crossing the token endpoint: what must never reach the browser. */
export function secretRecordingFetch(): { fetch: typeof fetch; secrets: Set<string> } {
  const secrets = new Set<string>()
  return {
    secrets,
    fetch: async (input, init) => {
      const body = new URLSearchParams(String(init?.body ?? ''))
      for (const field of ['code', 'code_verifier', 'refresh_token', 'client_assertion']) {
        const value = body.get(field)
        if (value) secrets.add(value)
      }
      const response = await fetch(input, init)
      if (body.has('grant_type') && response.status === 200) {
        const json = (await response.clone().json()) as Record<string, unknown>
        for (const field of ['access_token', 'refresh_token', 'id_token']) if (typeof json[field] === 'string') secrets.add(json[field] as string)
      }
      return response
    },
  }
}

/** The session cookie (`connect.sid=…`) a response sets, or undefined. */
export function sessionCookie(res: { headers: Record<string, unknown> }): string | undefined {
  const header = ([] as string[]).concat((res.headers['set-cookie'] as string[] | undefined) ?? [])
  return header.map((cookie) => cookie.split(';')[0]).find((cookie) => cookie.startsWith('connect.sid='))
}

/** The path and query of a URL, as supertest requests it. */
export const pathOf = (url: URL): string => `${url.pathname}${url.search}`

/** A SmartStorage that records every write: key, value and the TTL asked for. */
export function recordingStorage(inner: SmartStorage): { storage: SmartStorage; writes: Array<{ key: string; value: unknown; ttl: number | undefined }> } {
  const writes: Array<{ key: string; value: unknown; ttl: number | undefined }> = []
  const storage: SmartStorage = {
    get: (key) => inner.get(key),
    set: (key, value, ttl) => (writes.push({ key, value, ttl }), inner.set(key, value, ttl)),
    delete: (key) => inner.delete(key),
    setIfAbsent: (key, value, ttl) => (writes.push({ key, value, ttl }), inner.setIfAbsent!(key, value, ttl)),
  }
  if (inner.take) storage.take = (key) => inner.take!(key)
  return { storage, writes }
}

/**
 * A browser's cookie jar as a `Cookie` header: `cookie` (a header, or none) with the Set-Cookies of `res`
 * applied (Max-Age=0 or an empty value deletes). Tests pass the result around as the browser's cookies.
 */
export function withCookies(cookie: string | undefined, res: { headers: Record<string, unknown> }): string {
  return applySetCookies(cookie ?? '', ([] as string[]).concat((res.headers['set-cookie'] as string[] | undefined) ?? []))
}

/**
 * A whole launch by a browser holding `cookie` (a `Cookie` header; none: a new browser), as raw requests: the
 * cookies the browser holds afterwards (session, browser and any other), as a `Cookie` header. For tests that
 * send one browser's cookies to several app instances: an app, or the base URL of one in another process.
 */
export async function launchedCookie(app: Express | string, ehr: MockEhr, context: LaunchContext, cookie?: string): Promise<string> {
  const launch = new URL(ehr.launchUrl('http://app.test/launch', context)).search
  const started = await (cookie ? request(app).get(`/launch${launch}`).set('Cookie', cookie) : request(app).get(`/launch${launch}`))
  if (started.status !== 302) throw new Error(`launch answered ${started.status}`)
  const back = await ehr.authorize(started.headers.location)
  const held = withCookies(cookie, started)
  const called = await request(app).get(pathOf(back)).set('Cookie', held)
  if (called.status !== 302) throw new Error(`callback answered ${called.status}: ${called.text}`)
  return withCookies(held, called)
}
