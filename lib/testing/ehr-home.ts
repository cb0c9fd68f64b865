import express, { type Request, type Response, type Router } from 'express'
import { EHR_FRAME_PATH, framePage, frameSources } from './ehr-frame'
import type { FhirStore } from './fhir-store'
import { age, displayName, escapeHtml, listName, mrn, page, sendPage } from './html'
import type { FhirResource } from './seed-data'
import type { LaunchContext } from './types'

/** The EHR route behind each "Launch" link: mints a fresh launch id per click. */
export const EHR_LAUNCH_PATH = '/launch-app'

export interface EhrHomeOptions {
  store: FhirStore
  practitionerId: string
  fhirBase: string
  /** The registered app's launch URL; without it the page lists patients but offers no launch. */
  appLaunchUrl: string | undefined
  /** The registered app's standalone login URL; the page links to it with `?iss=` when it is set. */
  appLoginUrl: string | undefined
  launchUrl(appLaunchUrl: string, context: LaunchContext): string
}

/** Validates `MockEhrOptions.appLaunchUrl` and `appLoginUrl` once, when the mock EHR is created. */
export function checkAppUrl(name: 'appLaunchUrl' | 'appLoginUrl', value: string | undefined): string | undefined {
  if (value === undefined) return undefined
  const url = typeof value === 'string' ? URL.parse(value) : null
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new TypeError(`createMockEhr: ${name} must be an absolute http(s) URL`)
  }
  return url.href
}

/** `appLoginUrl?iss=<FHIR base>`, keeping the app's own query: where a standalone launch starts. */
function standaloneUrl(appLoginUrl: string, fhirBase: string): string {
  const url = new URL(appLoginUrl)
  url.searchParams.set('iss', fhirBase)
  return url.href
}

function standaloneSection(appLoginUrl: string | undefined, fhirBase: string): string {
  if (!appLoginUrl) return ''
  return `
<section id="standalone">
  <h2>Outside the EHR</h2>
  <p class="intro">A standalone launch: the app starts on its own and asks this EHR for a patient, which you choose at the EHR's patient picker.</p>
  <p class="actions"><a class="launch" id="standalone-launch" href="${escapeHtml(standaloneUrl(appLoginUrl, fhirBase))}" target="_blank" rel="noopener">Open the app outside the EHR (standalone)</a><a class="launch-in-frame" id="standalone-in-frame" href="${EHR_FRAME_PATH}" target="_blank" rel="noopener">Open the app in the EHR frame (standalone)</a></p>
</section>`
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
  const query = `?patient=${encodeURIComponent(patient.id)}`
  // "Launch": the app in a tab of its own; "Launch in the EHR frame": the app inside the EHR's page (ehr-frame.ts).
  const launch = canLaunch
    ? `<a class="launch" data-patient-id="${id}" href="${EHR_LAUNCH_PATH}${query}" target="_blank" rel="noopener">Launch</a>` +
      `<a class="launch-in-frame" data-patient-id="${id}" href="${EHR_FRAME_PATH}${query}" target="_blank" rel="noopener">Launch in the EHR frame</a>`
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

/**
 * The EHR's home page: a patient list with a "Launch" link per patient, and the route those links
 * open, which mints a launch id per click and redirects to the app's launch URL; beside each, "Launch in
 * the EHR frame": the EHR's page showing the app in a frame of its own (ehr-frame.ts). Above it, with
 * `appLoginUrl`, the way into the app outside the EHR (a standalone launch), and the same in the EHR's frame.
 */
export function createEhrHome(options: EhrHomeOptions): Router {
  const { store, practitionerId, fhirBase, appLaunchUrl, appLoginUrl } = options
  const router = express.Router()

  router.get('/', function ehrHomePage(_req: Request, res: Response) {
    const user = displayName(store.read('Practitioner', practitionerId))
    const patients = store.search('Patient', new URLSearchParams()).sort((a, b) => a.id.localeCompare(b.id))
    const today = new Date()
    const notice = appLaunchUrl
      ? ''
      : appLoginUrl
        ? '<p class="notice" id="no-launch-url">The app has no launch URL registered with this EHR, so it cannot be launched for a patient (start the mock EHR with <code>appLaunchUrl</code>).</p>'
        : '<p class="notice" id="no-app">No SMART app is registered with this EHR, so there is nothing to launch (start the mock EHR with <code>appLaunchUrl</code>).</p>'
    const rows = patients.map((p) => row(p, store, appLaunchUrl !== undefined, today)).join('')
    sendPage(res, 200, page('Mock EHR — Patients', `Signed in as ${escapeHtml(user || practitionerId)}`, `${standaloneSection(appLoginUrl, fhirBase)}
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
      sendPage(res, 404, page('No app registered', '', '<p class="notice">No SMART app is registered with this EHR.</p>'))
      return
    }
    if (!patientId || !store.read('Patient', patientId)) {
      sendPage(res, 404, page('Unknown patient', '', `<p class="notice">Unknown patient ${escapeHtml(patientId)}.</p>`))
      return
    }
    const context: LaunchContext = { patient: patientId, needPatientBanner: true }
    if (encounterOf(store, patientId)) context.encounter = `${patientId}-encounter-1`
    res.set('Cache-Control', 'no-store')
    res.redirect(302, options.launchUrl(appLaunchUrl, context))
  })

  router.get(EHR_FRAME_PATH, function ehrAppFrame(req: Request, res: Response) {
    const patientId = typeof req.query.patient === 'string' ? req.query.patient : undefined
    // With a patient: an EHR launch, a fresh launch id per load of the page; without: the app's standalone login.
    const src = patientId !== undefined ? appLaunchUrl && `${EHR_LAUNCH_PATH}?patient=${encodeURIComponent(patientId)}` : appLoginUrl && standaloneUrl(appLoginUrl, fhirBase)
    if (!src) {
      sendPage(res, 404, page('No app registered', '', `<p class="notice">No SMART app ${patientId !== undefined ? 'launch URL' : 'login URL'} is registered with this EHR.</p>`))
      return
    }
    const patient = patientId !== undefined ? store.read('Patient', patientId) : undefined
    if (patientId !== undefined && !patient) {
      sendPage(res, 404, page('Unknown patient', '', `<p class="notice">Unknown patient ${escapeHtml(patientId)}.</p>`))
      return
    }
    const user = displayName(store.read('Practitioner', practitionerId)) || practitionerId
    sendPage(res, 200, framePage({ user, patient, src, today: new Date() }), { frameSrc: frameSources([appLaunchUrl, appLoginUrl]) })
  })

  return router
}
