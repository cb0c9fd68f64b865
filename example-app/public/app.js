// The example clinician app's page: plain browser JavaScript, no build step (ES modules).
// Multi-launch: each tab keeps its own patient id in sessionStorage and names it in every API call.

import { $, ageInYears, bannerName, capitalise, displayName, el, formatDate, formatDateTime, mrnOf } from './format.js'
import { renderVitals } from './vitals-chart.js'

const STORAGE_KEY = 'activePatient'
// The EHR (X-Smart-Iss) this tab's launch came from, pinned at its first answer.
const EHR_KEY = 'activeEhr'
// These answers mean the session cannot serve this tab: only a new launch from the EHR helps.
const RELAUNCH_CODES = ['NO_SESSION', 'SESSION_EXPIRED', 'UNKNOWN_PATIENT', 'ACTIVE_PATIENT_REQUIRED', 'WRONG_PATIENT']

// ---- active patient -------------------------------------------------------------------------

/**
 * Moves `?patient=` from the URL into this tab's sessionStorage; returns the tab's value or null. The value
 * selects this tab's launch: `<patient id>_<EHR tag>`, or the bare patient id in an app of one EHR.
 */
function takeActivePatient() {
  const url = new URL(window.location.href)
  const fromUrl = url.searchParams.get('patient')
  if (fromUrl) {
    sessionStorage.setItem(STORAGE_KEY, fromUrl)
    // A new launch in this tab: its EHR is pinned again at its first answer.
    sessionStorage.removeItem(EHR_KEY)
    url.searchParams.delete('patient')
    // Keep the id out of bookmarks, history and shared links.
    history.replaceState(history.state, '', url.pathname + url.search + url.hash)
  }
  return sessionStorage.getItem(STORAGE_KEY) || null
}

// ---- API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }

  get needsRelaunch() {
    return RELAUNCH_CODES.includes(this.code)
  }
}

async function api(path, patient) {
  let response
  try {
    response = await fetch(path, {
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json', 'X-Active-Patient': patient },
    })
  } catch {
    throw new ApiError(0, 'NETWORK', 'The app could not be reached. Check the connection and try again.')
  }
  const body = await response.json().catch(() => undefined)
  // Every answer names the launch it was served for — selector, patient and EHR: anything but this tab's is never shown.
  if (response.ok && !isThisTabs(response.headers, patient)) {
    throw new ApiError(response.status, 'WRONG_PATIENT', 'The app answered for another patient than this tab\'s.')
  }
  if (!response.ok) {
    const code = body && typeof body.code === 'string' ? body.code : 'HTTP_' + response.status
    const message = body && typeof body.message === 'string' ? body.message : 'The app answered ' + response.status + '.'
    throw new ApiError(response.status, code, message)
  }
  if (body === undefined) throw new ApiError(response.status, 'INVALID_RESPONSE', 'The app sent an answer the page cannot read.')
  return { body, fhirServer: response.headers.get('X-Smart-Iss') }
}

/**
 * Whether an answer was served for this tab's launch: the echo of its selector, the patient the selector names
 * (its part before `_`), and the EHR of the tab's first answer (pinned in sessionStorage).
 */
function isThisTabs(headers, patient) {
  if (headers.get('X-Active-Patient') !== patient) return false
  const patientId = patient.split('_')[0]
  if (patientId && headers.get('X-Smart-Patient') !== patientId) return false
  const iss = headers.get('X-Smart-Iss')
  const pinned = sessionStorage.getItem(EHR_KEY)
  if (pinned === null && iss) sessionStorage.setItem(EHR_KEY, iss)
  return pinned === null || pinned === iss
}

/** Ends this tab's launch at the app (its tokens are revoked) and forgets the tab's patient. */
async function closePatient(patient) {
  $('close-patient').disabled = true
  try {
    await fetch('/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-Active-Patient': patient } })
  } finally {
    sessionStorage.removeItem(STORAGE_KEY)
    sessionStorage.removeItem(EHR_KEY)
    showRelaunch('closed')
  }
}

