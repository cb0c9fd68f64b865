import { join } from 'node:path'
import express, { type Express, type NextFunction, type Request, type Response } from 'express'
import session, { MemoryStore, type Store } from 'express-session'
import { RedisStore } from 'connect-redis'
import { createClient } from 'redis'
import connectPgSimple from 'connect-pg-simple'
import { Pool } from 'pg'
import {
  failFastStore, isSmartError, requireSmartContext, smartCallback, smartErrorHandler, smartFrameAncestors, smartLaunch, smartLogin, smartLogout, type SmartMiddlewareOptions,
} from 'express-smart-on-fhir'
import { clinicalApi } from './clinical-api'
import type { ExampleSettings } from './settings'

/** Sessions in Redis (REDIS_URL), PostgreSQL (DATABASE_URL) or memory. Every client gets an error listener: a store outage is a 503, never a crash. */
async function sessionStore(settings: ExampleSettings): Promise<{ store: Store; close: () => Promise<void> }> {
  if (settings.redisUrl) {
    const client = createClient({ url: settings.redisUrl, socket: { connectTimeout: 5000 } })
    client.on('error', (err: Error) => console.error(`redis: ${err.message}`))
    await client.connect()
    return { store: new RedisStore({ client, prefix: 'example-app:' }), close: async () => void (await client.close()) }
  }
  if (settings.databaseUrl) {
    const pool = new Pool({ connectionString: settings.databaseUrl, connectionTimeoutMillis: 5000 })
    pool.on('error', (err: Error) => console.error(`postgres: ${err.message}`))
    // createTableIfMissing races when several processes start on a new database: create the table once in production.
    const PGStore = connectPgSimple(session)
    const store = new PGStore({ pool, tableName: 'example_app_sessions', createTableIfMissing: true })
    return { store, close: async () => { store.close(); await pool.end() } }
  }
  return { store: new MemoryStore(), close: async () => undefined }
}

/**
 * The session cookie. Over https one configuration serves the app top-level and inside the EHR's frame:
 * `SameSite=None; Secure; Partitioned` — a cross-site frame gets only SameSite=None cookies, and where third-party
 * cookies are blocked only Partitioned ones (CHIPS: kept apart per top-level site, so no other site sees them).
 * Plain http (local only) cannot be Secure: Lax, top-level only. `__Host-` (Secure, Path=/, no Domain): no page
 * of a subdomain can plant or overwrite it.
 */
function sessionCookie(settings: ExampleSettings): { name: string; cookie: session.CookieOptions } {
  const secure = settings.publicUrl.startsWith('https:')
  const sameSite = settings.sessionCookie?.sameSite ?? (secure ? 'none' : 'lax')
  if (!secure) {
    if (sameSite === 'none') throw new Error('A SameSite=None session cookie needs Secure, which needs https: set APP_URL to an https URL')
    return { name: 'example.sid', cookie: { httpOnly: true, sameSite: 'lax', secure: false } }
  }
  const partitioned = sameSite === 'none' && settings.sessionCookie?.partitioned !== false
  return { name: '__Host-example.sid', cookie: { httpOnly: true, sameSite, secure: true, ...(partitioned ? { partitioned } : {}) } }
}

/**
 * The example clinician app: express-session (memory, or Redis with REDIS_URL), the SMART middlewares in
 * multi-launch mode (EHR launch, standalone login, callback, logout), the page's JSON API behind
 * requireSmartContext, and the page; only the app itself and `settings.frameAncestors` may frame it.
 */
export async function createExampleApp(settings: ExampleSettings): Promise<{ app: Express; close: () => Promise<void> }> {
  const { store, close } = await sessionStore(settings)
  const smart: SmartMiddlewareOptions = {
    config: {
      clientId: settings.clientId,
      scope: 'openid fhirUser profile launch launch/patient patient/*.rs offline_access',
      callbackUrl: `${settings.publicUrl}/callback`,
      redirectUrl: '/',
      knownFhirServers: settings.issuers.map((issuer) => ({ issuer, type: 'public' as const, frameAncestors: settings.frameAncestors ?? [] })),
    },
    options: {
      enableMultiLaunch: true,
      allowNonHttpsLaunch: settings.allowHttpIssuer,
      refreshLeewaySeconds: settings.refreshLeewaySeconds,
    },
  }

  const app = express()
  app.disable('x-powered-by')
  // Content-Security-Policy: frame-ancestors 'self' and the EHRs' origins, on every answer.
  app.use(smartFrameAncestors(smart))
  app.use(session({
    ...sessionCookie(settings),
    store: failFastStore(store, { timeoutMs: 3000 }),
    secret: settings.sessionSecret,
    resave: false,
    saveUninitialized: false,
  }))
  app.get('/launch', smartLaunch(smart))
  // Opened outside the EHR: "Sign in with <EHR>" starts a standalone launch (the EHR's patient picker).
  app.get('/login', smartLogin(smart))
  app.get('/ehrs', (_req, res) => void res.json(settings.issuers.map((iss) => ({ iss, name: `the EHR at ${new URL(iss).host}` }))))
  app.get('/callback', smartCallback(smart))
  // A refused or failed launch comes back to the page, which says what happened (the browser is not an API client):
  // MISCONFIGURED there is a launch in the EHR's frame with a session cookie the browser does not send in frames.
  app.use(['/callback', '/login', '/launch'], (err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (!isSmartError(err) || res.headersSent) return next(err)
    res.redirect(303, `/?error=${encodeURIComponent(err.code)}`)
  })
  app.post('/logout', smartLogout(smart))
  app.use('/api', requireSmartContext(smart), clinicalApi())
  app.use(express.static(join(__dirname, 'public')))
  app.use(smartErrorHandler())
  return { app, close }
}
