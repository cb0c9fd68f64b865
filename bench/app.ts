/**
 * The app under test, run as its own process by bench/run.ts. One Express app, one express-session (over
 * MemoryStore, connect-redis or connect-pg-simple, behind failFastStore), and every route the comparisons need:
 *
 *   /launch, /callback     smartLaunch, smartCallback (this library)
 *   /protected             requireSmartContext, then res.json({ patient })
 *   /fhir                  requireSmartContext, then one FHIR read, req.smart.request('Patient/<id>') (the FHIR-read
 *                          comparison; the refresh-on-401 herd)
 *   /fhir-fetch            baseline: the same GET with fetch() and a fixed token (set over IPC), no requireSmartContext
 *   /session-read          baseline: reads req.session only
 *   /session-write         baseline: writes one session value
 *   /fc/launch, /fc/callback, /fc/protected   the same three steps through fhirclient 2.6.3's Node adapter
 *
 * Settings arrive as JSON in BENCH_APP; the orchestrator drives the process over IPC (see ipc.ts).
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type NextFunction, type Request, type Response } from 'express'
import session, { MemoryStore, type Store } from 'express-session'
import { RedisStore } from 'connect-redis'
import connectPgSimple from 'connect-pg-simple'
import { Pool } from 'pg'
import { createClient, createCluster } from 'redis'
import fhirclient = require('fhirclient/lib/entry/node')
import type * as Library from 'express-smart-on-fhir'
import { serveCommands } from './ipc'
import type { AppErrors, AppHello, AppSettings, CpuReading, HeapReport } from './types'

declare module 'express-session' {
  interface SessionData {
    /** The session-write baseline's one value. */
    benchValue?: number
  }
}

const SCOPE = 'openid fhirUser launch launch/patient patient/*.rs offline_access'
const CLIENT_ID = 'mock-app'
/** The patient every bench launch is for. */
const FHIR_PATIENT = 'patient-1'

function readSettings(): AppSettings {
  if (!process.env.BENCH_APP) throw new Error('bench/app.ts needs BENCH_APP (it is started by bench/run.ts)')
  return JSON.parse(process.env.BENCH_APP) as AppSettings
}
const settings = readSettings()
// The library as run.ts snapshotted it after its build (a rebuild of dist/ during the run changes nothing here).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { failFastStore, requireSmartContext, smartCallback, smartErrorHandler, smartLaunch } = require(settings.lib ?? 'express-smart-on-fhir') as typeof Library
type SmartMiddlewareOptions = Library.SmartMiddlewareOptions

/** The FHIR-read baseline's bearer token, set by the orchestrator (a token of a session launched through the library). */
let fixedToken: string | null = null

/**
 * Calls to the session store and to its backend, counted so that a comparison can say how many round trips each
 * route makes: express-session Store methods (`store.get`, …, whoever calls them: express-session or the library)
 * and the backend's commands (`redis.get`, `redis.set`, … on the node-redis client; `pg.query` on the pool).
 */
const calls: Record<string, number> = {}

function counted<T extends object>(target: T, label: string, methods: string[]): T {
  for (const method of methods) {
    const original = (target as Record<string, unknown>)[method]
    if (typeof original !== 'function') continue
    const key = `${label}.${method}`
    ;(target as Record<string, unknown>)[method] = function (this: unknown, ...args: unknown[]) {
      calls[key] = (calls[key] ?? 0) + 1
      return (original as (...a: unknown[]) => unknown).apply(this, args)
    }
  }
  return target
}

const STORE_METHODS = ['get', 'set', 'touch', 'destroy']
const REDIS_METHODS = ['get', 'set', 'expire', 'del', 'unlink', 'mGet', 'eval', 'evalSha']

let clockOffsetMs = 0
const errorsSeen: string[] = []
let errorCount = 0

async function sessionStore(): Promise<{ store: Store; memory: MemoryStore | null }> {
  if (settings.store === 'memory') {
    const memory = new MemoryStore()
    return { store: failFastStore(counted(memory, 'store', STORE_METHODS)), memory }
  }
  if (settings.store === 'postgres') {
    // pg's default pool size (10) matches autocannon's 10 connections; the herd's requests queue for a client.
    const pool = new Pool({ connectionString: settings.databaseUrl, connectionTimeoutMillis: 5000 })
    pool.on('error', (err: Error) => console.error(`bench app: postgres: ${err.message}`))
    const PGStore = connectPgSimple(session)
    counted(pool, 'pg', ['query'])
    return { store: failFastStore(counted(new PGStore({ pool, tableName: settings.pgTable }), 'store', STORE_METHODS)), memory: null }
  }
  const prefix = settings.redisPrefix ?? 'bench:'
  if (settings.store === 'cluster') {
    const cluster = createCluster({ rootNodes: settings.clusterNodes!.split(',').map((node) => ({ url: `redis://${node}` })) })
    cluster.on('error', (err: Error) => console.error(`bench app: redis cluster: ${err.message}`))
    await cluster.connect()
    counted(cluster, 'redis', REDIS_METHODS)
    return { store: failFastStore(counted(new RedisStore({ client: cluster, prefix }), 'store', STORE_METHODS)), memory: null }
  }
  const client = createClient({ url: settings.redisUrl })
  client.on('error', (err: Error) => console.error(`bench app: redis: ${err.message}`))
  await client.connect()
  counted(client, 'redis', REDIS_METHODS)
  return { store: failFastStore(counted(new RedisStore({ client, prefix }), 'store', STORE_METHODS)), memory: null }
}

