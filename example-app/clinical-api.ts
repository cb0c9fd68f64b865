import { Router } from 'express'
import type { ReadyClient } from 'express-smart-on-fhir'

/** The few FHIR shapes this page reads. */
interface Coding { system?: string; code?: string; display?: string }
interface CodeableConcept { coding?: Coding[]; text?: string }
interface Quantity { value?: number; unit?: string }
interface Observation {
  code?: CodeableConcept
  effectiveDateTime?: string
  valueQuantity?: Quantity
  component?: Array<{ code?: CodeableConcept; valueQuantity?: Quantity }>
}
interface Bundle<T> { entry?: Array<{ resource?: T }>; link?: Array<{ relation?: string; url?: string }> }

export interface VitalSeries { code: string; display: string; unit: string; points: Array<{ date: string; value: number }> }

const textOf = (concept: CodeableConcept | undefined) => concept?.text ?? concept?.coding?.[0]?.display ?? concept?.coding?.[0]?.code ?? 'Unknown'

/** Every resource of a search, following `next` links (on the FHIR server only: request() refuses others). */
async function searchAll<T>(smart: ReadyClient, path: string): Promise<T[]> {
  const out: T[] = []
  let next: string | undefined = path
  for (let page = 0; next && page < 20; page++) {
    const bundle: Bundle<T> = await smart.request<Bundle<T>>(next)
    for (const entry of bundle.entry ?? []) if (entry.resource) out.push(entry.resource)
    next = bundle.link?.find((link) => link.relation === 'next')?.url
  }
  return out
}

/** Observations to chartable series; blood pressure panels become a systolic and a diastolic series. */
export function vitalSeries(observations: Observation[]): VitalSeries[] {
  const series = new Map<string, VitalSeries>()
  const add = (concept: CodeableConcept | undefined, quantity: Quantity | undefined, date: string | undefined) => {
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
  const patientId = (smart: ReadyClient) => encodeURIComponent(smart.patient?.id ?? '')

  api.get('/context', (req, res) => {
    const { patient, encounter, user, needPatientBanner } = req.smart
    res.json({ patient: patient?.id ?? null, encounter: encounter?.id ?? null, fhirUser: user?.fhirUser ?? null, needPatientBanner })
  })
  api.get('/patient', async (req, res) => {
    res.json(await req.smart.request(`Patient/${patientId(req.smart)}`))
  })
  api.get('/practitioner', async (req, res) => {
    const { user } = req.smart
    res.json(user ? await req.smart.request(`${user.resourceType}/${encodeURIComponent(user.id)}`) : null)
  })
  api.get('/encounter', async (req, res) => {
    const { encounter } = req.smart
    res.json(encounter ? await req.smart.request(`Encounter/${encodeURIComponent(encounter.id)}`) : null)
  })
  api.get('/vitals', async (req, res) => {
    const observations = await searchAll<Observation>(req.smart, `Observation?patient=${patientId(req.smart)}&category=vital-signs&_count=50`)
    res.json({ series: vitalSeries(observations) })
  })
  api.get('/conditions', async (req, res) => {
    const conditions = await searchAll<{ code?: CodeableConcept; clinicalStatus?: CodeableConcept; onsetDateTime?: string }>(req.smart, `Condition?patient=${patientId(req.smart)}`)
    res.json(conditions.map((c) => ({ text: textOf(c.code), clinicalStatus: c.clinicalStatus?.coding?.[0]?.code ?? null, onset: c.onsetDateTime ?? null })))
  })
  api.get('/medications', async (req, res) => {
    const requests = await searchAll<{ medicationCodeableConcept?: CodeableConcept; status?: string; authoredOn?: string }>(req.smart, `MedicationRequest?patient=${patientId(req.smart)}`)
    res.json(requests.map((m) => ({ text: textOf(m.medicationCodeableConcept), status: m.status ?? null, authoredOn: m.authoredOn ?? null })))
  })
  return api
}
