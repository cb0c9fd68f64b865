// Issue 9, property (a): smartLaunch() under arbitrary query strings, over Express 5's simple query parser
// and the extended (qs) one. Every answer is a 302 to the EHR's authorization endpoint — only for a valid
// iss and launch of an allowed EHR — or a documented 4xx { code, message } (a 502 DISCOVERY_FAILED only
// when discovery was tried); never a 5xx, a crash or a hang; a refused launch stores nothing and sets no cookie.
import fc from 'fast-check'
import type { Express } from 'express'
import type { Store } from 'express-session'
import { expressSessionStorage, type SmartClientConfiguration } from '../../../lib'
import { createMockEhr, type MockEhr } from '../../../lib/testing'
import { recordingStorage, testApp } from '../../helpers/app'
import {
  errorCodeOf, listening, Outcomes, propertyParameters, propertyRuns, propertyStores, propertyTimeout, rawQueryOf, setCookiesOf, setsCookie, type Answer, type Listening,
} from '../../helpers/properties'
import { queryTemplate, renderQuery, type QueryTemplate } from '../../helpers/query-fuzz'

const PARSERS = ['simple', 'extended'] as const
const MODES = ['closed', 'open'] as const
type Parser = (typeof PARSERS)[number]
type Mode = (typeof MODES)[number]

const CALLBACK_URL = 'http://app.test/callback'
const MAX_PARAM = 4096

let ehr: MockEhr
let authorizationEndpoint: string
let launchId: string
beforeAll(async () => {
  ehr = await createMockEhr()
  authorizationEndpoint = ((await (await fetch(`${ehr.iss}/.well-known/smart-configuration`)).json()) as { authorization_endpoint: string }).authorization_endpoint
  launchId = new URL(ehr.launchUrl('http://app.test/launch', { patient: 'patient-1' })).searchParams.get('launch')!
})
afterAll(() => ehr.close())

