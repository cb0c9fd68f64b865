import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type NextFunction, type Request, type Response } from 'express'
import { createAuthorizationServer } from './authorization-server'
import { repeatFramedAuthorizationFromEhr } from './ehr-frame'
import { checkAppUrl, createEhrHome } from './ehr-home'
import { faultInjector } from './faults'
import { createFhirRouter } from './fhir-server'
import { FhirStore } from './fhir-store'
import { INTERACTION_PATH } from './interaction'
import { DEFAULT_PRACTITIONER_ID, seedResources } from './seed-data'
import { capabilityStatement, smartConfiguration, type EhrProfile, type SmartEndpoints } from './smart-configuration'
import type { FhirLogEntry, LaunchContext, MockEhr, MockEhrClient, MockEhrFaults, MockEhrOptions, MockEhrStats } from './types'
import { createUserAgent } from './user-agent'
import { createUsers } from './users'

const DEFAULT_CLIENTS: MockEhrClient[] = [{ clientId: 'mock-app', type: 'public' }]
const DEFAULT_REFRESH_TOKEN_TTL = 14 * 24 * 3600

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject)
      resolve((server.address() as AddressInfo).port)
    })
  })
}

function positiveInteger(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value <= 0) throw new TypeError(`createMockEhr: ${name} must be a positive integer`)
  return value
}

/**
 * Starts a mock SMART on FHIR EHR on 127.0.0.1: an oidc-provider authorization server configured
 * for SMART App Launch 2.x, `.well-known/smart-configuration`, and a small seeded FHIR R4 server.
 * Login and consent are approved automatically as the configured practitioner (or, through
 * `authorize()`'s `user` option, as a patient or a related person). An EHR launch gets the context of
 * its launch id; a standalone launch (no `launch` parameter) asking for `launch/patient` shows the
 * practitioner a patient picker, and the token response then carries the chosen `patient`.
 *
 * Seed patients: `patient-1` (encounter `patient-1-encounter-1`), `patient-2`, `patient-3`, each with a
 * RelatedPerson `<patient>-related-person`. Its home page (`GET /`) lists the patients, each with a
 * "Launch" link to `appLaunchUrl` when that is set, and links to `appLoginUrl` (standalone) when that is;
 * each also "in the EHR frame": the app inside an `<iframe>` of the EHR's own page (a cross-site frame
 * for an app on `localhost`).
 *
 * @example
 * ```ts
 * const ehr = await createMockEhr()
 * const launch = ehr.launchUrl('http://127.0.0.1:3000/launch', { patient: 'patient-1' })
 * // ...let the app handle the launch and answer with the authorization URL, then:
 * const callback = await ehr.authorize(authorizationUrl)   // http://127.0.0.1:3000/callback?code=...&state=...&iss=...
 * // ...let the app handle the callback
 * expect(ehr.stats.codeGrants).toBe(1)
 * // standalone: the app sent no launch and asked for launch/patient; choose at the patient picker
 * const back = await ehr.authorize(standaloneAuthorizationUrl, { patient: 'patient-2' })
 * await ehr.close()
 * ```
 */
