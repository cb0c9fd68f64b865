// The test app (testApp) in a process of its own, over connect-redis or connect-pg-simple: what several app
// instances on one Redis or PostgreSQL really are, so that a test can SIGKILL one mid-request. processes.ts starts it as
// `node -r esbuild-register app-process.ts` and reads `{"port":…}` from its first stdout line.
//
//   REDIS_URL            the Redis (required unless REDIS_CLUSTER_NODES or DATABASE_URL)
//   REDIS_CLUSTER_NODES  `host:port,…` of a Redis Cluster to use instead (node-redis createCluster)
//   KEY_PREFIX           connect-redis key prefix (required over Redis): one per test, so its keys can be found and removed
//   DATABASE_URL         PostgreSQL to use instead of Redis (connect-pg-simple over a `pg` pool), when neither
//                        REDIS_URL nor REDIS_CLUSTER_NODES is set
//   PG_TABLE             connect-pg-simple's session table (required with DATABASE_URL): one per test, created by it
//   ISS                  the mock EHR's FHIR base, the only issuer allowed to launch (required); or several,
//                        comma-separated: every one of them is in knownFhirServers (selectors are then
//                        `<patient id>_<EHR tag>`, not bare patient ids)
//   HTTP_TIMEOUT_MS      options.httpTimeoutMs (default: the library's)
//   ENABLE_MULTI_LAUNCH  '1': options.enableMultiLaunch
//   REFRESH_LEEWAY_SECONDS  options.refreshLeewaySeconds (default: the library's)
//
// GET /__process answers what the process did and holds: its outbound refresh grants and FHIR requests, and
// process.memoryUsage() after a full GC when started with --expose-gc. A request with an `X-Test-Label`
// header has the refresh grants it causes listed under that label (the soak's per-launch count), and
// `serverErrors` counts the 5xx SmartErrors it answered by their message and cause, which the JSON answer
// hides (smartErrorHandler's generic 502/503 text).
import { AsyncLocalStorage } from 'node:async_hooks'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import connectPgSimple from 'connect-pg-simple'
import { RedisStore } from 'connect-redis'
import type { NextFunction, Request as ExpressRequest, Response } from 'express'
import session, { type Store } from 'express-session'
import { Pool } from 'pg'
import { createClient, createCluster } from 'redis'
import { failFastStore, isSmartError, smartErrorHandler, type SmartClientOptions } from '../../lib'
import { testApp } from './app'

export interface ProcessReport {
  pid: number
  /** Refresh grants this process sent, how many the EHR refused (4xx), and when, per `X-Test-Label`. */
  refreshGrants: { sent: number; refused: number; byLabel: Record<string, Array<{ at: number; status: number }>> }
  fhirRequests: number
  /** 5xx SmartErrors answered, by `<status> <code>: <message>[ (cause: <message>)]`. */
  serverErrors: Record<string, number>
  memory: NodeJS.MemoryUsage
  /** Whether `memory` was measured right after a full GC. */
  gc: boolean
}

function required(name: string): string {
  const value = process.env[name]
  if (!value) throw new Error(`app-process: ${name} is required`)
  return value
}

function optionalNumber(name: string): number | undefined {
  const value = process.env[name]
  if (value === undefined || value === '') return undefined
  const number = Number(value)
  if (!Number.isFinite(number)) throw new Error(`app-process: ${name} must be a number, got ${value}`)
  return number
}

/** The shared session store the environment names (a Redis Cluster, a Redis, or PostgreSQL), and how to let it go. */
async function sharedStore(): Promise<{ store: Store; close: () => Promise<unknown> }> {
  const clusterNodes = process.env.REDIS_CLUSTER_NODES
  if (!clusterNodes && !process.env.REDIS_URL && process.env.DATABASE_URL) {
    const pool = new Pool({ connectionString: process.env.DATABASE_URL, connectionTimeoutMillis: 5000 })
    pool.on('error', (err: Error) => console.error(`[app-process ${process.pid}] postgres: ${err.message}`))
    const PGStore = connectPgSimple(session)
    return { store: new PGStore({ pool, tableName: required('PG_TABLE') }), close: () => pool.end() }
  }
  const redis = clusterNodes
    ? createCluster({ rootNodes: clusterNodes.split(',').map((node) => ({ url: `redis://${node.trim()}` })), defaults: { socket: { connectTimeout: 5000 } } })
    : createClient({ url: required('REDIS_URL'), socket: { connectTimeout: 5000 } })
  redis.on('error', (err: Error) => console.error(`[app-process ${process.pid}] redis: ${err.message}`))
  await redis.connect()
  return { store: new RedisStore({ client: redis, prefix: required('KEY_PREFIX') }), close: () => redis.close() }
}

