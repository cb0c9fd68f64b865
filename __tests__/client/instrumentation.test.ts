// The logger option (issue 9) and OpenTelemetry spans (issue 12): what the library reports of its work, and
// that no token, code, verifier, secret — or, unless the app opts in, patient id — is ever in it.
import { trace } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { MemoryStore } from 'express-session'
import request from 'supertest'
import { SmartClient, type SmartClientOptions, type SmartLogger } from '../../lib'
import { createMockEhr, launchAs, type MockEhr } from '../../lib/testing'
import { launchedCookie, secretRecordingFetch, testApp } from '../helpers/app'
import { devOptions, openConfig, testClock } from '../helpers/smart'

const exporter = new InMemorySpanExporter()
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
let ehr: MockEhr
beforeAll(async () => {
  trace.setGlobalTracerProvider(provider)
  ehr = await createMockEhr({ accessTokenTtlSeconds: 3600 })
})
afterAll(async () => {
  await ehr.close()
  await provider.shutdown()
  trace.disable()
})

interface Line { level: string; fields: Record<string, unknown>; message: string }

function capturingLogger(): { logger: SmartLogger; lines: Line[] } {
  const lines: Line[] = []
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => void lines.push({ level, fields, message })
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } }
}

/** Every flow the suite knows, through the middleware: what an app's logs and traces would see of a day. */
async function everyFlow(options: SmartClientOptions): Promise<Set<string>> {
  const recorder = secretRecordingFetch()
  const clock = testClock()
  const refusing: typeof fetch = async (input, init) =>
    String(init?.body ?? '').includes('grant_type=refresh_token') ? Response.json({ error: 'invalid_grant', refresh_token: 'leaked?' }, { status: 400 }) : recorder.fetch(input, init)
  const store = new MemoryStore()
  const base = { enableMultiLaunch: true, now: clock.now, ...options }
  const agent = request.agent(testApp({ store, jsonErrors: true, options: { ...base, fetch: recorder.fetch } }))
  await launchAs(agent, ehr, { patient: 'patient-1', encounter: 'patient-1-encounter-1' })
  await launchAs(agent, ehr, { patient: 'patient-2' })
  await agent.get('/api/patient').set('X-Active-Patient', 'patient-1').expect(200)
  await agent.get('/api/fhir?path=Patient/does-not-exist').set('X-Active-Patient', 'patient-1').expect(404)
  await agent.get(`/api/fhir?path=${encodeURIComponent('https://elsewhere.example/x')}`).set('X-Active-Patient', 'patient-1').expect(400)
  ehr.expireAccessTokens()
  await agent.get('/api/patient').set('X-Active-Patient', 'patient-2').expect(200)
  await agent.post('/logout').set('X-Active-Patient', 'patient-2').expect(204)
  // A refused refresh ends a launch.
  const cookie = await launchedCookie(testApp({ store, options: { ...base, fetch: recorder.fetch } }), ehr, { patient: 'patient-3' })
  // The session's browser cookie is a secret too (SECURITY S34): whoever holds it follows the session's forwards.
  const browserKey = /(?:^|; )smart-browser=([^;]+)/.exec(cookie)?.[1]
  if (!browserKey) throw new Error(`no browser cookie after a callback: ${cookie}`)
  recorder.secrets.add(browserKey)
  clock.advance(3600 * 1000)
  const refusingApp = testApp({ store, jsonErrors: true, options: { ...base, fetch: refusing } })
  await request(refusingApp).get('/api/context').set('Cookie', cookie).set('X-Active-Patient', 'patient-3').expect(401)
  // Refusals at launch and callback.
  await agent.get('/launch?iss=https%3A%2F%2Funknown.example%2Ffhir&launch=x')
  const launch = await agent.get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-3' })).search}`).expect(302)
  const back = await ehr.authorize(launch.headers.location)
  back.searchParams.set('state', 'forged')
  await agent.get(`${back.pathname}${back.search}`).expect(400)
  ehr.faults.authorize = 'deny'
  try {
    const denied = await agent.get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-3' })).search}`).expect(302)
    const refusedBack = await ehr.authorize(denied.headers.location)
    await agent.get(`${refusedBack.pathname}${refusedBack.search}`).expect(403)
  } finally {
    delete ehr.faults.authorize
  }
  return recorder.secrets
}