describe.each(propertyStores())('smartLaunch query strings over %s', (_name, kind) => {
  let store: Store
  let closeStore: () => Promise<void>
  let writes: Array<{ key: string }>
  /** Every outbound URL (discovery); other hosts than the mock EHR get a 404 without leaving the machine. */
  const outbound: string[] = []
  const apps = new Map<string, Listening & { seen: { query: Record<string, unknown> | null } }>()

  beforeAll(async () => {
    ;({ store, close: closeStore } = await kind.open())
    const recorded = recordingStorage(expressSessionStorage(store))
    writes = recorded.writes
    for (const mode of MODES) {
      for (const parser of PARSERS) {
        const config: Partial<SmartClientConfiguration> = mode === 'closed'
          ? ({ allowAnyIssuer: undefined, knownFhirServers: [{ issuer: ehr.iss, type: 'public' }] } as never)
          : { allowAnyIssuer: true }
        const ehrOrigin = new URL(ehr.iss).origin
        const recordingFetch: typeof fetch = async (input, init) => {
          const url = String(input instanceof Request ? input.url : input)
          outbound.push(url)
          if (new URL(url).origin !== ehrOrigin) return new Response('not here', { status: 404 })
          return fetch(input, init)
        }
        const app: Express = testApp({ store, storage: recorded.storage, jsonErrors: true, config: { callbackUrl: CALLBACK_URL, ...config }, options: { allowNonHttpsLaunch: true, fetch: recordingFetch, httpTimeoutMs: 5000 } })
        app.set('query parser', parser)
        const parse = app.get('query parser fn') as (raw: string) => Record<string, unknown>
        const seen: { query: Record<string, unknown> | null } = { query: null }
        const server = await listening(app, (req) => (seen.query = parse(rawQueryOf(req))))
        apps.set(`${mode} ${parser}`, { ...server, seen })
      }
    }
  })
  afterAll(async () => {
    for (const app of apps.values()) await app.close()
    await closeStore()
  })

  const validParam = (value: unknown): value is string => typeof value === 'string' && value !== '' && value.length <= MAX_PARAM
  const isEhr = (iss: string) => iss === ehr.iss || iss === `${ehr.iss}/`

  const outcomes = new Outcomes()

  async function check(mode: Mode, parser: Parser, path: string): Promise<void> {
    const app = apps.get(`${mode} ${parser}`)!
    const wrote = writes.length
    const sent = outbound.length
    const res = (await app.get(path)) as unknown as Answer
    const query = app.seen.query!
    // As the middleware reads them: `req.query.iss`, inherited properties included.
    const { iss, launch } = query as { iss?: unknown; launch?: unknown }
    const valid = validParam(iss) && validParam(launch)
    const newWrites = writes.slice(wrote).map((w) => w.key)
    const context = `${mode} ${parser} ${path.slice(0, 300)} → ${res.status} ${res.text.slice(0, 200)}`
    try {
      if (res.status === 302) {
        expect(valid).toBe(true)
        if (mode === 'closed') expect(isEhr(iss as string)).toBe(true)
        const location = new URL(res.headers.location as string)
        expect(`${location.origin}${location.pathname}`).toBe(authorizationEndpoint)
        expect(location.searchParams.get('aud')).toBe(iss)
        expect(location.searchParams.get('launch')).toBe(launch)
        expect(location.searchParams.get('redirect_uri')).toBe(CALLBACK_URL)
        expect(location.searchParams.get('code_challenge_method')).toBe('S256')
        expect(newWrites).toHaveLength(1)
        expect(newWrites[0]).toMatch(/^pending:/)
        expect(setsCookie(res)).toBe(true)
        // S34: the session cookie, and the launch cookie binding this launch to this browser (HttpOnly, a pending launch's lifetime).
        const cookies = setCookiesOf(res)
        expect(cookies.some((cookie) => cookie.startsWith('connect.sid='))).toBe(true)
        expect(cookies.filter((cookie) => /^smart-launch-[\w-]{16}=[\w-]{43};/.test(cookie))).toEqual([expect.stringMatching(/; HttpOnly; Max-Age=600;/)])
        outcomes.add(`302 ${mode}`)
        return
      }
      // A valid launch of the EHR itself must go through, in either mode.
      expect(valid && isEhr(iss as string)).toBe(false)
      const code = errorCodeOf(res, ['MISSING_PARAMETER', 'UNKNOWN_ISSUER', 'INSECURE_ISSUER', 'DISCOVERY_FAILED'])
      if (!valid) expect(code).toBe('MISSING_PARAMETER')
      if (mode === 'closed') {
        // S1: the allow-list comes before any network call.
        expect(outbound.length).toBe(sent)
        if (valid) expect(code).toBe('UNKNOWN_ISSUER')
      }
      if (code === 'DISCOVERY_FAILED') expect(outbound.length).toBeGreaterThan(sent)
      expect(newWrites).toEqual([])
      expect(setsCookie(res)).toBe(false)
      outcomes.add(`${res.status} ${code} ${mode}`)
    } catch (err) {
      throw new Error(`${context}\n${(err as Error).message}`)
    }
  }

  it('property: a 302 to the EHR only for a valid launch of an allowed EHR, otherwise a documented 4xx, nothing stored', async () => {
    const refs = () => ({ iss: ehr.iss, launch: launchId })
    await fc.assert(
      fc.asyncProperty(queryTemplate(['iss', 'launch']), fc.constantFrom(...MODES), fc.constantFrom(...PARSERS), async (template, mode, parser) => {
        await check(mode, parser, `/launch${renderQuery(template, refs())}`)
      }),
      propertyParameters<[QueryTemplate, Mode, Parser]>([
        [{ entries: [{ key: 'iss', value: { ref: 'iss', alter: 'encoded' } }, { key: 'launch', value: { ref: 'launch', alter: 'encoded' } }], separator: '&' }, 'closed', 'simple'],
        [{ entries: [{ key: 'iss[toString]', value: { text: 'x' } }, { key: 'launch[valueOf]', value: { text: 'x' } }], separator: '&' }, 'open', 'extended'],
        [{ entries: [{ key: 'iss', value: { ref: 'iss', alter: 'encoded' } }, { key: 'launch', value: { text: 'a'.repeat(4097) } }], separator: '&' }, 'closed', 'extended'],
      ]),
    )
    outcomes.report('smartLaunch query strings')
    // The generators reach every kind of answer; a good share are redirects.
    outcomes.expectReached(['400 MISSING_PARAMETER', '403 UNKNOWN_ISSUER', '400 INSECURE_ISSUER', '502 DISCOVERY_FAILED'])
    for (const mode of MODES) expect(outcomes.count(`302 ${mode}`)).toBeGreaterThan(propertyRuns() / 50)
  }, propertyTimeout(30))
})
