/**
 * Deterministic seed data of the mock EHR: one practitioner, three patients with an encounter, vital signs,
 * conditions and medications each, and a RelatedPerson per patient (who may sign in on the patient's behalf).
 * Clinical dates are relative to `now` (the encounter is in progress today, the vital signs lead up to it),
 * so the example app looks current on any day; everything else is fixed.
 */

export type FhirResource = { resourceType: string; id: string; [key: string]: unknown }

export const DEFAULT_PRACTITIONER_ID = 'smart-practitioner-1'
export const PRACTITIONER_NAME = { given: 'Susan', family: 'Clark' }

interface PatientSeed {
  id: string
  given: string[]
  family: string
  gender: 'male' | 'female'
  birthDate: string
  mrn: string
  city: string
  phone: string
  conditions: Array<[code: string, display: string, onset: string]>
  medications: Array<[rxnorm: string, display: string, dosage: string]>
  vitals: { heartRate: number; systolic: number; diastolic: number; weightKg: number; weightTrend: number }
  relatedPerson: { given: string; family: string; gender: 'male' | 'female'; relationship: [code: string, display: string] }
}

const PATIENTS: PatientSeed[] = [
  {
    id: 'patient-1', given: ['Amy', 'V.'], family: 'Shaw', gender: 'female', birthDate: '1987-02-20',
    mrn: 'MRN-100001', city: 'Boston', phone: '555-0101',
    conditions: [['38341003', 'Hypertensive disorder', '2019-03-11'], ['195967001', 'Asthma', '2002-06-01']],
    medications: [['314076', 'lisinopril 10 MG Oral Tablet', 'One tablet by mouth daily'], ['745679', 'albuterol 0.09 MG/ACTUAT Metered Dose Inhaler', 'Two puffs every 4 hours as needed']],
    vitals: { heartRate: 72, systolic: 138, diastolic: 88, weightKg: 68.2, weightTrend: -0.3 },
    relatedPerson: { given: 'Mark', family: 'Shaw', gender: 'male', relationship: ['SPS', 'spouse'] },
  },
  {
    id: 'patient-2', given: ['Daniel', 'X.'], family: 'Adams', gender: 'male', birthDate: '1952-11-04',
    mrn: 'MRN-100002', city: 'Worcester', phone: '555-0102',
    conditions: [['44054006', 'Diabetes mellitus type 2', '2011-09-23'], ['55822004', 'Hyperlipidemia', '2013-01-17'], ['49436004', 'Atrial fibrillation', '2020-05-30']],
    medications: [['860975', 'metformin 500 MG Oral Tablet', 'One tablet by mouth twice daily'], ['617312', 'atorvastatin 40 MG Oral Tablet', 'One tablet by mouth at bedtime'], ['1364430', 'apixaban 5 MG Oral Tablet', 'One tablet by mouth twice daily']],
    vitals: { heartRate: 84, systolic: 128, diastolic: 79, weightKg: 91.5, weightTrend: 0.4 },
    relatedPerson: { given: 'Laura', family: 'Adams', gender: 'female', relationship: ['DAU', 'natural daughter'] },
  },
  {
    id: 'patient-3', given: ['Rosa'], family: 'Martinez', gender: 'female', birthDate: '2009-07-13',
    mrn: 'MRN-100003', city: 'Springfield', phone: '555-0103',
    conditions: [['35489007', 'Depressive disorder', '2023-10-02'], ['427679007', 'Allergic rhinitis', '2016-04-18']],
    medications: [['312938', 'sertraline 50 MG Oral Tablet', 'One tablet by mouth daily'], ['1014678', 'cetirizine 10 MG Oral Tablet', 'One tablet by mouth daily in spring']],
    vitals: { heartRate: 78, systolic: 112, diastolic: 70, weightKg: 52.0, weightTrend: 0.5 },
    relatedPerson: { given: 'Elena', family: 'Martinez', gender: 'female', relationship: ['MTH', 'mother'] },
  },
]

const VITAL_POINTS = 8
const LOINC = 'http://loinc.org'
const UCUM = 'http://unitsofmeasure.org'

const vitalSignsCategory = [{
  coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'Vital Signs' }],
}]

function quantity(value: number, unit: string, code: string) {
  return { value: Math.round(value * 10) / 10, unit, system: UCUM, code }
}

// A small, fixed wobble so the series look measured rather than constant, yet never change between runs.
function wobble(point: number, amplitude: number): number {
  return [0, 1, -1, 2, -2, 1, 0, -1][point % VITAL_POINTS] * amplitude
}

const DAY_MS = 86_400_000
const MINUTE_MS = 60_000

/** An instant `ms` before `now`, to the second, as FHIR's dateTime. */
function before(now: Date, ms: number): string {
  return new Date(Math.floor((now.getTime() - ms) / 1000) * 1000).toISOString().replace('.000Z', 'Z')
}

