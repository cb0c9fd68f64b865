import express, { type Express, type Request } from 'express'
import session from 'express-session'
import * as client from 'openid-client'
import request from 'supertest'
import { createMockEhr, loginAs, type MockEhr } from '../../lib/testing'
import { STANDALONE_SCOPE, configFor } from './flow'

/**
 * loginAs() is tested against a tiny app that does the standalone launch by hand with openid-client,
 * so that these tests are about loginAs and the mock EHR, not about the library's smartLogin().
 */
const APP_ORIGIN = 'http://app.test'

interface Pending { verifier: string; state: string; nonce: string }
interface Login { patient: string | null; fhirUser: unknown }
const bag = (req: Request) => req.session as unknown as { pending?: Pending; login?: Login }

interface AppOptions {
  scope?: string
  loginPath?: string
  landing?: (patient: string | null) => string
  /** Every login request's iss query parameter (undefined when absent). */
  issSeen?: unknown[]
}

function standaloneApp(ehr: MockEhr, options: AppOptions = {}): Express {
  const app = express()
  app.use(session({ secret: 'login-as-test', resave: false, saveUninitialized: false }))
  const configuration = configFor(ehr)

  app.get(options.loginPath ?? '/login', async (req, res, next) => {
    try {
      options.issSeen?.push(req.query.iss)
      // Without iss: the one EHR this app knows.
      if (req.query.iss !== undefined && req.query.iss !== ehr.iss) return void res.status(403).send('unknown issuer')
      const pending = { verifier: client.randomPKCECodeVerifier(), state: client.randomState(), nonce: client.randomNonce() }
      bag(req).pending = pending
      const url = client.buildAuthorizationUrl(await configuration, {
        redirect_uri: `${APP_ORIGIN}/callback`,
        scope: options.scope ?? STANDALONE_SCOPE,
        code_challenge: await client.calculatePKCECodeChallenge(pending.verifier),
        code_challenge_method: 'S256',
        state: pending.state,
        nonce: pending.nonce,
        aud: ehr.iss,
      })
      res.redirect(url.href)
    } catch (error) {
      next(error)
    }
  })

  app.get('/callback', async (req, res, next) => {
    try {
      const { pending } = bag(req)
      if (!pending) return void res.status(400).send('no login pending in this session')
      const tokens = await client.authorizationCodeGrant(await configuration, new URL(req.originalUrl, APP_ORIGIN), {
        pkceCodeVerifier: pending.verifier,
        expectedState: pending.state,
        expectedNonce: pending.nonce,
      })
      const patient = typeof tokens.patient === 'string' ? tokens.patient : null
      bag(req).pending = undefined
      bag(req).login = { patient, fhirUser: tokens.claims()?.fhirUser }
      res.redirect(options.landing ? options.landing(patient) : '/')
    } catch (error) {
      next(error)
    }
  })

  app.get('/me', (req, res) => {
    const { login } = bag(req)
    if (login) res.json(login)
    else res.status(401).end()
  })
  return app
}

let ehr: MockEhr
beforeAll(async () => {
  ehr = await createMockEhr()
})
afterAll(() => ehr.close())

test('picks the patient at the EHR\'s picker; the agent is then logged in with that patient', async () => {
  const agent = request.agent(standaloneApp(ehr))
  const codeGrants = ehr.stats.codeGrants
  await expect(loginAs(agent, ehr, { patient: 'patient-2' })).resolves.toEqual({ patient: 'patient-2' })
  expect(ehr.stats.codeGrants).toBe(codeGrants + 1)
  const me = await agent.get('/me').expect(200)
  expect(me.body).toEqual({ patient: 'patient-2', fhirUser: `${ehr.iss}/Practitioner/smart-practitioner-1` })
  await request(standaloneApp(ehr)).get('/me').expect(401)
})

test('returns the landing URL\'s ?patient= when the app sets one', async () => {
  const agent = request.agent(standaloneApp(ehr, { landing: (patient) => `/?patient=launch-of-${patient}` }))
  await expect(loginAs(agent, ehr, { patient: 'patient-3' })).resolves.toEqual({ patient: 'launch-of-patient-3' })
})

test('a login without a patient (user-level scopes): no picker, patient null', async () => {
  const app = standaloneApp(ehr, { scope: 'openid fhirUser user/*.rs' })
  const agent = request.agent(app)
  await expect(loginAs(agent, ehr)).resolves.toEqual({ patient: null })
  expect((await agent.get('/me').expect(200)).body).toMatchObject({ patient: null })
  await expect(loginAs(request.agent(app), ehr, { patient: null })).resolves.toEqual({ patient: null })
})

test('a patient logs in for themselves: no picker, fhirUser the Patient', async () => {
  const agent = request.agent(standaloneApp(ehr))
  await expect(loginAs(agent, ehr, { user: 'patient', patient: 'patient-3' })).resolves.toEqual({ patient: 'patient-3' })
  expect((await agent.get('/me').expect(200)).body).toEqual({ patient: 'patient-3', fhirUser: `${ehr.iss}/Patient/patient-3` })
})

test('loginPath with its own query, and an app that needs no iss', async () => {
  const issSeen: unknown[] = []
  const agent = request.agent(standaloneApp(ehr, { loginPath: '/signin', issSeen }))
  await expect(loginAs(agent, ehr, { patient: 'patient-1' }, { loginPath: '/signin?tenant=a' })).resolves.toEqual({ patient: 'patient-1' })
  const quiet = request.agent(standaloneApp(ehr, { issSeen }))
  await expect(loginAs(quiet, ehr, { patient: 'patient-1' }, { sendIss: false })).resolves.toEqual({ patient: 'patient-1' })
  expect(issSeen).toEqual([ehr.iss, undefined])
  const other = await createMockEhr()
  try {
    await expect(loginAs(request.agent(standaloneApp(ehr)), other, { patient: 'patient-1' })).rejects.toThrow(/loginAs: GET \/login answered 403 instead of a redirect: unknown issuer/)
  } finally {
    await other.close()
  }
})

test('fails clearly: no patient for an app asking for launch/patient, a login route that does not redirect', async () => {
  const app = standaloneApp(ehr)
  await expect(loginAs(request.agent(app), ehr)).rejects.toThrow(/a patient must be picked/)
  await expect(loginAs(request.agent(app), ehr, { patient: 'patient-1' }, { loginPath: '/nope' })).rejects.toThrow(/loginAs: GET \/nope answered 404 instead of a redirect/)
})
