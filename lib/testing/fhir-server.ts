import { STATUS_CODES } from 'node:http'
import express, { type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express'
import type { TokenInfo } from './authorization-server'
import { FhirOperations, outcome, type FhirAccess, type FhirResult } from './fhir-operations'
import type { FhirStore } from './fhir-store'
import type { FhirResource } from './seed-data'
import type { FhirLogEntry, MockEhrStats } from './types'

export interface FhirServerOptions {
  base: string
  store: FhirStore
  stats: MockEhrStats
  log: FhirLogEntry[]
  validateAccessToken(token: string): Promise<TokenInfo | null>
  capabilityStatement(): FhirResource
  /** Runs after logging, so faulted requests show in `fhirLog` and `stats` too. */
  injectFault: RequestHandler
}

const FHIR_JSON = 'application/fhir+json'

function send(res: Response, result: FhirResult): void {
  if (result.location) res.location(result.location)
  const versionId = (result.body.meta as { versionId?: string } | undefined)?.versionId
  if (versionId && result.body.resourceType !== 'Bundle') res.set('ETag', `W/"${versionId}"`)
  res.status(result.status).type(FHIR_JSON).send(JSON.stringify(result.body))
}

function bearerToken(req: Request): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')
  return match ? match[1] : null
}

function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? ''}`.trim()
}

/** Runs a batch (entries independent) or a transaction (all or nothing) Bundle. */
function processBundle(body: unknown, operations: FhirOperations, store: FhirStore, access: FhirAccess, base: string): FhirResult {
  const bundle = body as { resourceType?: unknown; type?: unknown; entry?: unknown }
  if (bundle?.resourceType !== 'Bundle' || (bundle.type !== 'batch' && bundle.type !== 'transaction')) {
    return outcome(400, 'invalid', 'POST to the base needs a Bundle of type batch or transaction')
  }
  const entries = Array.isArray(bundle.entry) ? (bundle.entry as Array<{ request?: { method?: string; url?: string }; resource?: unknown }>) : []
  const transaction = bundle.type === 'transaction'
  const snapshot = transaction ? store.snapshot() : undefined
  const responses = []
  for (const [index, entry] of entries.entries()) {
    const method = entry.request?.method?.toUpperCase()
    const url = URL.parse(entry.request?.url ?? '', `${base}/`)
    const result = method && url?.href.startsWith(`${base}/`)
      ? operations.execute({ method, path: url.pathname.slice(new URL(base).pathname.length + 1), query: url.searchParams, body: entry.resource }, access)
      : outcome(400, 'invalid', `entry ${index} needs request.method and a request.url on this server`)
    if (transaction && result.status >= 400) {
      store.restore(snapshot!)
      const diagnostics = `transaction failed at entry ${index}: ${JSON.stringify(result.body)}`
      return outcome(result.status, 'processing', diagnostics)
    }
    const ok = result.status < 400
    responses.push({
      ...(ok && method !== 'DELETE' ? { resource: result.body } : {}),
      response: {
        status: statusLine(result.status),
        ...(result.location ? { location: result.location } : {}),
        ...(ok ? {} : { outcome: result.body }),
      },
    })
  }
  return {
    status: 200,
    body: { resourceType: 'Bundle', id: `${bundle.type}-response`, type: `${bundle.type}-response`, entry: responses },
  }
}

/** The FHIR R4 REST API under the FHIR base: bearer-token protected, patient-context aware. */
export function createFhirRouter(options: FhirServerOptions): Router {
  const { base, store, stats, log } = options
  const operations = new FhirOperations(store, base)
  const router = express.Router()

  router.use(function logFhirRequest(req: Request, res: Response, next: NextFunction) {
    stats.fhirRequests++
    const entry = { method: req.method, url: `${base}${req.url}`, accessToken: bearerToken(req), status: 0 }
    res.on('close', () => {
      entry.status = res.headersSent ? res.statusCode : 0
      log.push(entry)
    })
    next()
  })

  router.use(options.injectFault)

  router.get('/metadata', function capabilityStatement(_req: Request, res: Response) {
    send(res, { status: 200, body: options.capabilityStatement() })
  })

  router.use(async function requireAccessToken(req: Request, res: Response, next: NextFunction) {
    const token = bearerToken(req)
    const info = token === null ? null : await options.validateAccessToken(token)
    if (!info) {
      res.set('WWW-Authenticate', token === null ? 'Bearer realm="fhir"' : 'Bearer realm="fhir", error="invalid_token"')
      send(res, outcome(401, 'login', token === null ? 'Bearer access token required' : 'Access token invalid or expired'))
      return
    }
    res.locals.access = { scope: info.scope, patient: info.patient } satisfies FhirAccess
    next()
  })

  router.use(express.json({ type: ['application/json', FHIR_JSON], limit: '5mb' }))

  router.post('/', function batch(req: Request, res: Response) {
    send(res, processBundle(req.body, operations, store, res.locals.access as FhirAccess, base))
  })

  router.all('/{*path}', function fhirInteraction(req: Request, res: Response) {
    const url = new URL(req.url, `${base}/`)
    const path = url.pathname.replace(/^\/+/, '')
    send(res, operations.execute({ method: req.method, path, query: url.searchParams, body: req.body }, res.locals.access as FhirAccess))
  })

  router.use(function fhirError(error: { status?: number; message?: string }, _req: Request, res: Response, next: NextFunction) {
    if (res.headersSent) return next(error)
    const status = error.status && error.status >= 400 && error.status < 500 ? error.status : 500
    send(res, outcome(status, status === 500 ? 'exception' : 'invalid', error.message ?? 'error'))
  })

  return router
}
