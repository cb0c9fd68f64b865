// Issue 21 item 1 (SECURITY S39): one app, many EHRs, each with its own registration. knownFhirServers[].clientId
// and .scope override config.clientId / config.scope for that EHR in the authorization request, the token
// request and client authentication, the id_token's aud/azp, refresh and revocation.
import { MemoryStore } from 'express-session'
import request from 'supertest'
import type { KnownFhirServer } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { pathOf, testApp, withCookies } from '../helpers/app'

let ehrA: MockEhr
let ehrB: MockEhr
beforeAll(async () => {
  ;[ehrA, ehrB] = await Promise.all([
    createMockEhr({ clients: [{ clientId: 'app-at-a', type: 'public' }] }),
    createMockEhr({ clients: [{ clientId: 'app-at-b', type: 'confidential-symmetric', method: 'client_secret_post', clientSecret: 'b-secret-0123456789' }] }),
  ])
})
afterAll(() => Promise.all([ehrA.close(), ehrB.close()]))

function servers(): KnownFhirServer[] {
  return [
    { issuer: ehrA.iss, type: 'public', clientId: 'app-at-a', scope: 'openid fhirUser launch launch/patient patient/*.read offline_access' },
    { issuer: ehrB.iss, type: 'confidential-symmetric', method: 'client_secret_post', clientSecret: 'b-secret-0123456789', clientId: 'app-at-b' },
  ]
}

/** One browser: launches through the app, keeping every cookie. */
function browser(app: ReturnType<typeof testApp>) {
  let cookie = ''
  return {
    async launch(ehr: MockEhr, patient: string) {
      const started = await request(app).get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient })).search}`).set('Cookie', cookie).expect(302)
      cookie = withCookies(cookie, started)
      const authorization = new URL(started.headers.location)
      const back = await request(app).get(pathOf(await ehr.authorize(started.headers.location))).set('Cookie', cookie)
      expect(back.status).toBe(302)
      cookie = withCookies(cookie, back)
      return { authorization, selector: new URL(back.headers.location, 'http://app.test').searchParams.get('patient')! }
    },
    get: (path: string, selector: string) => request(app).get(path).set('Cookie', cookie).set('X-Active-Patient', selector),
    post: (path: string, selector: string) => request(app).post(path).set('Cookie', cookie).set('X-Active-Patient', selector),
  }
}

describe('S39 per-EHR registration', () => {
  it('S39 two EHRs registering the app under different client ids and scopes, launched into one browser session', async () => {
    const app = testApp({
      store: new MemoryStore(), jsonErrors: true, options: { enableMultiLaunch: true },
      config: { allowAnyIssuer: undefined, clientId: 'the-default-id', knownFhirServers: servers() } as never,
    })
    const tabs = browser(app)
    const a = await tabs.launch(ehrA, 'patient-1')
    const b = await tabs.launch(ehrB, 'patient-1')
    // The authorization requests carry each EHR's client id and scope (B has none of its own: config.scope).
    expect(a.authorization.searchParams.get('client_id')).toBe('app-at-a')
    expect(a.authorization.searchParams.get('scope')).toBe('openid fhirUser launch launch/patient patient/*.read offline_access')
    expect(b.authorization.searchParams.get('client_id')).toBe('app-at-b')
    expect(b.authorization.searchParams.get('scope')).toBe('openid fhirUser launch launch/patient patient/*.rs offline_access')
    // Token request, client authentication and the id_token (aud = each EHR's client id) passed: both launches serve.
    const contextA = await tabs.get('/api/context', a.selector).expect(200)
    const contextB = await tabs.get('/api/context', b.selector).expect(200)
    expect(contextA.body).toMatchObject({ fhirServer: ehrA.iss, patient: { id: 'patient-1' }, idTokenClaims: { aud: 'app-at-a' } })
    expect(contextB.body).toMatchObject({ fhirServer: ehrB.iss, patient: { id: 'patient-1' }, idTokenClaims: { aud: 'app-at-b' } })
    // Refresh with each registration.
    const grants = [ehrA.stats.refreshGrants, ehrB.stats.refreshGrants]
    ehrA.expireAccessTokens()
    ehrB.expireAccessTokens()
    await tabs.get('/api/patient', a.selector).expect(200)
    await tabs.get('/api/patient', b.selector).expect(200)
    expect([ehrA.stats.refreshGrants - grants[0], ehrB.stats.refreshGrants - grants[1]]).toEqual([1, 1])
    // Revocation with each registration (the EHR counts only revocations it accepted from a known client).
    const revoked = [ehrA.stats.revocations, ehrB.stats.revocations]
    await tabs.post('/logout', a.selector).expect(204)
    await tabs.post('/logout', b.selector).expect(204)
    expect(ehrA.stats.revocations - revoked[0]).toBeGreaterThanOrEqual(1)
    expect(ehrB.stats.revocations - revoked[1]).toBeGreaterThanOrEqual(1)
  })

  it('S39 without the per-EHR client id, the EHR refuses the app it does not know: the registration really is per EHR', async () => {
    const app = testApp({
      store: new MemoryStore(), jsonErrors: true,
      config: { allowAnyIssuer: undefined, clientId: 'app-at-b', knownFhirServers: [{ issuer: ehrA.iss, type: 'public' }] } as never,
    })
    const started = await request(app).get(`/launch${new URL(ehrA.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`).expect(302)
    await expect(ehrA.authorize(started.headers.location)).rejects.toThrow()
  })

  it('S39 the id_token\'s aud is checked against this EHR\'s registration, not config.clientId', async () => {
    // config.clientId is a client the EHR knows too: only the per-EHR registration ('other') may be used and expected as aud.
    const ehr = await createMockEhr({ clients: [{ clientId: 'app-at-a', type: 'public' }, { clientId: 'other', type: 'public' }] })
    try {
      const app = testApp({
        store: new MemoryStore(), jsonErrors: true,
        config: { allowAnyIssuer: undefined, clientId: 'app-at-a', knownFhirServers: [{ issuer: ehr.iss, type: 'public', clientId: 'other' }] } as never,
      })
      const started = await request(app).get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search}`).expect(302)
      expect(new URL(started.headers.location).searchParams.get('client_id')).toBe('other')
      const back = await request(app).get(pathOf(await ehr.authorize(started.headers.location))).set('Cookie', withCookies(undefined, started))
      expect(back.status).toBe(302)
      const context = await request(app).get('/api/context').set('Cookie', withCookies(withCookies(undefined, started), back)).expect(200)
      expect(context.body.idTokenClaims.aud).toBe('other')
    } finally {
      await ehr.close()
    }
  })

  it.each([
    ['clientId', { clientId: '' }, /knownFhirServers\[0\]\.clientId must be a non-empty string/],
    ['scope', { scope: 42 }, /knownFhirServers\[0\]\.scope must be a non-empty string/],
  ])('a per-EHR %s that is not a non-empty string is a TypeError naming the field', (_field, extra, message) => {
    expect(() => testApp({ store: new MemoryStore(), config: { allowAnyIssuer: undefined, knownFhirServers: [{ issuer: 'https://ehr.example.org/fhir', type: 'public', ...extra }] } as never }))
      .toThrow(message)
  })
})
