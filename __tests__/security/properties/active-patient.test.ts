// Issue 9, property (c): requireSmartContext() under arbitrary X-Active-Patient headers (S27, S35), against
// one browser session per mode: multi-launch with patient-1 and patient-2 of EHR A and patient-1 of EHR B, and
// single-launch where patient-2 of EHR A replaced patient-1. Selectors are a pure function of (EHR, patient):
// `<patient id>_<EHR tag>` here (any issuer allowed). A 200 only for exactly a live launch's selector, or for
// a bare patient id that exactly one live launch of the session has, with that launch's patient and EHR and
// nothing of another launch; otherwise a documented 400/403 — never a 5xx, never a guess. Without the header:
// 400 in both modes (single-launch: its launch was replaced, the page may still show the first patient).
import { createHash } from 'node:crypto'
import fc from 'fast-check'
import type { Store } from 'express-session'
import { createMockEhr, type MockEhr } from '../../../lib/testing'
import { pathOf, testApp, withCookies } from '../../helpers/app'
import {
  errorCodeOf, listening, Outcomes, propertyParameters, propertyRuns, propertyStores, propertyTimeout, type Answer, type Listening,
} from '../../helpers/properties'

const MODES = ['multi', 'single'] as const
type Mode = (typeof MODES)[number]
const ROUTES = ['/api/context', '/api/context', '/api/patient'] as const
type Route = (typeof ROUTES)[number]

interface Launched {
  selector: string
  iss: string
  patient: string
}

let ehrA: MockEhr
let ehrB: MockEhr
beforeAll(async () => {
  ehrA = await createMockEhr()
  ehrB = await createMockEhr()
})
afterAll(async () => {
  await ehrA.close()
  await ehrB.close()
})

/** The EHR tag of a selector, computed here (not by the library): 12 base64url characters of the issuer's SHA-256. */
const tagOf = (iss: string) => createHash('sha256').update(iss).digest('base64url').slice(0, 12)
/** The bare patient id of a qualified selector, and its EHR tag. */
const patientOf = (selector: string) => selector.slice(0, selector.lastIndexOf('_'))
const ehrTagOf = (selector: string) => selector.slice(selector.lastIndexOf('_') + 1)
/** What a bare patient id may be (FHIR id syntax): the only headers besides a selector that may select a launch. */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/

/** How a selector is spelled in the header: as it is, its bare patient id, or near it. */
const SPELLINGS = [
  'exact', 'exact', 'exact', 'exact', 'exact', 'exact', 'exact', 'exact', 'bare', 'bare', 'padded', 'upper', 'lower', 'truncated', 'suffixed', 'prefixed-handle', 'percent', 'lookalike', 'nul', 'doubled', 'untagged',
] as const
type Spelling = (typeof SPELLINGS)[number]

function spell(selector: string, how: Spelling): string {
  switch (how) {
    case 'exact': return selector
    case 'bare': return patientOf(selector)
    case 'untagged': return `${patientOf(selector)}_`
    case 'padded': return ` ${selector}\t`
    case 'upper': return selector.toUpperCase()
    case 'lower': return selector.toLowerCase()
    case 'truncated': return selector.slice(0, -1)
    case 'suffixed': return `${selector}.`
    case 'prefixed-handle': return `launch_${selector}`
    case 'percent': return selector.replace(/-/g, '%2D')
    case 'lookalike': return selector.replace(/-/g, '\u2010')
    case 'nul': return `${selector}\u0000`
    case 'doubled': return `${selector}${selector}`
  }
}

/** A launched selector, spelled; one launch's patient with another launch's EHR tag (a selector of a launch that never was); or text. */
type Part = { ref: number; how: Spelling } | { patientOf: number; tagOf: number } | { text: string }

/** Header values: spellings of the launched selectors, crossed ones, joined ones, selector-like and arbitrary text, long ones. */
function headerLines(): fc.Arbitrary<Part[][] | null> {
  const part: fc.Arbitrary<Part> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ ref: fc.nat({ max: 3 }), how: fc.constantFrom(...SPELLINGS) }) },
    { weight: 1, arbitrary: fc.record({ patientOf: fc.nat({ max: 3 }), tagOf: fc.nat({ max: 3 }) }) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('patient-1', 'patient-2', 'patient-3', ''), fc.stringMatching(/^[A-Za-z0-9_-]{12}$/)).map(([patient, tag]) => ({ text: `${patient}_${tag}` })) },
    { weight: 1, arbitrary: fc.stringMatching(/^launch_[A-Za-z0-9_-]{16}$/).map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9\-._]{1,66}$/).map((text) => ({ text })) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }).map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }).map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', ',', 'null', 'undefined', '*', '__proto__', 'Patient/patient-1', 'patient-1', 'patient-2', 'patient-3', 'patient-1,patient-2', 'patient-1, patient-2').map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.constantFrom(63, 64, 65, 1000, 7000).map((n) => ({ text: 'p'.repeat(n) })) },
  )
  // A line is one part or several joined by a comma; a header is absent, one line, or repeated.
  const line = fc.oneof({ weight: 4, arbitrary: part.map((p) => [p]) }, { weight: 1, arbitrary: fc.array(part, { minLength: 2, maxLength: 3 }) })
  return fc.oneof({ weight: 1, arbitrary: fc.constant(null) }, { weight: 8, arbitrary: fc.array(line, { minLength: 1, maxLength: 1 }) }, { weight: 1, arbitrary: fc.array(line, { minLength: 2, maxLength: 3 }) })
}

