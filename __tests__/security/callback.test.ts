import { createHash } from 'node:crypto'
import { MemoryStore } from 'express-session'
import { SmartClient, expressSessionStorage, type SmartClientConfiguration, type SmartClientOptions } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { authorize, completeLaunch, devOptions, ehrLaunch, openConfig, rewritingTokenResponses, smartConfigurationWithout } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

const storage = expressSessionStorage(new MemoryStore())
const context = { patient: 'patient-1', encounter: 'encounter-1' }
let n = 0
const session = () => `cb-${++n}`

/** A fetch that lets a test rewrite the token endpoint's JSON answer: a fault a well-behaved server never produces. */
async function callbackWith(options: SmartClientOptions, config: SmartClientConfiguration = openConfig()) {
  const client = new SmartClient(session(), storage, config, { ...devOptions, ...options })
  const { redirectUrl } = await client.launch(ehrLaunch(ehr, context))
  const query = await authorize(ehr, redirectUrl)
  return { client, query }
}

describe('callback', () => {
  it('S14 an authorization response iss of another issuer is ISSUER_MISMATCH, before redeeming the code', async () => {
    const { client, query } = await callbackWith({})
    const grants = ehr.stats.codeGrants
    await expect(client.callback({ ...query, iss: 'https://attacker.example' })).rejects.toMatchObject({
      code: 'ISSUER_MISMATCH',
      status: 400,
      message: expect.stringMatching(/another issuer.*RFC 9207/),
    })
    expect(ehr.stats.codeGrants).toBe(grants)
  })

  it('S14 a missing iss is ISSUER_MISMATCH when the server advertises it', async () => {
    const { client, query } = await callbackWith({})
    expect(query.iss).toBe(ehr.issuer)
    const { iss: _iss, ...withoutIss } = query
    await expect(client.callback(withoutIss)).rejects.toMatchObject({ code: 'ISSUER_MISMATCH', message: expect.stringMatching(/lacks the "iss".*RFC 9207/) })
  })

  it('S14 a server that does not advertise RFC 9207 may leave iss out: the callback completes (most EHRs do not send it)', async () => {
    const { client, query } = await callbackWith({ fetch: smartConfigurationWithout('authorization_response_iss_parameter_supported') })
    const { iss: _iss, ...withoutIss } = query
    await expect(client.callback(withoutIss)).resolves.toMatchObject({ patient: 'patient-1' })
    expect((await client.ready()).patient?.id).toBe('patient-1')
  })

  it('S13 an error together with a code is AUTHORIZATION_DENIED, without a code exchange, and the state is spent', async () => {
    const { client, query } = await callbackWith({})
    const grants = ehr.stats.codeGrants
    await expect(client.callback({ ...query, error: 'access_denied' })).rejects.toMatchObject({ code: 'AUTHORIZATION_DENIED', status: 403 })
    expect(ehr.stats.codeGrants).toBe(grants)
    await expect(client.callback(query)).rejects.toMatchObject({ code: 'INVALID_STATE' })
    expect(ehr.stats.codeGrants).toBe(grants)
  })

  it('S13 regression: an error that is not a string (error[toString]=x through the extended query parser) is AUTHORIZATION_DENIED, not a TypeError, and the state is spent', async () => {
    const { client, query } = await callbackWith({})
    const grants = ehr.stats.codeGrants
    for (const error of [{ toString: 'x' }, { valueOf: 'x', toString: 'y' }, ['access_denied', 'x'], Object.create(null)]) {
      await expect(client.callback({ ...query, error } as never)).rejects.toMatchObject({ code: 'AUTHORIZATION_DENIED', status: 403 })
    }
    await expect(client.callback(query)).rejects.toMatchObject({ code: 'INVALID_STATE' })
    expect(ehr.stats.codeGrants).toBe(grants)
  })

  describe('S14 a smart-configuration without issuer (current behaviour)', () => {
    const withoutIssuer = smartConfigurationWithout('issuer')
    const noOpenid = openConfig({ scope: 'launch launch/patient patient/*.rs offline_access' })

    it('S14 the response iss cannot be compared: any iss is accepted (without openid the launch completes)', async () => {
      const { client, query } = await callbackWith({ fetch: withoutIssuer }, noOpenid)
      await expect(client.callback({ ...query, iss: 'https://attacker.example' })).resolves.toMatchObject({ patient: 'patient-1' })
    })

    it('S14 a missing iss is still ISSUER_MISMATCH when the server advertises authorization_response_iss_parameter_supported', async () => {
      const { client, query } = await callbackWith({ fetch: withoutIssuer }, noOpenid)
      const { iss: _iss, ...withoutIss } = query
      await expect(client.callback(withoutIss)).rejects.toMatchObject({ code: 'ISSUER_MISMATCH' })
    })

    it('S14 S19 an id_token cannot be verified without an issuer: INVALID_ID_TOKEN, nothing stored', async () => {
      const { client, query } = await callbackWith({ fetch: withoutIssuer })
      await expect(client.callback(query)).rejects.toMatchObject({ code: 'INVALID_ID_TOKEN' })
      await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
    })
  })

  it('MISSING_PARAMETER without code or state', async () => {
    const { client, query } = await callbackWith({})
    await expect(client.callback({ state: query.state })).rejects.toMatchObject({ code: 'MISSING_PARAMETER', status: 400 })
    await expect(client.callback({ code: query.code })).rejects.toMatchObject({ code: 'MISSING_PARAMETER', status: 400 })
  })

  it.each([
    ['500', 'the server answered 500'],
    ['malformed', 'the answer was malformed'],
    ['hang', 'no answer within 400 ms'],
  ] as const)('a token endpoint fault (%s) is TOKEN_EXCHANGE_FAILED (%s) and stores nothing', async (fault, why) => {
    const { client, query } = await callbackWith({ httpTimeoutMs: 400 })
    ehr.faults.token = fault
    try {
      const err = await client.callback(query).catch((e: unknown) => e)
      expect(err).toMatchObject({ code: 'TOKEN_EXCHANGE_FAILED', status: 502, message: `The EHR's token endpoint failed: ${why}` })
      // S25: no code or verifier in the message.
      expect((err as Error).message).not.toContain(query.code)
    } finally {
      delete ehr.faults.token
    }
    await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
  })

  it('S16 a token response without access_token or with a non-bearer token_type is refused', async () => {
    for (const rewrite of [
      ({ access_token: _a, ...rest }: Record<string, unknown>) => rest,
      (body: Record<string, unknown>) => ({ ...body, token_type: 'mac' }),
    ]) {
      const { client, query } = await callbackWith({ fetch: rewritingTokenResponses(rewrite) })
      await expect(client.callback(query)).rejects.toMatchObject({ code: 'TOKEN_EXCHANGE_FAILED' })
    }
  })

  it('S16 a DPoP token (which openid-client accepts) is refused: this library sends bearer tokens only', async () => {
    const { client, query } = await callbackWith({ fetch: rewritingTokenResponses((body) => ({ ...body, token_type: 'DPoP' })) })
    await expect(client.callback(query)).rejects.toMatchObject({ code: 'TOKEN_EXCHANGE_FAILED', status: 502, message: 'The token response is not a bearer token' })
    await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
  })

  it('S16 S21 token_type "Bearer" in any case, an opaque token and expiry from expires_in are fine', async () => {
    const { client, query } = await callbackWith({ fetch: rewritingTokenResponses((body) => ({ ...body, token_type: 'BEARER', access_token: `${body.access_token}` })) })
    await client.callback(query)
    await expect(client.ready()).resolves.toMatchObject({ patient: { id: 'patient-1' } })
  })

  it('S17 the granted scope is stored, even when narrower than requested', async () => {
    const { client, query } = await callbackWith({ fetch: rewritingTokenResponses((body) => ({ ...body, scope: 'openid launch patient/Patient.rs' })) })
    await client.callback(query)
    expect((await client.ready()).scope).toBe('openid launch patient/Patient.rs')
  })

  describe('S19 id_token verification', () => {
    it('a tampered signature is INVALID_ID_TOKEN', async () => {
      const tamper = (token: string) => token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA')
      const { client, query } = await callbackWith({ fetch: rewritingTokenResponses((body) => ({ ...body, id_token: tamper(String(body.id_token)) })) })
      await expect(client.callback(query)).rejects.toMatchObject({ code: 'INVALID_ID_TOKEN', status: 401 })
      await expect(client.ready()).rejects.toMatchObject({ code: 'NO_SESSION' })
    })

    it('an unsigned (alg none) id_token is INVALID_ID_TOKEN', async () => {
      const unsigned = (token: string) => {
        const [, payload] = token.split('.')
        return `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${payload}.`
      }
      const { client, query } = await callbackWith({ fetch: rewritingTokenResponses((body) => ({ ...body, id_token: unsigned(String(body.id_token)) })) })
      await expect(client.callback(query)).rejects.toMatchObject({ code: 'INVALID_ID_TOKEN' })
    })

    it('S9 a validly signed id_token of another launch (other nonce) is INVALID_ID_TOKEN', async () => {
      let stolen = ''
      const thief = new SmartClient(session(), storage, openConfig(), { ...devOptions, fetch: rewritingTokenResponses((body) => ((stolen = String(body.id_token)), body)) })
      await completeLaunch(ehr, context, thief)
      expect(stolen.split('.')).toHaveLength(3)
      const { client, query } = await callbackWith({ fetch: rewritingTokenResponses((body) => ({ ...body, id_token: stolen })) })
      await expect(client.callback(query)).rejects.toMatchObject({ code: 'INVALID_ID_TOKEN', message: 'The id_token was rejected: nonce does not match this launch' })
    })

    it('an id_token signed by another issuer is INVALID_ID_TOKEN', async () => {
      const other = await createMockEhr()
      try {
        let foreign = ''
        const elsewhere = new SmartClient(session(), storage, openConfig(), { ...devOptions, fetch: rewritingTokenResponses((body) => ((foreign = String(body.id_token)), body)) })
        await completeLaunch(other, context, elsewhere)
        const { client, query } = await callbackWith({ fetch: rewritingTokenResponses((body) => ({ ...body, id_token: foreign })) })
        await expect(client.callback(query)).rejects.toMatchObject({ code: 'INVALID_ID_TOKEN' })
      } finally {
        await other.close()
      }
    })

    it('S16 a token response without id_token is fine (no user)', async () => {
      const { client, query } = await callbackWith({ fetch: rewritingTokenResponses(({ id_token: _t, ...rest }) => rest) })
      await client.callback(query)
      const fhir = await client.ready()
      expect(fhir.user).toBeNull()
      expect(fhir.idTokenClaims).toBeNull()
    })
  })

  it('S18 launch context comes from the token response only', async () => {
    const { client, query } = await callbackWith({ fetch: rewritingTokenResponses((body) => ({ ...body, patient: 'patient-2', encounter: undefined })) })
    await client.callback({ ...query, patient: 'patient-3' } as never)
    const fhir = await client.ready()
    expect(fhir.patient?.id).toBe('patient-2')
    expect(fhir.encounter).toBeNull()
  })

  it('S18 the launch context is read strictly: need_patient_banner true or "true", fhirContext items only as objects, with their string fields', async () => {
    const fhirContext = [
      { reference: 'Observation/obs-1', role: 'focus', extra: 'dropped', type: '' },
      null,
      'Patient/patient-2',
      7,
      { canonical: 'http://forms.example/Questionnaire/q|1', type: 'Questionnaire', reference: 3 },
    ]
    const launched = async (fields: Record<string, unknown>) => {
      const { client, query } = await callbackWith({ fetch: rewritingTokenResponses((body) => ({ ...body, ...fields })) })
      await client.callback(query)
      return client.ready()
    }
    const fhir = await launched({ need_patient_banner: 'true', fhirContext, intent: '', smart_style_url: 'https://ehr.example/style.json' })
    expect(fhir).toMatchObject({ needPatientBanner: true, intent: null, smartStyleUrl: 'https://ehr.example/style.json' })
    expect(fhir.fhirContext).toEqual([
      { reference: 'Observation/obs-1', role: 'focus' },
      { canonical: 'http://forms.example/Questionnaire/q|1', type: 'Questionnaire' },
    ])
    expect(await launched({ need_patient_banner: 'yes', fhirContext: { reference: 'Observation/obs-1' } })).toMatchObject({ needPatientBanner: false, fhirContext: [] })
  })

  it('S26 the redirect after the callback is the configured redirectUrl, with only the launch\'s selector added', async () => {
    const { client, query } = await callbackWith({})
    const result = await client.callback({ ...query, redirect: 'https://evil.example' } as never)
    // The selector of (this EHR, patient-1): any issuer allowed, so `<patient id>_<12 characters of the issuer's SHA-256>`.
    const selector = `patient-1_${createHash('sha256').update(ehr.iss).digest('base64url').slice(0, 12)}`
    expect(result.redirectUrl).toBe(`http://app.test/app?patient=${selector}`)
    expect(result.activePatient).toBe(selector)
  })
})
