import type { Request, Response } from 'express'
import { SELECTOR } from '../session/launch-identity'
import type { ReadyClient } from '../fhir/ReadyClient'
import { SmartError } from '../errors'

/**
 * The header a page sends with the value it was launched for (`?patient=`): which launch it means. Every
 * answer behind `requireSmartContext` echoes it.
 *
 * @example
 * fetch('/api/patient', { headers: { [ACTIVE_PATIENT_HEADER]: sessionStorage.getItem('activePatient') } })
 */
export const ACTIVE_PATIENT_HEADER = 'x-active-patient'
/**
 * Response header: the FHIR id of the patient a response was served for.
 *
 * @example
 * const patientId = response.headers.get(SMART_PATIENT_HEADER)
 */
export const SMART_PATIENT_HEADER = 'x-smart-patient'
/**
 * Response header: the FHIR server (EHR) of the launch a response was served for.
 *
 * @example
 * const ehr = response.headers.get(SMART_ISS_HEADER)
 */
export const SMART_ISS_HEADER = 'x-smart-iss'

/**
 * The request's `X-Active-Patient`, or null without one. A value that cannot select any launch (not a FHIR id
 * nor a handle, or repeated) is refused before the session is read: it never falls back to another patient.
 */
export function activePatientOf(req: Request): string | null {
  // Node joins a repeated header with ", ", which no selector contains: a repeated header is refused too.
  const header = req.get(ACTIVE_PATIENT_HEADER)
  if (header === undefined || header === '') return null
  if (!SELECTOR.test(header)) {
    throw new SmartError('UNKNOWN_PATIENT', 'The X-Active-Patient header does not name a patient launched in this session')
  }
  return header
}

/**
 * Tells the page which launch answered: `X-Active-Patient` echoes the value that selects it (the page compares
 * it with its own), with the patient's FHIR id and its EHR. None of them is a secret.
 */
export function announceLaunch(res: Response, smart: ReadyClient): void {
  res.setHeader(ACTIVE_PATIENT_HEADER, smart.activePatient)
  if (smart.patient) res.setHeader(SMART_PATIENT_HEADER, smart.patient.id)
  res.setHeader(SMART_ISS_HEADER, smart.fhirServer)
}
