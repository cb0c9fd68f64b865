import express, { type Request, type Response, type Router } from 'express'
import type { FhirStore } from './fhir-store'
import type { FhirResource } from './seed-data'
import type { LaunchContext } from './types'

/** The EHR route behind each "Launch" link: mints a fresh launch id per click. */
export const EHR_LAUNCH_PATH = '/launch-app'

export interface EhrHomeOptions {
  store: FhirStore
  practitionerId: string
  /** The registered app's launch URL; without it the page lists patients but offers no launch. */
  appLaunchUrl: string | undefined
  launchUrl(appLaunchUrl: string, context: LaunchContext): string
}

/** Validates `MockEhrOptions.appLaunchUrl` once, when the mock EHR is created. */
export function checkAppLaunchUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const url = typeof value === 'string' ? URL.parse(value) : null
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new TypeError('createMockEhr: appLaunchUrl must be an absolute http(s) URL')
  }
  return url.href
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c])
}

type HumanName = { use?: string; family?: string; given?: string[]; prefix?: string[] }
type Identifier = { value?: string; type?: { coding?: Array<{ code?: string }> } }

function officialName(resource: FhirResource | undefined): HumanName {
  const names = Array.isArray(resource?.name) ? (resource.name as HumanName[]) : []
  return names.find((n) => n.use === 'official') ?? names[0] ?? {}
}

function listName(patient: FhirResource): string {
  const { family = '', given = [] } = officialName(patient)
  return [family.toUpperCase(), given.join(' ')].filter(Boolean).join(', ') || patient.id
}

function mrn(patient: FhirResource): string {
  const identifiers = Array.isArray(patient.identifier) ? (patient.identifier as Identifier[]) : []
  const mr = identifiers.find((i) => i.type?.coding?.some((c) => c.code === 'MR')) ?? identifiers[0]
  return mr?.value ?? ''
}

function age(birthDate: unknown, today: Date): string {
  if (typeof birthDate !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(birthDate)) return ''
  const [y, m, d] = birthDate.split('-').map(Number)
  const years = today.getUTCFullYear() - y - (today.getUTCMonth() + 1 < m || (today.getUTCMonth() + 1 === m && today.getUTCDate() < d) ? 1 : 0)
  return ` (${years} y)`
}

function encounterOf(store: FhirStore, patientId: string): FhirResource | undefined {
  return store.read('Encounter', `${patientId}-encounter-1`)
}

function encounterText(encounter: FhirResource | undefined): string {
  if (!encounter) return '—'
  const type = (encounter.type as Array<{ text?: string }> | undefined)?.[0]?.text
  const start = (encounter.period as { start?: string } | undefined)?.start?.slice(0, 10)
  return [type ?? (encounter.class as { display?: string } | undefined)?.display, start].filter(Boolean).join(', ')
}

function row(patient: FhirResource, store: FhirStore, canLaunch: boolean, today: Date): string {
  const id = escapeHtml(patient.id)
  const launch = canLaunch
    ? `<a class="launch" data-patient-id="${id}" href="${EHR_LAUNCH_PATH}?patient=${encodeURIComponent(patient.id)}" target="_blank" rel="noopener">Launch</a>`
    : ''
  return `<tr data-patient-id="${id}">
      <td class="name">${escapeHtml(listName(patient))}</td>
      <td class="mrn">${escapeHtml(mrn(patient))}</td>
      <td class="sex">${escapeHtml(patient.gender)}</td>
      <td class="birth-date">${escapeHtml(patient.birthDate)}${escapeHtml(age(patient.birthDate, today))}</td>
      <td class="encounter">${escapeHtml(encounterText(encounterOf(store, patient.id)))}</td>
      <td>${launch}</td>
    </tr>`
}

