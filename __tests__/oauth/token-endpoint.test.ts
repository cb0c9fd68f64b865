import { MemoryStore } from 'express-session'
import { SmartClient, expressSessionStorage } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { completeLaunch, devOptions, openConfig, rewritingSmartConfiguration } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
let n = 0

/** A fetch whose discovery answer spells the token endpoint differently: same URL, another string. */
function respelledTokenEndpoint(respell: (tokenEndpoint: string) => string): typeof fetch {
  return rewritingSmartConfiguration((doc) => ({ ...doc, token_endpoint: respell(String(doc.token_endpoint)) }))
}

describe('token endpoint spelt in a non-canonical form', () => {
  it.each([
    ['upper-case scheme', (url: string) => url.replace(/^http:/, 'HTTP:')],
    ['a /./ segment', (url: string) => url.replace('/oauth/token', '/oauth/./token')],
    ['a /x/../ segment', (url: string) => url.replace('/oauth/token', '/oauth/x/../token')],
  ])('regression: a launch with an id_token completes when the token_endpoint has %s', async (_name, respell) => {
    const client = new SmartClient(`te-${++n}`, storage, openConfig(), { ...devOptions, fetch: respelledTokenEndpoint(respell) })
    await completeLaunch(ehr, { patient: 'patient-1' }, client)
    const fhir = await client.ready()
    expect(fhir.idTokenClaims).toMatchObject({ iss: ehr.issuer, aud: 'mock-app' })
    expect(fhir.user).toMatchObject({ resourceType: 'Practitioner' })
  })
})
