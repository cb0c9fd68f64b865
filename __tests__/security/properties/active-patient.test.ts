// Issue 9, property (c): requireSmartContext() under arbitrary X-Active-Patient headers (S27), against one
// browser session per mode: multi-launch with patient-1 and patient-2 of EHR A and patient-1 of EHR B (a
// handle selects that one), and single-launch where patient-2 replaced patient-1. A 200 only for exactly
// a launched selector (single-launch: also without the header), with that launch's patient and EHR and
// nothing of another launch; otherwise a documented 400/403 — never a 5xx, never a guess.
import fc from 'fast-check'
import type { Store } from 'express-session'
import { createMockEhr, type MockEhr } from '../../../lib/testing'
import { pathOf, sessionCookie, testApp } from '../../helpers/app'
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

/** How a selector is spelled in the header: as it is, or near it. */
const SPELLINGS = [
  'exact', 'exact', 'exact', 'exact', 'exact', 'exact', 'exact', 'exact', 'padded', 'upper', 'lower', 'truncated', 'suffixed', 'prefixed-handle', 'percent', 'lookalike', 'nul', 'doubled',
] as const
type Spelling = (typeof SPELLINGS)[number]

function spell(selector: string, how: Spelling): string {
  switch (how) {
    case 'exact': return selector
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

type Part = { ref: number; how: Spelling } | { text: string }

/** Header values: spellings of the launched selectors, joined ones, handle-like and arbitrary text, long ones. */
function headerLines(): fc.Arbitrary<Part[][] | null> {
  const part: fc.Arbitrary<Part> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ ref: fc.nat({ max: 3 }), how: fc.constantFrom(...SPELLINGS) }) },
    { weight: 1, arbitrary: fc.stringMatching(/^launch_[A-Za-z0-9_-]{16}$/).map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9\-._]{1,66}$/).map((text) => ({ text })) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 30 }).map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 30 }).map((text) => ({ text })) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', ',', 'null', 'undefined', '*', '__proto__', 'Patient/patient-1', 'patient-1,patient-2', 'patient-1, patient-2').map((text) => ({ text })) },
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

  async function launch(app: Listening, ehr: MockEhr, patient: string, cookie?: string): Promise<{ cookie: string; selector: string | null }> {
    const started = app.get(`/launch${new URL(ehr.launchUrl('http://app.test/launch', { patient })).search}`)
    if (cookie) started.set('Cookie', cookie)
    const res = await started
    const back = await ehr.authorize(res.headers.location as string)
    const called = await app.get(pathOf(back)).set('Cookie', sessionCookie(res) ?? cookie!)
    if (called.status !== 302) throw new Error(`callback answered ${called.status}: ${called.text}`)
    return { cookie: sessionCookie(called)!, selector: new URL(called.headers.location as string, 'http://app.test').searchParams.get('patient') }
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
    expect(launched.get('multi')!.map((l) => l.selector)).toEqual(['patient-1', 'patient-2', expect.stringMatching(/^launch_/)])

    const single = apps.get('single')!
    step = await launch(single, ehrA, 'patient-1')
    step = await launch(single, ehrA, 'patient-2', step.cookie)
    cookies.set('single', step.cookie)
    const current = await single.get('/api/context').set('Cookie', step.cookie)
    launched.set('single', [{ selector: current.headers['x-active-patient'] as string, iss: ehrA.iss, patient: 'patient-2' }])
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
    const chosen = launches.find((l) => l.selector === header) ?? (mode === 'single' && (header === undefined || header === '') ? launches[0] : undefined)
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
        }
        outcomes.add(`200 ${mode}`)
        return
      }
      const code = errorCodeOf(res, ['UNKNOWN_PATIENT', 'ACTIVE_PATIENT_REQUIRED'])
      expect(code).toBe(header === undefined || header === '' ? 'ACTIVE_PATIENT_REQUIRED' : 'UNKNOWN_PATIENT')
      expect(res.text).not.toMatch(/patient-[12]/)
      outcomes.add(`${res.status} ${code} ${mode}`)
    } catch (err) {
      throw new Error(`${context}\n${(err as Error).message}`)
    }
  }

  it('S27 property: a 200 only for exactly a launched selector, with that launch and no other; otherwise 400/403, in both modes', async () => {
    const selectors = () => [...launched.get('multi')!.map((l) => l.selector), launched.get('single')![0].selector]
    await fc.assert(
      fc.asyncProperty(headerLines(), fc.constantFrom(...ROUTES), async (template, route) => {
        const refs = selectors()
        const lines = template && template.map((line) => sendable(line.map((part) => ('text' in part ? part.text : spell(refs[part.ref], part.how))).join(',')))
        for (const mode of MODES) await check(mode, lines, route)
      }),
      propertyParameters<[Part[][] | null, Route]>([
        [[[{ ref: 0, how: 'exact' }, { ref: 1, how: 'exact' }]], '/api/patient'],
        [[[{ ref: 0, how: 'exact' }], [{ ref: 1, how: 'exact' }]], '/api/patient'],
        [[[{ text: 'launch_' }]], '/api/context'],
      ]),
    )
    outcomes.report('X-Active-Patient')
    outcomes.expectReached(['403 UNKNOWN_PATIENT multi', '403 UNKNOWN_PATIENT single', '400 ACTIVE_PATIENT_REQUIRED multi'])
    for (const mode of MODES) expect(outcomes.count(`200 ${mode}`)).toBeGreaterThan(propertyRuns() / 25)
  }, propertyTimeout(30))
})