/** Monthly readings, the last one taken 20 minutes ago, in today's encounter. */
function vitalSigns(seed: PatientSeed, now: Date): FhirResource[] {
  const out: FhirResource[] = []
  const { vitals } = seed
  for (let point = 0; point < VITAL_POINTS; point++) {
    const effectiveDateTime = before(now, (VITAL_POINTS - 1 - point) * 30 * DAY_MS + 20 * MINUTE_MS)
    const common = (id: string, code: string, display: string) => ({
      resourceType: 'Observation',
      id: `${seed.id}-${id}-${point + 1}`,
      status: 'final',
      category: vitalSignsCategory,
      code: { coding: [{ system: LOINC, code, display }], text: display },
      subject: { reference: `Patient/${seed.id}` },
      encounter: { reference: `Encounter/${seed.id}-encounter-1` },
      effectiveDateTime,
    })
    out.push(
      { ...common('hr', '8867-4', 'Heart rate'), valueQuantity: quantity(vitals.heartRate + wobble(point, 3), 'beats/minute', '/min') },
      {
        ...common('bp', '85354-9', 'Blood pressure panel with all children optional'),
        component: [
          { code: { coding: [{ system: LOINC, code: '8480-6', display: 'Systolic blood pressure' }] }, valueQuantity: quantity(vitals.systolic + wobble(point, 4), 'mmHg', 'mm[Hg]') },
          { code: { coding: [{ system: LOINC, code: '8462-4', display: 'Diastolic blood pressure' }] }, valueQuantity: quantity(vitals.diastolic + wobble(point + 3, 2), 'mmHg', 'mm[Hg]') },
        ],
      },
      { ...common('weight', '29463-7', 'Body weight'), valueQuantity: quantity(vitals.weightKg + point * vitals.weightTrend, 'kg', 'kg') },
      { ...common('temp', '8310-5', 'Body temperature'), valueQuantity: quantity(36.8 + wobble(point, 0.1), 'C', 'Cel') },
    )
  }
  return out
}

function patient(seed: PatientSeed, practitionerId: string): FhirResource {
  return {
    resourceType: 'Patient',
    id: seed.id,
    identifier: [{
      use: 'usual',
      type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'MR', display: 'Medical Record Number' }] },
      system: 'urn:oid:2.16.840.1.113883.19.5.99999.1',
      value: seed.mrn,
    }],
    active: true,
    name: [{ use: 'official', family: seed.family, given: seed.given }],
    telecom: [{ system: 'phone', value: seed.phone, use: 'home' }],
    gender: seed.gender,
    birthDate: seed.birthDate,
    address: [{ use: 'home', line: ['1 Main Street'], city: seed.city, state: 'MA', postalCode: '02100', country: 'US' }],
    generalPractitioner: [{ reference: `Practitioner/${practitionerId}` }],
  }
}

/** `<patient id>-related-person`: someone close to the patient with access to their record (a proxy). */
function relatedPerson(seed: PatientSeed): FhirResource {
  const { given, family, gender, relationship: [code, display] } = seed.relatedPerson
  return {
    resourceType: 'RelatedPerson',
    id: `${seed.id}-related-person`,
    active: true,
    patient: { reference: `Patient/${seed.id}` },
    relationship: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code, display }] }],
    name: [{ use: 'official', family, given: [given] }],
    gender,
  }
}

function clinical(seed: PatientSeed, practitionerId: string, now: Date): FhirResource[] {
  const subject = { reference: `Patient/${seed.id}` }
  const encounter: FhirResource = {
    resourceType: 'Encounter',
    id: `${seed.id}-encounter-1`,
    status: 'in-progress',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
    type: [{ text: 'Follow-up visit' }],
    subject,
    participant: [{ individual: { reference: `Practitioner/${practitionerId}` } }],
    period: { start: before(now, 45 * MINUTE_MS) },
  }
  const conditions = seed.conditions.map(([code, display, onset], i): FhirResource => ({
    resourceType: 'Condition',
    id: `${seed.id}-condition-${i + 1}`,
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    verificationStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-ver-status', code: 'confirmed' }] },
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] }],
    code: { coding: [{ system: 'http://snomed.info/sct', code, display }], text: display },
    subject,
    onsetDateTime: onset,
  }))
  const medications = seed.medications.map(([code, display, dosage], i): FhirResource => ({
    resourceType: 'MedicationRequest',
    id: `${seed.id}-medication-${i + 1}`,
    status: 'active',
    intent: 'order',
    medicationCodeableConcept: { coding: [{ system: 'http://www.nlm.nih.gov/research/umls/rxnorm', code, display }], text: display },
    subject,
    authoredOn: before(now, 120 * DAY_MS).slice(0, 10),
    requester: { reference: `Practitioner/${practitionerId}` },
    dosageInstruction: [{ text: dosage }],
  }))
  return [encounter, relatedPerson(seed), ...conditions, ...medications, ...vitalSigns(seed, now)]
}

/** A fresh copy of the seed for one mock EHR instance, so that writes never leak between instances. */
export function seedResources(practitionerId: string = DEFAULT_PRACTITIONER_ID, now: Date = new Date()): FhirResource[] {
  const practitioner: FhirResource = {
    resourceType: 'Practitioner',
    id: practitionerId,
    identifier: [{ system: 'http://hl7.org/fhir/sid/us-npi', value: '9941339108' }],
    active: true,
    name: [{ use: 'official', family: PRACTITIONER_NAME.family, given: [PRACTITIONER_NAME.given], prefix: ['Dr.'] }],
    telecom: [{ system: 'email', value: 'susan.clark@example.org', use: 'work' }],
  }
  const patients = PATIENTS.map((seed) => patient(seed, practitionerId))
  return structuredClone([practitioner, ...patients, ...PATIENTS.flatMap((seed) => clinical(seed, practitionerId, now))])
}
