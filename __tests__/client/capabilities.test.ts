// Issue 21 item 3: the EHR's advertised capabilities are checked against the launch before redirecting.
// Metadata in the field is often incomplete, so what is missing is a warning (once per EHR and capability),
// not a refusal — except PKCE, where an EHR listing methods without S256 is refused (S4).
import { MemoryStore } from 'express-session'
import { expressSessionStorage, SmartClient, type SmartLogger } from '../../lib'
import { createMockEhr, type MockEhr } from '../../lib/testing'
import { authorize, devOptions, ehrLaunch, openConfig } from '../helpers/smart'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(() => ehr.close())

/** A fetch that rewrites the EHR's smart-configuration (what an EHR with incomplete metadata serves). */
function discoveryRewriting(rewrite: (doc: Record<string, unknown>) => Record<string, unknown>): typeof fetch {
  return async (input, init) => {
    const response = await fetch(input, init)
    if (!String(input instanceof Request ? input.url : input).endsWith('/.well-known/smart-configuration')) return response
    return Response.json(rewrite((await response.json()) as Record<string, unknown>), { status: 200 })
  }
}

function recordingLogger(): { logger: SmartLogger; warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = []
  const ignore = () => undefined
  return { warnings, logger: { debug: ignore, info: ignore, error: ignore, warn: (fields: object, message?: string) => void warnings.push({ ...fields, message }) } as SmartLogger }
}

function client(capabilities: string[] | undefined, logger: SmartLogger, extra: Partial<Parameters<typeof openConfig>[0]> = {}) {
  const fetchFn = discoveryRewriting((doc) => ({ ...doc, capabilities }))
  return new SmartClient(`sid-${Math.random()}`, expressSessionStorage(new MemoryStore()), openConfig(extra), { ...devOptions, fetch: fetchFn, logger })
}

describe('advertised capabilities', () => {
  it('an EHR launch at an EHR not listing launch-ehr (nor client-public) warns once each and still redirects', async () => {
    const { logger, warnings } = recordingLogger()
    const smart = client(['launch-standalone', 'permission-v2'], logger)
    for (let i = 0; i < 2; i++) {
      const { redirectUrl } = await smart.launch(ehrLaunch(ehr, { patient: 'patient-1' }))
      expect(new URL(redirectUrl).origin).toBe(new URL(ehr.iss).origin)
    }
    expect(warnings.map((w) => w.capability).sort()).toEqual(['client-public', 'launch-ehr'])
    expect(warnings[0]).toMatchObject({ event: 'smart.capabilities', iss: ehr.iss, message: expect.stringContaining('does not list') })
  })

  it('a standalone login at an EHR not listing launch-standalone warns', async () => {
    const { logger, warnings } = recordingLogger()
    await client(['launch-ehr', 'client-public'], logger).login({ iss: ehr.iss })
    expect(warnings.map((w) => w.capability)).toEqual(['launch-standalone'])
  })

  it('a confidential client at an EHR not listing its client type warns', async () => {
    const { logger, warnings } = recordingLogger()
    const confidential = ehr.iss
    const config = { allowAnyIssuer: undefined, knownFhirServers: [{ issuer: confidential, type: 'confidential-symmetric', method: 'client_secret_basic', clientSecret: 'x-secret-0123456789' }] } as never
    await client(['launch-ehr', 'client-public'], logger, config).launch(ehrLaunch(ehr, { patient: 'patient-1' }))
    expect(warnings.map((w) => w.capability)).toEqual(['client-confidential-symmetric'])
  })

  it('an EHR listing everything, or no capabilities at all, gives no warning', async () => {
    for (const capabilities of [undefined, ['launch-ehr', 'launch-standalone', 'client-public', 'permission-v2']]) {
      const { logger, warnings } = recordingLogger()
      await client(capabilities, logger).launch(ehrLaunch(ehr, { patient: 'patient-1' }))
      expect(warnings).toEqual([])
    }
  })

  it('S4 an EHR listing PKCE methods without S256 is refused before redirecting', async () => {
    const { logger } = recordingLogger()
    const fetchFn = discoveryRewriting((doc) => ({ ...doc, code_challenge_methods_supported: ['plain'] }))
    const smart = new SmartClient('sid-pkce', expressSessionStorage(new MemoryStore()), openConfig(), { ...devOptions, fetch: fetchFn, logger })
    await expect(smart.launch(ehrLaunch(ehr, { patient: 'patient-1' }))).rejects.toMatchObject({ code: 'DISCOVERY_FAILED' })
  })

  it('S4 an EHR listing no PKCE methods is sent S256 anyway, and the launch completes', async () => {
    const { logger } = recordingLogger()
    const fetchFn = discoveryRewriting(({ code_challenge_methods_supported: _gone, ...doc }) => doc)
    const smart = new SmartClient('sid-pkce-2', expressSessionStorage(new MemoryStore()), openConfig(), { ...devOptions, fetch: fetchFn, logger })
    const { redirectUrl } = await smart.launch(ehrLaunch(ehr, { patient: 'patient-1' }))
    expect(new URL(redirectUrl).searchParams.get('code_challenge_method')).toBe('S256')
    await expect(smart.callback(await authorize(ehr, redirectUrl))).resolves.toMatchObject({ patient: 'patient-1' })
  })
})
