// Issue 21 item 2: req.smart tells the app what the granted scope lets it do, in either SMART scope syntax.
import { MemoryStore } from 'express-session'
import { expressSessionStorage, SmartClient, type FhirInteraction } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { authorize, completeLaunch, devOptions, ehrLaunch, openConfig, testClock } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

async function grantedClient(scope: string) {
  const client = new SmartClient(`sid-${Math.random()}`, expressSessionStorage(new MemoryStore()), openConfig({ scope }), devOptions)
  await completeLaunch(ehr, { patient: 'patient-1' }, client)
  return client.ready()
}

const ALL: FhirInteraction[] = ['create', 'read', 'update', 'delete', 'search']

describe('ReadyClient.permits()', () => {
  it.each([
    ['v2 patient/*.rs', 'launch patient/*.rs', { Observation: ['read', 'search'], Patient: ['read', 'search'] }],
    ['v1 patient/*.read', 'launch patient/*.read', { Observation: ['read', 'search'], Condition: ['read', 'search'] }],
    ['v1 patient/Observation.write + user/Patient.read', 'launch patient/Observation.write user/Patient.read', { Observation: ['create', 'update', 'delete'], Patient: ['read', 'search'], Condition: [] }],
    ['v2 patient/Observation.cu + patient/Condition.s', 'launch patient/Observation.cu patient/Condition.s', { Observation: ['create', 'update'], Condition: ['search'], Patient: [] }],
    ['v1 patient/*.*', 'launch patient/*.*', { Observation: ALL, MedicationRequest: ALL }],
  ])('%s: exactly the interactions granted, per resource type', async (_label, scope, expected) => {
    const smart = await grantedClient(scope)
    expect(smart.scope.split(' ')).toEqual(expect.arrayContaining(scope.split(' ').filter((name) => name !== 'launch')))
    for (const [type, allowed] of Object.entries(expected)) {
      for (const interaction of ALL) expect([type, interaction, smart.permits(interaction, type)]).toEqual([type, interaction, (allowed as string[]).includes(interaction)])
    }
  })

  it('a scope that only looks like a resource scope permits nothing', async () => {
    const smart = await grantedClient('launch openid fhirUser')
    for (const interaction of ALL) expect(smart.permits(interaction, 'Patient')).toBe(false)
  })
})

describe('SMART v1 and v2 scopes (issue 21 item 2)', () => {
  let v1: MockEhr
  beforeAll(async () => (v1 = await createMockEhr({ scopeSyntax: 'v1' })))
  afterAll(() => v1.close())

  async function launchAt(at: MockEhr, config: Parameters<typeof openConfig>[0]) {
    const client = new SmartClient(`sid-${Math.random()}`, expressSessionStorage(new MemoryStore()), openConfig(config), devOptions)
    const { redirectUrl } = await client.launch(ehrLaunch(at, { patient: 'patient-1' }))
    const asked = new URL(redirectUrl).searchParams.get('scope')!.split(' ')
    await client.callback(await authorize(at, redirectUrl))
    return { asked, smart: await client.ready() }
  }

  it('a v1-only EHR is asked for the v1 form of v2 scopes, and granted patient/*.read as it gives it', async () => {
    const { asked, smart } = await launchAt(v1, { scope: 'openid fhirUser launch patient/*.rs patient/Observation.cruds offline_access' })
    expect(asked).toEqual(['openid', 'fhirUser', 'launch', 'patient/*.read', 'patient/Observation.read', 'patient/Observation.write', 'offline_access'])
    expect(smart.scope.split(' ')).toEqual(expect.arrayContaining(['patient/*.read', 'patient/Observation.read', 'patient/Observation.write']))
    expect(smart.scope).not.toMatch(/\.rs|\.cruds/)
    expect(smart.permits('search', 'Condition')).toBe(true)
    expect(smart.permits('create', 'Observation')).toBe(true)
    expect(smart.permits('create', 'Condition')).toBe(false)
    expect(await smart.request('Patient/patient-1')).toMatchObject({ id: 'patient-1' })
  })

  it('an EHR that speaks v2 gets the v2 scopes unchanged', async () => {
    const { asked, smart } = await launchAt(ehr, { scope: 'openid fhirUser launch patient/*.rs' })
    expect(asked).toEqual(['openid', 'fhirUser', 'launch', 'patient/*.rs'])
    expect(smart.scope.split(' ')).toContain('patient/*.rs')
  })

  it('an explicit per-EHR scope is never rewritten, even for a v1-only EHR', async () => {
    const config = { allowAnyIssuer: undefined, knownFhirServers: [{ issuer: v1.iss, type: 'public', scope: 'openid fhirUser launch patient/Patient.rs' }] } as never
    const { asked, smart } = await launchAt(v1, config)
    expect(asked).toEqual(['openid', 'fhirUser', 'launch', 'patient/Patient.rs'])
    // The v1-only EHR drops what it does not understand: the app learns it from the granted scope.
    expect(smart.permits('read', 'Patient')).toBe(false)
  })

  it('a v1-only EHR advertises permission-v1 and not permission-v2', async () => {
    const doc = (await (await fetch(`${v1.iss}/.well-known/smart-configuration`)).json()) as { capabilities: string[] }
    expect(doc.capabilities).toContain('permission-v1')
    expect(doc.capabilities).not.toContain('permission-v2')
  })
})

describe('the mock EHR imitates what differs between EHRs (issue 21 item 4)', () => {
  it('refreshTokens: false issues no refresh token: the launch ends at its access token\'s expiry', async () => {
    const online = await createMockEhr({ refreshTokens: false, accessTokenTtlSeconds: 60 })
    try {
      const clock = testClock()
      const client = new SmartClient('sid-online', expressSessionStorage(new MemoryStore()), openConfig(), { ...devOptions, now: clock.now })
      await completeLaunch(online, { patient: 'patient-1' }, client)
      await expect(client.ready()).resolves.toBeDefined()
      const discovery = (await (await fetch(`${online.iss}/.well-known/smart-configuration`)).json()) as { capabilities: string[] }
      expect(discovery.capabilities).not.toContain('permission-offline')
      clock.advance(61_000)
      await expect(client.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED' })
      expect(online.stats.refreshGrants).toBe(0)
    } finally {
      await online.close()
    }
  })

  it('revocation: false has no revocation endpoint: logout forgets the launch without revoking', async () => {
    const bare = await createMockEhr({ revocation: false })
    try {
      const discovery = (await (await fetch(`${bare.iss}/.well-known/smart-configuration`)).json()) as Record<string, unknown>
      expect(discovery.revocation_endpoint).toBeUndefined()
      const client = new SmartClient('sid-bare', expressSessionStorage(new MemoryStore()), openConfig(), devOptions)
      await completeLaunch(bare, { patient: 'patient-1' }, client)
      await client.logout()
      await expect(client.ready()).rejects.toMatchObject({ code: 'SESSION_EXPIRED' })
      expect(bare.stats.revocations).toBe(0)
    } finally {
      await bare.close()
    }
  })

  it.each([[{ scopeSyntax: 'v3' }], [{ refreshTokens: 'no' }], [{ revocation: 1 }]])('%j is a TypeError', async (options) => {
    await expect(createMockEhr(options as never)).rejects.toThrow(TypeError)
  })
})