const STYLE = `
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933; background: #eef1f4; }
  header { display: flex; justify-content: space-between; align-items: center; padding: 10px 24px; background: #23395b; color: #fff; }
  header h1 { margin: 0; font-size: 17px; font-weight: 600; letter-spacing: .02em; }
  main { max-width: 1000px; margin: 24px auto; padding: 0 16px; }
  section { background: #fff; border: 1px solid #d5dbe1; border-radius: 6px; }
  h2 { margin: 0; padding: 12px 16px; font-size: 15px; border-bottom: 1px solid #d5dbe1; }
  table { width: 100%; border-collapse: collapse; }
  th, td { padding: 9px 16px; text-align: left; border-bottom: 1px solid #eef1f4; }
  th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #52606d; background: #f7f9fa; }
  tr:last-child td { border-bottom: 0; }
  td.name { font-weight: 600; }
  td.sex { text-transform: capitalize; }
  a.launch { display: inline-block; padding: 4px 14px; border-radius: 4px; background: #2f6fb3; color: #fff; text-decoration: none; font-weight: 600; }
  a.launch:hover, a.launch:focus { background: #23578f; }
  .notice { margin: 0; padding: 12px 16px; color: #8a4b08; background: #fff7e6; border-bottom: 1px solid #f0d9a8; }
`

function page(title: string, header: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>Mock EHR</h1><span id="ehr-user">${header}</span></header>
<main>${body}</main>
</body>
</html>
`
}

function send(res: Response, status: number, html: string): void {
  // The page has no scripts; only its own inline style may apply.
  res.set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
  res.set('Cache-Control', 'no-store')
  res.status(status).type('html').send(html)
}

/**
 * The EHR's home page: a patient list with a "Launch" link per patient, and the route those links
 * open, which mints a launch id per click and redirects to the app's launch URL.
 */
export function createEhrHome(options: EhrHomeOptions): Router {
  const { store, practitionerId, appLaunchUrl } = options
  const router = express.Router()

  router.get('/', function ehrHomePage(_req: Request, res: Response) {
    const practitioner = officialName(store.read('Practitioner', practitionerId))
    const user = [...(practitioner.prefix ?? []), ...(practitioner.given ?? []), practitioner.family].filter(Boolean).join(' ')
    const patients = store.search('Patient', new URLSearchParams()).sort((a, b) => a.id.localeCompare(b.id))
    const today = new Date()
    const notice = appLaunchUrl
      ? ''
      : '<p class="notice" id="no-app">No SMART app is registered with this EHR, so there is nothing to launch (start the mock EHR with <code>appLaunchUrl</code>).</p>'
    const rows = patients.map((p) => row(p, store, appLaunchUrl !== undefined, today)).join('')
    send(res, 200, page('Mock EHR — Patients', `Signed in as ${escapeHtml(user || practitionerId)}`, `
<section id="patients">
  <h2>Patient list</h2>
  ${notice}
  <table>
    <thead><tr><th>Name</th><th>MRN</th><th>Sex</th><th>Birth date</th><th>Current encounter</th><th><span hidden>Action</span></th></tr></thead>
    <tbody>
    ${rows}
    </tbody>
  </table>
</section>`))
  })

  router.get(EHR_LAUNCH_PATH, function ehrLaunchApp(req: Request, res: Response) {
    const patientId = typeof req.query.patient === 'string' ? req.query.patient : ''
    if (!appLaunchUrl) {
      send(res, 404, page('No app registered', '', '<p class="notice">No SMART app is registered with this EHR.</p>'))
      return
    }
    if (!patientId || !store.read('Patient', patientId)) {
      send(res, 404, page('Unknown patient', '', `<p class="notice">Unknown patient ${escapeHtml(patientId)}.</p>`))
      return
    }
    const context: LaunchContext = { patient: patientId, needPatientBanner: true }
    if (encounterOf(store, patientId)) context.encounter = `${patientId}-encounter-1`
    res.set('Cache-Control', 'no-store')
    res.redirect(302, options.launchUrl(appLaunchUrl, context))
  })

  return router
}
