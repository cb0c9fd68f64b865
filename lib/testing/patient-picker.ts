import { age, escapeHtml, listName, mrn, page } from './html'
import type { FhirResource } from './seed-data'

/**
 * The patient picker of a standalone launch: the page the authorization server shows when an app asks
 * for `launch/patient` without a launch id. One form posts back to the interaction: `patient=<id>` for a
 * choice, `deny` for "Deny". The test user agent reads the same markup (form id, button names).
 */
export const PICKER_FORM_ID = 'patient-picker'
export const PICKER_PATIENT_FIELD = 'patient'
export const PICKER_DENY_FIELD = 'deny'

export interface PickerPageOptions {
  /** Where the form posts: the interaction's own URL path. */
  action: string
  clientId: string
  /** "Dr. Susan Clark": who is signed in. */
  user: string
  patients: FhirResource[]
  today: Date
  notice?: string
}

function row(patient: FhirResource, today: Date): string {
  const id = escapeHtml(patient.id)
  return `<tr data-patient-id="${id}">
      <td class="name">${escapeHtml(listName(patient))}</td>
      <td class="mrn">${escapeHtml(mrn(patient))}</td>
      <td class="sex">${escapeHtml(patient.gender)}</td>
      <td class="birth-date">${escapeHtml(patient.birthDate)}${escapeHtml(age(patient.birthDate, today))}</td>
      <td><button class="choose" type="submit" name="${PICKER_PATIENT_FIELD}" value="${id}">Select</button></td>
    </tr>`
}

export function pickerPage(options: PickerPageOptions): string {
  const patients = [...options.patients].sort((a, b) => a.id.localeCompare(b.id))
  const notice = options.notice ? `<p class="notice">${escapeHtml(options.notice)}</p>` : ''
  return page('Mock EHR — Select a patient', `Signed in as ${escapeHtml(options.user)}`, `
<section id="patient-select">
  <h2>Select a patient</h2>
  ${notice}
  <p class="intro">The app <strong id="client-id">${escapeHtml(options.clientId)}</strong> asks to open a patient's record. Choose the patient, or deny.</p>
  <form id="${PICKER_FORM_ID}" method="post" action="${escapeHtml(options.action)}">
  <table>
    <thead><tr><th>Name</th><th>MRN</th><th>Sex</th><th>Birth date</th><th><span hidden>Action</span></th></tr></thead>
    <tbody>
    ${patients.map((p) => row(p, options.today)).join('')}
    </tbody>
  </table>
  <p class="actions"><button class="deny" type="submit" name="${PICKER_DENY_FIELD}" value="${PICKER_DENY_FIELD}">Deny</button></p>
  </form>
</section>`)
}

/** A page of the interaction that went wrong (unknown user, unknown patient, nothing to pick). */
export function interactionErrorPage(title: string, message: string): string {
  return page(`Mock EHR — ${title}`, '', `<section><h2>${escapeHtml(title)}</h2><p class="notice" id="interaction-error">${escapeHtml(message)}</p></section>`)
}
