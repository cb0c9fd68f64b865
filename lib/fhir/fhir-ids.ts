/** The syntax of FHIR resource types and ids (FHIR R4 §2.1.0.2 and the `id` datatype). */

/** A resource type name: a capital letter, then letters (`Patient`, `MedicationRequest`). */
export const FHIR_RESOURCE_TYPE = /^[A-Z][A-Za-z]{1,63}$/

/** A resource id: 1–64 of [A-Za-z0-9-.]. A path segment, never a path. */
export const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/
