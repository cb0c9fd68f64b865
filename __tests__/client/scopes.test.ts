// Issue 21 item 2: req.smart tells the app what the granted scope lets it do, in either SMART scope syntax.
import { MemoryStore } from 'express-session'
import { expressSessionStorage, SmartClient, type FhirInteraction } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { completeLaunch, devOptions, openConfig } from '../helpers/smart'

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
