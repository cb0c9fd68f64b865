import { Router } from 'express'
import type * as fhir4 from 'fhir/r4'
import type { ReadyClient } from 'express-smart-on-fhir'

/** Every resource of a search: the client follows `next` links (on the FHIR server only). */
async function all<T>(found: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const resource of found) out.push(resource)
  return out
}

export interface VitalSeries { code: string; display: string; unit: string; points: Array<{ date: string; value: number }> }

const textOf = (concept: fhir4.CodeableConcept | undefined) => concept?.text ?? concept?.coding?.[0]?.display ?? concept?.coding?.[0]?.code ?? 'Unknown'

/** Observations to chartable series; blood pressure panels become a systolic and a diastolic series. */
export function vitalSeries(observations: fhir4.Observation[]): VitalSeries[] {
  const series = new Map<string, VitalSeries>()
  const add = (concept: fhir4.CodeableConcept | undefined, quantity: fhir4.Quantity | undefined, date: string | undefined) => {
    if (typeof quantity?.value !== 'number' || !date) return
    const code = concept?.coding?.[0]?.code ?? textOf(concept)
    let entry = series.get(code)
    if (!entry) series.set(code, (entry = { code, display: textOf(concept), unit: quantity.unit ?? '', points: [] }))
    entry.points.push({ date, value: quantity.value })
  }
  for (const observation of observations) {
    if (observation.component?.length) {
      for (const component of observation.component) add(component.code, component.valueQuantity, observation.effectiveDateTime)
    } else {
      add(observation.code, observation.valueQuantity, observation.effectiveDateTime)
    }
  }
  for (const entry of series.values()) entry.points.sort((a, b) => a.date.localeCompare(b.date))
  return [...series.values()]
}

/** The page's API: small JSON shapes made from FHIR, for the active patient only (req.smart). */
export function clinicalApi(): Router {
  const api = Router()
  const patientOf = (smart: ReadyClient) => smart.patient?.id ?? ''

  api.get('/context', (req, res) => {
    const { patient, encounter, user, needPatientBanner } = req.smart
    res.json({ patient: patient?.id ?? null, encounter: encounter?.id ?? null, fhirUser: user?.fhirUser ?? null, needPatientBanner })
  })
  api.get('/patient', async (req, res) => {
    res.json(await req.smart.read('Patient', patientOf(req.smart)))
  })
  api.get('/practitioner', async (req, res) => {
    res.json((await req.smart.user?.read()) ?? null)
  })
  api.get('/encounter', async (req, res) => {
    res.json((await req.smart.encounter?.read()) ?? null)
  })
  api.get('/vitals', async (req, res) => {
    const observations = await all(req.smart.resources('Observation', { patient: patientOf(req.smart), category: 'vital-signs', _count: 50 }))
    res.json({ series: vitalSeries(observations) })
  })
  api.get('/conditions', async (req, res) => {
    const conditions = await all(req.smart.resources('Condition', { patient: patientOf(req.smart) }))
    res.json(conditions.map((c) => ({ text: textOf(c.code), clinicalStatus: c.clinicalStatus?.coding?.[0]?.code ?? null, onset: c.onsetDateTime ?? null })))
  })
  api.get('/medications', async (req, res) => {
    const requests = await all(req.smart.resources('MedicationRequest', { patient: patientOf(req.smart) }))
    res.json(requests.map((m) => ({ text: textOf(m.medicationCodeableConcept), status: m.status ?? null, authoredOn: m.authoredOn ?? null })))
  })
  return api
}