/** What an HTTP client can send of `text`: its UTF-8 bytes as Latin-1 (how Node reads them), without the controls it refuses. */
const sendable = (text: string) => Buffer.from(text, 'utf8').toString('latin1').replace(/[^\t\x20-\x7e\x80-\xff]/g, '')

describe.each(propertyStores())('X-Active-Patient over %s', (_name, kind) => {
  let store: Store
  let closeStore: () => Promise<void>
  const apps = new Map<Mode, Listening & { seen: { header: unknown } }>()
  const cookies = new Map<Mode, string>()
  const launched = new Map<Mode, Launched[]>()

  /** A launch by the browser holding `cookie` (a Cookie header; none: a new browser): its cookies afterwards, and the page's selector. */
  async function launch(app: Listening, ehr: MockEhr, patient: string, cookie?: string): Promise<{ cookie: string; selector: string | null }> {
    const started = app.get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient })).search}`)
    if (cookie) started.set('Cookie', cookie)
    const res = await started
    const back = await ehr.authorize(res.headers.location as string)
    const held = withCookies(cookie, res)
    const called = await app.get(pathOf(back)).set('Cookie', held)
    if (called.status !== 302) throw new Error(`callback answered ${called.status}: ${called.text}`)
    return { cookie: withCookies(held, called), selector: new URL(called.headers.location as string, 'http://app.test').searchParams.get('patient') }
  }

  beforeAll(async () => {
    ;({ store, close: closeStore } = await kind.open())
    for (const mode of MODES) {
      const app = testApp({ store, jsonErrors: true, options: { allowNonHttpsLaunch: true, enableMultiLaunch: mode === 'multi' } })
      const seen = { header: undefined as unknown }
      apps.set(mode, { ...(await listening(app, (req) => (seen.header = req.headers['x-active-patient']))), seen })
    }
    const multi = apps.get('multi')!
    let step = await launch(multi, ehrA, 'patient-1')
    const a1 = step.selector!
    step = await launch(multi, ehrA, 'patient-2', step.cookie)
    const a2 = step.selector!
    step = await launch(multi, ehrB, 'patient-1', step.cookie)
    cookies.set('multi', step.cookie)
    launched.set('multi', [
      { selector: a1, iss: ehrA.iss, patient: 'patient-1' },
      { selector: a2, iss: ehrA.iss, patient: 'patient-2' },
      { selector: step.selector!, iss: ehrB.iss, patient: 'patient-1' },
    ])
    expect(launched.get('multi')!.map((l) => l.selector)).toEqual([`patient-1_${tagOf(ehrA.iss)}`, `patient-2_${tagOf(ehrA.iss)}`, `patient-1_${tagOf(ehrB.iss)}`])

    const single = apps.get('single')!
    step = await launch(single, ehrA, 'patient-1')
    const replaced = step.selector!
    step = await launch(single, ehrA, 'patient-2', step.cookie)
    cookies.set('single', step.cookie)
    launched.set('single', [{ selector: step.selector!, iss: ehrA.iss, patient: 'patient-2' }])
    // The same (EHR, patient) has the same selector in every session, whatever the mode.
    expect([replaced, step.selector]).toEqual([`patient-1_${tagOf(ehrA.iss)}`, `patient-2_${tagOf(ehrA.iss)}`])
    const current = await single.get('/api/context').set('Cookie', step.cookie).set('X-Active-Patient', step.selector!)
    expect(current.body.patient.id).toBe('patient-2')
  })
  afterAll(async () => {
    for (const app of apps.values()) await app.close()
    await closeStore()
  })

  const outcomes = new Outcomes()
  const origin = (iss: string) => new URL(iss).origin

  async function check(mode: Mode, lines: string[] | null, route: Route): Promise<void> {
    const app = apps.get(mode)!
    const req = app.get(route).set('Cookie', cookies.get(mode)!)
    // An array is sent as repeated header lines (Node joins them with ", " on the server).
    if (lines) req.set('X-Active-Patient', (lines.length === 1 ? lines[0] : lines) as string)
    const res = (await req) as unknown as Answer
    const header = app.seen.header
    const launches = launched.get(mode)!
    // A selector names its launch; a bare id the one launch of the session with that patient id (two EHRs' patient-1: none).
    const byPatient = typeof header === 'string' && FHIR_ID.test(header) ? launches.filter((l) => l.patient === header) : []
    const chosen = launches.find((l) => l.selector === header) ?? (byPatient.length === 1 ? byPatient[0] : undefined)
    const context = `${mode} ${route} X-Active-Patient: ${JSON.stringify(header)?.slice(0, 200)} → ${res.status} ${res.text.slice(0, 200)}`
    try {
      if (chosen) {
        expect(res.status).toBe(200)
        expect(res.headers['x-smart-patient']).toBe(chosen.patient)
        expect(res.headers['x-smart-iss']).toBe(chosen.iss)
        expect(res.headers['x-active-patient']).toBe(chosen.selector)
        const body = res.body as { id?: string; patient?: { id: string }; fhirServer?: string }
        if (route === '/api/patient') {
          expect(body.id).toBe(chosen.patient)
        } else {
          expect(body.patient?.id).toBe(chosen.patient)
          expect(body.fhirServer).toBe(chosen.iss)
        }
        // Nothing of another launch: its patient id, or its EHR.
        for (const other of [...launched.get('multi')!, ...launched.get('single')!]) {
          if (other.patient !== chosen.patient) expect(res.text).not.toContain(other.patient)
          if (other.iss !== chosen.iss) expect(res.text).not.toContain(origin(other.iss))
          if (other.selector !== chosen.selector) expect(res.text).not.toContain(other.selector)
        }
        outcomes.add(`200 ${mode} ${header === chosen.selector ? 'selector' : 'bare id'}`)
        return
      }
      const code = errorCodeOf(res, ['UNKNOWN_PATIENT', 'ACTIVE_PATIENT_REQUIRED'])
      expect(code).toBe(header === undefined || header === '' ? 'ACTIVE_PATIENT_REQUIRED' : 'UNKNOWN_PATIENT')
      expect(res.text).not.toMatch(/patient-[12]/)
      outcomes.add(`${res.status} ${code} ${mode}${byPatient.length > 1 ? ' bare id of several EHRs' : ''}`)
    } catch (err) {
      throw new Error(`${context}\n${(err as Error).message}`)
    }
  }

  it('S27 S35 property: a 200 only for exactly a launched selector, or a bare id one launch alone has, with that launch and no other; otherwise 400/403, in both modes', async () => {
    const selectors = () => [...launched.get('multi')!.map((l) => l.selector), launched.get('single')![0].selector]
    await fc.assert(
      fc.asyncProperty(headerLines(), fc.constantFrom(...ROUTES), async (template, route) => {
        const refs = selectors()
        const text = (part: Part) => ('text' in part ? part.text : 'ref' in part ? spell(refs[part.ref], part.how) : `${patientOf(refs[part.patientOf])}_${ehrTagOf(refs[part.tagOf])}`)
        const lines = template && template.map((line) => sendable(line.map(text).join(',')))
        for (const mode of MODES) await check(mode, lines, route)
      }),
      propertyParameters<[Part[][] | null, Route]>([
        [[[{ ref: 0, how: 'exact' }, { ref: 1, how: 'exact' }]], '/api/patient'],
        [[[{ ref: 0, how: 'exact' }], [{ ref: 1, how: 'exact' }]], '/api/patient'],
        [[[{ text: 'launch_' }]], '/api/context'],
        [[[{ text: 'patient-1' }]], '/api/patient'],
        [[[{ patientOf: 1, tagOf: 2 }]], '/api/patient'],
        [null, '/api/context'],
      ]),
    )
    outcomes.report('X-Active-Patient')
    outcomes.expectReached(['403 UNKNOWN_PATIENT multi', '403 UNKNOWN_PATIENT single', '400 ACTIVE_PATIENT_REQUIRED multi', '400 ACTIVE_PATIENT_REQUIRED single',
      '200 multi bare id', '200 single bare id', '403 UNKNOWN_PATIENT multi bare id of several EHRs'])
    for (const mode of MODES) expect(outcomes.count(`200 ${mode}`)).toBeGreaterThan(propertyRuns() / 25)
  }, propertyTimeout(30))
})
