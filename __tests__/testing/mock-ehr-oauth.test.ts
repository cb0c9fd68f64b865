import * as client from 'openid-client'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { PATIENT_SCOPE, REDIRECT_URI, authorizeApp, configFor, launch, redeem } from './flow'

let ehr: MockEhr
beforeAll(async () => {
  ehr = await createMockEhr()
})
afterAll(() => ehr.close())

test('serves a SMART configuration and a CapabilityStatement on the FHIR base', async () => {
  const before = ehr.stats.discoveryFetches
  const response = await fetch(`${ehr.iss}/.well-known/smart-configuration`)
  expect(response.status).toBe(200)
  const doc = await response.json()
  expect(doc).toMatchObject({
    issuer: ehr.issuer,
    jwks_uri: `${ehr.issuer}/jwks`,
    authorization_endpoint: `${ehr.issuer}/authorize`,
    token_endpoint: `${ehr.issuer}/token`,
    revocation_endpoint: `${ehr.issuer}/revoke`,
    code_challenge_methods_supported: ['S256'],
    response_types_supported: ['code'],
    authorization_response_iss_parameter_supported: true,
  })
  expect(doc.grant_types_supported).toEqual(['authorization_code', 'refresh_token'])
  expect(doc.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt']))
  expect(doc.token_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['RS384', 'ES384']))
  expect(doc.scopes_supported).toEqual(expect.arrayContaining(['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access', 'patient/*.rs']))
  expect(doc.capabilities).toEqual(expect.arrayContaining([
    'launch-ehr', 'launch-standalone', 'client-public', 'client-confidential-symmetric', 'client-confidential-asymmetric',
    'context-ehr-patient', 'context-ehr-encounter', 'context-standalone-patient', 'context-passthrough-banner',
    'sso-openid-connect', 'permission-offline', 'permission-online', 'permission-patient', 'permission-user',
    'permission-v1', 'permission-v2',
  ]))
  expect(ehr.stats.discoveryFetches).toBe(before + 1)
  expect(ehr.iss).not.toBe(ehr.issuer)

  const metadata = await fetch(`${ehr.iss}/metadata`)
  expect(metadata.headers.get('content-type')).toMatch(/^application\/fhir\+json/)
  expect(await metadata.json()).toMatchObject({ resourceType: 'CapabilityStatement', fhirVersion: '4.0.1' })
})

test('launchUrl appends iss and a fresh launch id, keeping the app query', () => {
  const first = new URL(ehr.launchUrl('http://127.0.0.1:9/launch?tenant=a', { patient: 'patient-1' }))
  const second = new URL(ehr.launchUrl('http://127.0.0.1:9/launch?tenant=a', { patient: 'patient-1' }))
  expect(first.searchParams.get('tenant')).toBe('a')
  expect(first.searchParams.get('iss')).toBe(ehr.iss)
  expect(first.searchParams.get('launch')).toMatch(/^[\w-]{16,}$/)
  expect(second.searchParams.get('launch')).not.toBe(first.searchParams.get('launch'))
})

test('a public client completes an EHR launch and receives tokens with the launch context', async () => {
  const codeGrants = ehr.stats.codeGrants
  const config = await configFor(ehr)
  const fhirContext = [{ reference: 'Observation/patient-1-hr-1' }, { canonical: 'http://example.org/Questionnaire/q|1', type: 'Questionnaire' }]
  const authorized = await authorizeApp(ehr, config, {
    context: { patient: 'patient-1', encounter: 'patient-1-encounter-1', intent: 'reconcile-medications', needPatientBanner: false, smartStyleUrl: 'http://127.0.0.1:9/style.json', fhirContext },
  })
  expect(`${authorized.callback.origin}${authorized.callback.pathname}`).toBe(REDIRECT_URI)
  expect(authorized.callback.searchParams.get('state')).toBe(authorized.state)
  expect(authorized.callback.searchParams.get('iss')).toBe(ehr.issuer)
  expect(authorized.callback.searchParams.get('code')).toBeTruthy()

  const tokens = await redeem(config, authorized)
  expect(tokens).toMatchObject({
    token_type: 'bearer',
    expires_in: 3600,
    patient: 'patient-1',
    encounter: 'patient-1-encounter-1',
    need_patient_banner: false,
    intent: 'reconcile-medications',
    smart_style_url: 'http://127.0.0.1:9/style.json',
    fhirContext,
  })
  expect(tokens.scope!.split(' ').sort()).toEqual(PATIENT_SCOPE.split(' ').sort())
  expect(tokens.access_token.split('.')).toHaveLength(1)
  expect(tokens.refresh_token).toBeTruthy()
  expect(tokens.claims()).toMatchObject({
    iss: ehr.issuer,
    aud: 'mock-app',
    sub: 'smart-practitioner-1',
    nonce: authorized.nonce,
    fhirUser: `${ehr.iss}/Practitioner/smart-practitioner-1`,
  })
  expect(ehr.stats.codeGrants).toBe(codeGrants + 1)
})

