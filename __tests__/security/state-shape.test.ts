// Regression (found by the callback-query property over PostgreSQL): a callback whose state carried a NUL
// byte (`state=<genuine state>%00`) was answered 503 STORAGE_UNAVAILABLE on PostgreSQL, whose text type
// cannot hold NUL, instead of 400 INVALID_STATE. A state that is not of the shape the library issues is now
// refused before it reaches any store; the genuine launch is untouched and still completes.
import type { Store } from 'express-session'
import request from 'supertest'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { pathOf, testApp, withCookies } from '../helpers/app'
import { storeKinds } from '../helpers/stores'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

describe.each(storeKinds())('S12 a callback state of a shape never issued, over %s', (_name, kind) => {
  let store: Store
  let close: () => Promise<void>
  beforeAll(async () => ({ store, close } = await kind.open()))
  afterAll(() => close())

  it.each([
    ['a NUL byte after the genuine state', (state: string) => `${state}%00`],
    ['a NUL byte alone', () => '%00'],
    ['a space inside', (state: string) => `${state.slice(0, 10)}%20${state.slice(10)}`],
    ['a brace (a Redis hash tag)', (state: string) => `{${state}}`],
    ['too short', (state: string) => state.slice(0, 8)],
    ['too long', (state: string) => state.repeat(4)],
  ])('%s: 400 INVALID_STATE, no code redeemed, and the genuine callback still completes', async (_case, alter) => {
    const app = testApp({ store, jsonErrors: true })
    const launch = new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).search
    const started = await request(app).get(`/launch${launch}`)
    expect(started.status).toBe(302)
    const cookie = withCookies(undefined, started)
    const back = await ehr.authorize(started.headers.location)
    const state = back.searchParams.get('state')!
    const grants = ehr.stats.codeGrants
    const forged = `${back.pathname}?code=${encodeURIComponent(back.searchParams.get('code')!)}&state=${alter(state)}`
    const refused = await request(app).get(forged).set('Cookie', cookie)
    expect({ status: refused.status, code: refused.body.code }).toEqual({ status: 400, code: 'INVALID_STATE' })
    expect(ehr.stats.codeGrants).toBe(grants)
    const completed = await request(app).get(pathOf(back)).set('Cookie', cookie)
    expect(completed.status).toBe(302)
    expect(ehr.stats.codeGrants).toBe(grants + 1)
  })
})