export async function createMockEhr(options: MockEhrOptions = {}): Promise<MockEhr> {
  const accessTokenTtlSeconds = positiveInteger('accessTokenTtlSeconds', options.accessTokenTtlSeconds, 3600)
  const refreshTokenTtlSeconds = positiveInteger('refreshTokenTtlSeconds', options.refreshTokenTtlSeconds, DEFAULT_REFRESH_TOKEN_TTL)
  const rotateRefreshTokens = options.rotateRefreshTokens ?? true
  if (typeof rotateRefreshTokens !== 'boolean') throw new TypeError('createMockEhr: rotateRefreshTokens must be true or false')
  const practitionerId = options.practitionerId ?? DEFAULT_PRACTITIONER_ID
  const clients = options.clients ?? DEFAULT_CLIENTS
  if (clients.length === 0) throw new TypeError('createMockEhr: clients must not be empty')
  const appLaunchUrl = checkAppUrl('appLaunchUrl', options.appLaunchUrl)
  const appLoginUrl = checkAppUrl('appLoginUrl', options.appLoginUrl)
  const profile = ehrProfile(options)

  const app = express()
  const server = createServer(app)
  const port = await listen(server, options.port ?? 0)
  const origin = `http://127.0.0.1:${port}`
  const fhirBase = `${origin}/fhir`
  const issuer = `${origin}/oauth`

  const stats: MockEhrStats = { discoveryFetches: 0, codeGrants: 0, refreshGrants: 0, fhirRequests: 0, revocations: 0 }
  const fhirLog: FhirLogEntry[] = []
  const faults: MockEhrFaults = {}
  const launches = new Map<string, LaunchContext>()
  const hanging = new Set<Response>()
  let current = faults
  const store = new FhirStore(seedResources(practitionerId))
  const users = createUsers({
    store,
    practitionerId,
    fhirUser: (reference) => (options.fhirUserRelative ? reference : `${fhirBase}/${reference}`),
  })

  const auth = await createAuthorizationServer({
    issuer,
    fhirBase,
    clients,
    accessTokenTtlSeconds,
    refreshTokenTtlSeconds,
    rotateRefreshTokens,
    profile,
    store,
    users,
    launches,
    stats,
    // Read through a getter: tests may replace the whole `faults` object.
    faults: { get authorize() { return current.authorize } },
  })
  const endpoints: SmartEndpoints = { issuer, fhirBase, ...auth.endpoints }
  const inject = (kind: 'discovery' | 'token' | 'fhir' | 'jwks') => faultInjector(() => current[kind], hanging)

  function launchUrl(appUrl: string, context: LaunchContext): string {
    if (typeof context?.patient !== 'string' || context.patient === '') {
      throw new TypeError('launchUrl: context.patient is required')
    }
    const launch = randomBytes(16).toString('base64url')
    launches.set(launch, structuredClone(context))
    const url = new URL(appUrl)
    url.searchParams.set('iss', fhirBase)
    url.searchParams.set('launch', launch)
    return url.href
  }

  app.disable('x-powered-by')
  app.get('/fhir/.well-known/smart-configuration', (_req, _res, next) => {
    stats.discoveryFetches++
    next()
  }, inject('discovery'), (_req, res) => {
    res.json(smartConfiguration(endpoints, profile))
  })
  app.get('/oauth/.well-known/openid-configuration', inject('discovery'))
  app.get('/oauth/jwks', inject('jwks'))
  app.get('/oauth/authorize', repeatFramedAuthorizationFromEhr)
  app.post('/oauth/token', inject('token'))
  app.get(`${INTERACTION_PATH}/:uid`, (req: Request, res: Response, next: NextFunction) => {
    auth.interaction.show(req, res).catch(next)
  })
  app.post(`${INTERACTION_PATH}/:uid`, express.urlencoded({ extended: false, limit: '4kb' }), (req: Request, res: Response, next: NextFunction) => {
    auth.interaction.answer(req, res).catch(next)
  })
  app.use('/fhir', createFhirRouter({
    base: fhirBase,
    store,
    stats,
    log: fhirLog,
    validateAccessToken: auth.validateAccessToken,
    capabilityStatement: () => capabilityStatement(endpoints),
    injectFault: inject('fhir'),
  }))
  app.use('/oauth', auth.handler)
  app.use(createEhrHome({ store, practitionerId, fhirBase, appLaunchUrl, appLoginUrl, launchUrl }))

  const authorize = createUserAgent(origin)

  return {
    iss: fhirBase,
    issuer,
    stats,
    fhirLog,
    get faults() { return current },
    set faults(value: MockEhrFaults) { current = value },
    launchUrl,
    authorize,
    expireAccessTokens: auth.expireAccessTokens,
    close(): Promise<void> {
      return new Promise((resolve, reject) => {
        for (const res of hanging) res.destroy()
        server.close((error) => (error ? reject(error) : resolve()))
        server.closeAllConnections()
      })
    },
  }
}

/** What differs between the EHRs the mock imitates, checked. */
function ehrProfile(options: MockEhrOptions): EhrProfile {
  const { scopeSyntax = 'both', refreshTokens = true, revocation = true } = options
  if (scopeSyntax !== 'v1' && scopeSyntax !== 'both') throw new TypeError('createMockEhr: scopeSyntax must be "v1" or "both"')
  if (typeof refreshTokens !== 'boolean') throw new TypeError('createMockEhr: refreshTokens must be true or false')
  if (typeof revocation !== 'boolean') throw new TypeError('createMockEhr: revocation must be true or false')
  return { scopeSyntax, refreshTokens, revocation }
}