function smartOptions(base: string): SmartMiddlewareOptions {
  return {
    config: {
      clientId: CLIENT_ID,
      scope: SCOPE,
      callbackUrl: `${base}/callback`,
      redirectUrl: '/',
      knownFhirServers: [{ issuer: settings.iss, type: 'public' }],
    },
    options: {
      allowNonHttpsLaunch: true,
      ...(settings.encryptionKey ? { encryptionKey: settings.encryptionKey } : {}),
      ...(settings.adjustableClock ? { now: () => Date.now() + clockOffsetMs } : {}),
    },
  }
}

function fhirclientRoutes(app: express.Express, base: string): void {
  app.get('/fc/launch', async (req, res, next) => {
    try {
      const { iss, launch } = req.query as Record<string, string>
      await fhirclient(req, res).authorize({ iss, launch, clientId: CLIENT_ID, redirectUri: `${base}/fc/callback`, scope: SCOPE })
    } catch (err) {
      next(err)
    }
  })
  app.get('/fc/callback', async (req, res, next) => {
    try {
      const client = await fhirclient(req, res).ready()
      res.json({ patient: client.patient.id })
    } catch (err) {
      next(err)
    }
  })
  app.get('/fc/protected', async (req, res, next) => {
    try {
      const client = await fhirclient(req, res).ready()
      res.json({ patient: client.patient.id })
    } catch (err) {
      next(err)
    }
  })
}

function countErrors(err: unknown, _req: Request, res: Response, next: NextFunction): void {
  errorCount++
  if (errorsSeen.length < 5) errorsSeen.push(err instanceof Error ? (err.stack ?? err.message) : String(err))
  if (res.headersSent) return next(err)
  res.status(500).json({ error: 'bench app: unexpected error' })
}

async function main(): Promise<void> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const base = `http://127.0.0.1:${port}`
  const { store, memory } = await sessionStore()
  const smart = smartOptions(base)

  const app = express()
  app.disable('x-powered-by')
  app.use(session({ store, secret: settings.sessionSecret, resave: false, saveUninitialized: false }))
  app.get('/launch', smartLaunch(smart))
  app.get('/callback', smartCallback(smart))
  app.get('/protected', requireSmartContext(smart), (req, res) => void res.json({ patient: req.smart.patient?.id }))
  app.get('/fhir', requireSmartContext(smart), async (req, res, next) => {
    try {
      const patient = await req.smart.request<{ id?: string }>(`Patient/${req.smart.patient?.id}`)
      res.json({ patient: patient.id })
    } catch (err) {
      next(err)
    }
  })
  // The same GET as /fhir's req.smart.request(), through the same fetch: the library is given no `fetch` option, so
  // it calls globalThis.fetch, whose one global undici dispatcher (keep-alive pool per origin) both routes share.
  app.get('/fhir-fetch', async (_req, res, next) => {
    try {
      if (fixedToken === null) throw new Error('/fhir-fetch before the orchestrator set its token')
      const answer = await fetch(`${settings.iss}/Patient/${FHIR_PATIENT}`, { headers: { accept: 'application/fhir+json', authorization: `Bearer ${fixedToken}` } })
      if (!answer.ok) throw new Error(`/fhir-fetch: the FHIR server answered ${answer.status}`)
      const patient = (await answer.json()) as { id?: string }
      res.json({ patient: patient.id })
    } catch (err) {
      next(err)
    }
  })
  app.get('/session-read', (req, res) => void res.json({ since: req.session.smartOnFhir?.since ?? null }))
  app.get('/session-write', (req, res) => {
    req.session.benchValue = Date.now()
    res.json({ value: req.session.benchValue })
  })
  fhirclientRoutes(app, base)
  app.use(smartErrorHandler())
  app.use(countErrors)
  server.on('request', app)

  serveCommands({
    /** Heap after full collections (needs --expose-gc), and what the MemoryStore holds. */
    heap: (): HeapReport => {
      const gc = (globalThis as { gc?: () => void }).gc
      if (!gc) throw new Error('heap needs node --expose-gc')
      for (let i = 0; i < 4; i++) gc()
      const heapUsed = process.memoryUsage().heapUsed
      const stored = memory ? Object.values((memory as unknown as { sessions: Record<string, string> }).sessions) : null
      if (!stored) return { heapUsed, storeEntries: null }
      return { heapUsed, storeEntries: stored.length, storeChars: stored.reduce((sum, json) => sum + json.length, 0) }
    },
    /** CPU time (user + system) this process has used, and the monotonic clock, in microseconds. */
    cpu: (): CpuReading => {
      const { user, system } = process.cpuUsage()
      return { cpuUs: user + system, monoUs: Number(process.hrtime.bigint() / 1000n), calls: { ...calls } }
    },
    fixedToken: ({ token }: { token: string }) => void (fixedToken = token),
    advanceClock: ({ seconds }: { seconds: number }) => void (clockOffsetMs += seconds * 1000),
    errors: (): AppErrors => ({ count: errorCount, first: errorsSeen }),
  }, { port, pid: process.pid } satisfies AppHello)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
