import request from 'supertest'
import { launchAs } from 'express-smart-on-fhir/testing'
import { startExample, type RunningExample } from '../helpers/example-app'

let example: RunningExample
beforeAll(async () => (example = await startExample()))
afterAll(() => example.close())

/** The example app is served by its own http server; supertest talks to it by URL. */
const agent = () => request.agent(example.appUrl)

describe('the example app API', () => {
  it('answers the fixed routes for the active patient, and never a token', async () => {
    const browser = agent()
    const { patient } = await launchAs(browser, example.ehr, { patient: 'patient-2', encounter: 'patient-2-encounter-1', needPatientBanner: true })
    expect(patient).toBe('patient-2')
    const get = (path: string) => browser.get(path).set('X-Active-Patient', patient).expect(200)

    const context = await get('/api/context')
    expect(context.body).toEqual({ patient: 'patient-2', encounter: 'patient-2-encounter-1', fhirUser: expect.stringMatching(/Practitioner\//), needPatientBanner: true })
    expect((await get('/api/patient')).body).toMatchObject({ resourceType: 'Patient', id: 'patient-2' })
    expect((await get('/api/practitioner')).body).toMatchObject({ resourceType: 'Practitioner' })
    expect((await get('/api/encounter')).body).toMatchObject({ resourceType: 'Encounter', id: 'patient-2-encounter-1' })
    const vitals = (await get('/api/vitals')).body as { series: Array<{ code: string; points: unknown[] }> }
    expect(vitals.series.map((s) => s.code)).toEqual(expect.arrayContaining(['8867-4', '8480-6', '8462-4', '29463-7']))
    for (const series of vitals.series) expect(series.points.length).toBeGreaterThanOrEqual(8)
    expect((await get('/api/conditions')).body.length).toBeGreaterThan(0)
    expect((await get('/api/medications')).body.length).toBeGreaterThan(0)

    const bodies = [context, ...(await Promise.all(['/api/patient', '/api/vitals'].map(get)))].map((r) => JSON.stringify(r.headers) + r.text).join('\n')
    const tokens = new Set(example.ehr.fhirLog.map((entry) => entry.accessToken).filter((t): t is string => !!t))
    expect(tokens.size).toBeGreaterThan(0)
    for (const token of tokens) expect(bodies).not.toContain(token)
  })

  it('refuses an unlaunched or missing patient with the relaunch codes', async () => {
    const browser = agent()
    await launchAs(browser, example.ehr, { patient: 'patient-1' })
    expect((await browser.get('/api/patient').set('X-Active-Patient', 'patient-3').expect(403)).body.code).toBe('UNKNOWN_PATIENT')
    expect((await agent().get('/api/patient').expect(401)).body.code).toBe('NO_SESSION')
  })
})

describe('the example app on PostgreSQL (DATABASE_URL)', () => {
  let onPostgres: RunningExample
  beforeAll(async () => {
    const databaseUrl = process.env.DATABASE_URL
    if (!databaseUrl) throw new Error('DATABASE_URL is not set: the tests start a PostgreSQL cluster (__tests__/helpers/global-setup.ts)')
    onPostgres = await startExample({ databaseUrl })
  })
  afterAll(() => onPostgres.close())

  it('launches, serves the patient and keeps the session in the database', async () => {
    const browser = request.agent(onPostgres.appUrl)
    const { patient } = await launchAs(browser, onPostgres.ehr, { patient: 'patient-3' })
    expect((await browser.get('/api/patient').set('X-Active-Patient', patient).expect(200)).body).toMatchObject({ id: 'patient-3' })
    const { Pool } = await import('pg')
    const pool = new Pool({ connectionString: process.env.DATABASE_URL })
    try {
      const rows = await pool.query(`SELECT count(*)::int AS n FROM example_app_sessions WHERE sid LIKE 'smart:session:%'`)
      expect(rows.rows[0].n).toBeGreaterThanOrEqual(1)
    } finally {
      await pool.end()
    }
  })
})