test('grants any SMART v1 or v2 resource scope requested', async () => {
  const scope = 'launch patient/Observation.rs patient/Condition.read user/*.cruds user/MedicationRequest.r system/Patient.s'
  const tokens = await launch(ehr, { scope })
  expect(tokens.scope!.split(' ').sort()).toEqual(scope.split(' ').sort())
})

test('omits encounter and refresh token when neither was asked for; fhirUser can be relative', async () => {
  const relative = await createMockEhr({ fhirUserRelative: true, practitionerId: 'dr-who' })
  try {
    const tokens = await launch(relative, { scope: 'openid fhirUser launch patient/*.rs', context: { patient: 'patient-2' } })
    expect(tokens.patient).toBe('patient-2')
    expect(tokens).not.toHaveProperty('encounter')
    expect(tokens).not.toHaveProperty('refresh_token')
    expect(tokens.need_patient_banner).toBe(true)
    expect(tokens.claims()).toMatchObject({ sub: 'dr-who', fhirUser: 'Practitioner/dr-who' })
  } finally {
    await relative.close()
  }
})

test('online_access also yields a refresh token', async () => {
  const tokens = await launch(ehr, { scope: 'openid fhirUser launch patient/*.rs online_access' })
  expect(tokens.refresh_token).toBeTruthy()
  expect(tokens.scope).toContain('online_access')
})

test('refresh rotates the refresh token, keeps the context, and refuses the old one', async () => {
  const config = await configFor(ehr)
  const tokens = await redeem(config, await authorizeApp(ehr, config, { context: { patient: 'patient-3', encounter: 'patient-3-encounter-1' } }))
  const refreshGrants = ehr.stats.refreshGrants
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token!)
  expect(refreshed.refresh_token).toBeTruthy()
  expect(refreshed.refresh_token).not.toBe(tokens.refresh_token)
  expect(refreshed.access_token).not.toBe(tokens.access_token)
  expect(refreshed).toMatchObject({ patient: 'patient-3', encounter: 'patient-3-encounter-1', need_patient_banner: true, expires_in: 3600 })
  expect(refreshed.scope).toBe(tokens.scope)
  expect(ehr.stats.refreshGrants).toBe(refreshGrants + 1)
  await expect(client.refreshTokenGrant(config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' })
})

test('refuses an aud other than the FHIR base, an unknown launch and a missing PKCE challenge', async () => {
  const config = await configFor(ehr)
  const wrongAud = await authorizeApp(ehr, config, { aud: `${ehr.iss}/other` })
  expect(wrongAud.callback.searchParams.get('error')).toBe('invalid_request')
  expect(wrongAud.callback.searchParams.get('state')).toBe(wrongAud.state)
  const unknownLaunch = await authorizeApp(ehr, config, { launch: 'not-a-launch' })
  expect(unknownLaunch.callback.searchParams.get('error')).toBe('invalid_request')

  const noPkce = client.buildAuthorizationUrl(config, { redirect_uri: REDIRECT_URI, scope: 'openid', state: 's', aud: ehr.iss })
  const refused = await ehr.authorize(noPkce.href)
  expect(refused.searchParams.get('error')).toBe('invalid_request')
  expect(refused.searchParams.get('error_description')).toMatch(/PKCE/)
})

test('faults.authorize = deny redirects back with access_denied', async () => {
  ehr.faults.authorize = 'deny'
  try {
    const config = await configFor(ehr)
    const denied = await authorizeApp(ehr, config)
    expect(denied.callback.searchParams.get('error')).toBe('access_denied')
    expect(denied.callback.searchParams.get('state')).toBe(denied.state)
    expect(denied.callback.searchParams.get('code')).toBeNull()
  } finally {
    delete ehr.faults.authorize
  }
})

test('authorize() refuses URLs of another origin', async () => {
  await expect(ehr.authorize('http://127.0.0.1:9/authorize')).rejects.toThrow(/not this mock EHR/)
})

test('revocation makes an access token unusable and is counted', async () => {
  const config = await configFor(ehr)
  const tokens = await redeem(config, await authorizeApp(ehr, config))
  const revocations = ehr.stats.revocations
  await client.tokenRevocation(config, tokens.access_token)
  expect(ehr.stats.revocations).toBe(revocations + 1)
  const response = await fetch(`${ehr.iss}/Patient/patient-1`, { headers: { authorization: `Bearer ${tokens.access_token}` } })
  expect(response.status).toBe(401)
})

test('rotateRefreshTokens: false answers refreshes without a refresh token, and the first one stays usable', async () => {
  const fixed = await createMockEhr({ rotateRefreshTokens: false })
  try {
    const config = await configFor(fixed)
    const tokens = await redeem(config, await authorizeApp(fixed, config, { context: { patient: 'patient-2' } }))
    const first = await client.refreshTokenGrant(config, tokens.refresh_token!)
    expect(first).not.toHaveProperty('refresh_token')
    const second = await client.refreshTokenGrant(config, tokens.refresh_token!)
    expect(second.access_token).not.toBe(first.access_token)
    expect(second).toMatchObject({ patient: 'patient-2' })
    expect(fixed.stats.refreshGrants).toBe(2)
  } finally {
    await fixed.close()
  }
})