// ---- page states ----------------------------------------------------------------------------

function clearPatientData() {
  const banner = $('patient-banner')
  banner.hidden = true
  banner.removeAttribute('data-patient-id')
  for (const field of banner.querySelectorAll('[data-field]')) field.textContent = ''
  for (const id of ['practitioner', 'encounter', 'vitals-chart', 'conditions', 'medications']) $(id).replaceChildren()
  document.body.removeAttribute('data-patient-id')
  document.body.removeAttribute('data-fhir-server')
  $('close-patient').hidden = true
}

/** Shows exactly one of: loading, relaunch, error, content. */
function showState(state) {
  for (const id of ['loading', 'relaunch', 'error', 'content']) $(id).hidden = id !== state
  document.body.setAttribute('data-state', state)
}

/**
 * The relaunch state; `reason` 'closed' when the user closed the patient, 'failed' when a launch failed,
 * 'framed-cookie' when a launch in the EHR's frame was refused. Offers a standalone sign-in too, except where
 * it would be refused the same way.
 */
function showRelaunch(reason = 'ended') {
  clearPatientData()
  $('relaunch').setAttribute('data-reason', reason)
  document.title = 'Launch again — Clinician view'
  showState('relaunch')
  if (reason !== 'framed-cookie') showSignIn()
}

/** "Sign in with <EHR>": a standalone launch; the EHR asks which patient, the callback brings it to this page. */
async function showSignIn() {
  const ehrs = await fetch('/ehrs', { headers: { Accept: 'application/json' } }).then((r) => (r.ok ? r.json() : []), () => [])
  if (!Array.isArray(ehrs) || ehrs.length === 0) return
  $('sign-in-links').replaceChildren(...ehrs.map((ehr) =>
    el('li', {}, el('a', { class: 'button sign-in-link', href: '/login?iss=' + encodeURIComponent(ehr.iss) }, 'Sign in with ' + ehr.name))))
  $('sign-in').hidden = false
}

function showError(error) {
  clearPatientData()
  $('error').querySelector('[data-field="message"]').textContent =
    error instanceof ApiError ? error.message : 'The clinical data could not be loaded.'
  document.title = 'Error — Clinician view'
  showState('error')
}

// ---- rendering ------------------------------------------------------------------------------

function renderBanner(patient, show) {
  const banner = $('patient-banner')
  const field = (name) => banner.querySelector('[data-field="' + name + '"]')
  const age = ageInYears(patient.birthDate)
  field('name').textContent = bannerName(patient)
  field('sex').textContent = capitalise(patient.gender) || 'Unknown'
  field('birthDate').textContent = patient.birthDate ? formatDate(patient.birthDate) + (age === null ? '' : ' (' + age + ' y)') : 'Unknown'
  field('mrn').textContent = mrnOf(patient)
  banner.setAttribute('data-patient-id', patient.id)
  banner.hidden = !show
}

function renderPractitioner(practitioner) {
  const name = displayName(practitioner, { withPrefix: true })
  $('practitioner').replaceChildren(name ? el('span', { class: 'signed-in' }, 'Signed in as ', el('strong', {}, name)) : '')
}

function renderEncounter(encounter) {
  const target = $('encounter')
  if (!encounter) {
    target.replaceChildren(el('p', { class: 'empty' }, 'No current encounter.'))
    return
  }
  const type = Array.isArray(encounter.type) && encounter.type[0]
    ? encounter.type[0].text || (encounter.type[0].coding && encounter.type[0].coding[0] && encounter.type[0].coding[0].display)
    : ''
  const klass = encounter.class ? encounter.class.display || encounter.class.code : ''
  const period = encounter.period || {}
  const when = period.start
    ? formatDateTime(period.start) + (period.end ? ' – ' + formatDateTime(period.end) : ' – ongoing')
    : ''
  const facts = [['Type', type], ['Class', capitalise(klass)], ['Status', capitalise(encounter.status)], ['Period', when]]
  target.replaceChildren(el('dl', { class: 'facts' },
    ...facts.filter(([, value]) => value).map(([label, value]) => el('div', {}, el('dt', {}, label), el('dd', {}, value)))))
}