async function main(): Promise<void> {
  const issuers = required('ISS').split(',').map((iss) => iss.trim()).filter(Boolean)
  const shared = await sharedStore()
  const store = failFastStore(shared.store)

  const counts = { refreshSent: 0, refreshRefused: 0, fhirRequests: 0 }
  const byLabel: ProcessReport['refreshGrants']['byLabel'] = {}
  const labels = new AsyncLocalStorage<string>()
  // The real network, counted: what this process asked of the EHR (its counts die with it).
  const countingFetch: typeof fetch = async (input, init) => {
    const url = input instanceof Request ? input.url : String(input)
    const refresh = String(init?.body ?? '').includes('grant_type=refresh_token')
    if (refresh) counts.refreshSent++
    if (issuers.some((iss) => url.startsWith(`${iss}/`))) counts.fhirRequests++
    const at = Date.now()
    const response = await fetch(input, init)
    if (refresh && response.status >= 400 && response.status < 500) counts.refreshRefused++
    const label = labels.getStore()
    if (refresh && label !== undefined) (byLabel[label] ??= []).push({ at, status: response.status })
    return response
  }
  const options: SmartClientOptions = {
    fetch: countingFetch,
    enableMultiLaunch: process.env.ENABLE_MULTI_LAUNCH === '1',
    ...(optionalNumber('HTTP_TIMEOUT_MS') !== undefined ? { httpTimeoutMs: optionalNumber('HTTP_TIMEOUT_MS') } : {}),
    ...(optionalNumber('REFRESH_LEEWAY_SECONDS') !== undefined ? { refreshLeewaySeconds: optionalNumber('REFRESH_LEEWAY_SECONDS') } : {}),
  }
  const serverErrors: Record<string, number> = {}
  const app = testApp({ store, options, config: { allowAnyIssuer: undefined, knownFhirServers: issuers.map((issuer) => ({ issuer, type: 'public' as const })) } })
  app.get('/__process', (_req, res) => {
    const gc = (globalThis as { gc?: () => void }).gc
    gc?.()
    const report: ProcessReport = {
      pid: process.pid,
      refreshGrants: { sent: counts.refreshSent, refused: counts.refreshRefused, byLabel },
      fhirRequests: counts.fhirRequests,
      serverErrors,
      memory: process.memoryUsage(),
      gc: gc !== undefined,
    }
    res.json(report)
  })
  // testApp's jsonErrors, with the 5xx counted first: their messages do not reach the client.
  app.use((err: unknown, _req: ExpressRequest, _res: Response, next: NextFunction) => {
    if (isSmartError(err) && err.status >= 500) {
      const cause = err.cause instanceof Error ? ` (cause: ${err.cause.message})` : ''
      const key = `${err.status} ${err.code}: ${err.message}${cause}`
      serverErrors[key] = (serverErrors[key] ?? 0) + 1
    }
    next(err)
  })
  app.use(smartErrorHandler())
  // What smartErrorHandler passes on is a bug (a 500): say it on stderr, which the harness shows on failure.
  app.use((err: unknown, req: ExpressRequest, _res: Response, next: NextFunction) => {
    console.error(`[app-process ${process.pid}] ${req.method} ${req.url}:`, err)
    next(err)
  })

  const server = createServer((req, res) => {
    const label = req.headers['x-test-label']
    if (typeof label === 'string') labels.run(label, () => app(req, res))
    else app(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`)
  process.once('SIGTERM', () => {
    server.closeAllConnections()
    server.close()
    void shared.close().finally(() => process.exit(0))
  })
}

main().catch((err: unknown) => {
  console.error('[app-process] failed to start:', err)
  process.exit(1)
})