describe('the logger option', () => {
  it('logs every operation with its outcome and code, and never a token, code, verifier, secret, browser cookie or patient id', async () => {
    const { logger, lines } = capturingLogger()
    const secrets = await everyFlow({ logger })
    expect(secrets.size).toBeGreaterThanOrEqual(8)
    const events = new Set(lines.map((line) => `${line.fields.event}:${line.fields.outcome}`))
    for (const event of ['smart.launch:ok', 'smart.callback:ok', 'smart.fhir_request:ok', 'smart.fhir_request:error', 'smart.refresh:ok',
      'smart.refresh:error', 'smart.logout:ok', 'smart.launch:error', 'smart.callback:error']) {
      expect(events).toContain(event)
    }
    expect(lines.find((line) => line.fields.event === 'smart.callback' && line.fields.outcome === 'error')?.fields.code).toBe('INVALID_STATE')
    const written = JSON.stringify(lines)
    for (const secret of secrets) expect(written).not.toContain(secret)
    expect(written).not.toMatch(/patient-[123]/)
    expect(written).not.toContain('leaked?')
  })

  it('with recordPatientIds, the callback names the patient', async () => {
    const { logger, lines } = capturingLogger()
    await launchAs(request.agent(testApp({ store: new MemoryStore(), options: { logger, recordPatientIds: true } })), ehr, { patient: 'patient-3' })
    expect(lines.find((line) => line.fields.event === 'smart.callback')?.fields['smart.patient.id']).toBe('patient-3')
  })

  it('a refusal (4xx) is logged at info as "… refused", a failure (5xx) at error as "… failed"; an error that is not a SmartError is INTERNAL_ERROR, 500', async () => {
    const { logger, lines } = capturingLogger()
    const app = testApp({ store: new MemoryStore(), jsonErrors: true, options: { logger } })
    await request(app).get('/launch?iss=ehr.example%2Ffhir&launch=x').expect(400)
    await request(app).get(`/launch?iss=${encodeURIComponent('http://127.0.0.1:1/fhir')}&launch=x`).expect(502)
    // A custom SmartStorage that throws what it likes.
    const throwing = { get: () => Promise.reject(new RangeError('boom')), set: () => Promise.resolve(), delete: () => Promise.resolve() }
    await expect(new SmartClient('s', throwing, openConfig(), { ...devOptions, logger }).callback({ code: 'c', state: 's'.repeat(43) })).rejects.toThrow(RangeError)
    const errors = lines.filter((line) => line.fields.outcome === 'error').map(({ level, message, fields }) => ({ level, message, code: fields.code, status: fields.status }))
    expect(errors).toEqual([
      { level: 'info', message: 'SMART EHR launch refused', code: 'MISSING_PARAMETER', status: 400 },
      { level: 'error', message: 'SMART EHR launch failed', code: 'DISCOVERY_FAILED', status: 502 },
      { level: 'error', message: 'SMART callback failed', code: 'INTERNAL_ERROR', status: 500 },
    ])
  })

  it('a logger without the pino methods is a TypeError naming the option', () => {
    expect(() => testApp({ store: new MemoryStore(), options: { logger: { info: () => undefined } as never } })).toThrow(/options\.logger/)
  })
})

describe('OpenTelemetry spans', () => {
  beforeEach(() => exporter.reset())

  it('launch, callback, refresh, logout and FHIR requests, with issuer, outcome, error code and count — nothing secret, no patient id', async () => {
    const secrets = await everyFlow({})
    const spans = exporter.getFinishedSpans()
    const named = (name: string) => spans.filter((span) => span.name === name)
    for (const name of ['smart.launch', 'smart.callback', 'smart.refresh', 'smart.logout', 'smart.fhir_request']) expect(named(name).length).toBeGreaterThan(0)
    const callback = named('smart.callback').find((span) => span.attributes['smart.outcome'] === 'ok')!
    expect(callback.attributes).toMatchObject({ 'smart.iss': ehr.iss, 'smart.multi_launch': true })
    expect([1, 2]).toContain(callback.attributes['smart.patient_count'])
    expect(named('smart.callback').find((span) => span.attributes['smart.outcome'] === 'error')?.attributes['smart.error_code']).toBe('INVALID_STATE')
    expect(named('smart.refresh').some((span) => span.attributes['smart.error_code'] === 'SESSION_EXPIRED')).toBe(true)
    const fhir = named('smart.fhir_request')
    expect(fhir.some((span) => span.attributes['fhir.resource_type'] === 'Patient' && span.attributes['http.response.status_code'] === 200 && span.attributes['http.request.method'] === 'GET')).toBe(true)
    // One request met an expired token (everyFlow expires them once): it alone was retried after a refresh.
    expect(fhir.filter((span) => span.attributes['smart.retried_after_refresh'] === true)).toHaveLength(1)
    expect(fhir.filter((span) => span.attributes['smart.retried_after_refresh'] === false).length).toBeGreaterThan(0)
    const recorded = JSON.stringify(spans.map((span) => ({ name: span.name, attributes: span.attributes, status: span.status, events: span.events })))
    for (const secret of secrets) expect(recorded).not.toContain(secret)
    expect(recorded).not.toMatch(/patient-[123]|does-not-exist/)
  })

  it('fhir.resource_type names what was asked for, never an id: a type, an operation, _history, or (other)', async () => {
    const agent = request.agent(testApp({ store: new MemoryStore(), jsonErrors: true }))
    await launchAs(agent, ehr, { patient: 'patient-1' })
    const labels: Record<string, string> = {
      'Patient/patient-1': 'Patient', '$export': '$export', '_history': '_history', '_history-1': '(other)', 'x_history': '(other)',
      'patient-1': '(other)', 'Observation?subject=Patient/patient-1': 'Observation', '': '(base)',
    }
    for (const [path, label] of Object.entries(labels)) {
      exporter.reset()
      await agent.get(`/api/fhir?path=${encodeURIComponent(path)}`)
      expect({ path, label: exporter.getFinishedSpans().find((span) => span.name === 'smart.fhir_request')?.attributes['fhir.resource_type'] }).toEqual({ path, label })
    }
  })

  it('with recordPatientIds, the callback span carries the patient id', async () => {
    await launchAs(request.agent(testApp({ store: new MemoryStore(), options: { recordPatientIds: true } })), ehr, { patient: 'patient-2' })
    expect(exporter.getFinishedSpans().find((span) => span.name === 'smart.callback')?.attributes['smart.patient.id']).toBe('patient-2')
  })
})