function renderList(id, items, emptyText, describe) {
  const list = $(id)
  if (!Array.isArray(items) || items.length === 0) {
    list.replaceChildren(el('li', { class: 'empty' }, emptyText))
    return
  }
  list.replaceChildren(...items.map((item) => {
    const { title, detail, status } = describe(item)
    return el('li', {},
      el('span', { class: 'item-title' }, title),
      status ? el('span', { class: 'status status-' + status.replace(/[^a-z-]/gi, '') }, status) : null,
      detail ? el('span', { class: 'item-detail' }, detail) : null)
  }))
}

function renderConditions(conditions) {
  renderList('conditions', conditions, 'No conditions recorded.', (c) => ({
    title: c.text || 'Unnamed condition',
    status: c.clinicalStatus || '',
    detail: c.onset ? 'Onset ' + formatDate(c.onset) : '',
  }))
}

function renderMedications(medications) {
  renderList('medications', medications, 'No medications recorded.', (m) => ({
    title: m.text || 'Unnamed medication',
    status: m.status || '',
    detail: m.authoredOn ? 'Prescribed ' + formatDate(m.authoredOn) : '',
  }))
}

// ---- start ----------------------------------------------------------------------------------

let loading = false

async function load(patient) {
  if (loading) return
  loading = true
  clearPatientData()
  showState('loading')
  try {
    // The context first: a session that cannot serve this tab is found with one request.
    const { body: context, fhirServer } = await api('/api/context', patient)
    const answers = await Promise.all(
      ['/api/patient', '/api/practitioner', '/api/encounter', '/api/vitals', '/api/conditions', '/api/medications']
        .map((path) => api(path, patient)))
    if (answers.some((answer) => answer.fhirServer !== fhirServer)) throw new ApiError(403, 'WRONG_PATIENT', 'The app answered from another EHR.')
    const [record, practitioner, encounter, vitals, conditions, medications] = answers.map((answer) => answer.body)
    if (!record || record.id !== context.patient) throw new ApiError(403, 'WRONG_PATIENT', 'The app answered for another patient.')

    renderBanner(record, context.needPatientBanner === true)
    renderPractitioner(practitioner)
    renderEncounter(encounter)
    renderVitals(vitals)
    renderConditions(conditions)
    renderMedications(medications)
    document.body.setAttribute('data-patient-id', record.id)
    document.body.setAttribute('data-fhir-server', fhirServer || '')
    $('ehr').textContent = fhirServer ? 'EHR: ' + new URL(fhirServer).host : ''
    $('close-patient').hidden = false
    document.title = bannerName(record) + ' — Clinician view'
    showState('content')
  } catch (error) {
    if (error instanceof ApiError && error.needsRelaunch) showRelaunch()
    else showError(error)
  } finally {
    loading = false
  }
}

/** A launch that failed at the EHR or the callback comes back as `?error=<code>`: say so, then forget it. */
function takeLaunchError() {
  const url = new URL(window.location.href)
  const code = url.searchParams.get('error')
  if (!code) return null
  url.searchParams.delete('error')
  history.replaceState(history.state, '', url.pathname + url.search + url.hash)
  return code.replace(/[^A-Z_]/g, '')
}

/** Whether the page is shown inside another page's frame (the EHR's). */
function inFrame() {
  return window.self !== window.top
}

function start() {
  const failed = takeLaunchError()
  const patient = takeActivePatient()
  if (failed) {
    $('relaunch').querySelector('[data-field="error-code"]').textContent = failed
    // In the EHR's frame, MISCONFIGURED is the app's session cookie, which the browser does not keep in frames.
    showRelaunch(failed === 'MISCONFIGURED' && inFrame() ? 'framed-cookie' : 'failed')
    return
  }
  if (!patient) {
    showRelaunch()
    return
  }
  $('retry').addEventListener('click', () => load(patient))
  $('close-patient').addEventListener('click', () => closePatient(patient))
  load(patient)
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start)
else start()
