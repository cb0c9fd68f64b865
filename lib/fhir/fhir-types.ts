import type * as fhir4 from 'fhir/r4'

/**
 * Every FHIR R4 resource type name, e.g. `'Patient'`.
 *
 * @example
 * const type: FhirResourceType = 'Observation'
 */
export type FhirResourceType = fhir4.FhirResource['resourceType']

/**
 * The R4 resource interface for a type name: `FhirResourceOf<'Patient'>` is `fhir4.Patient`.
 *
 * @example
 * const patient: FhirResourceOf<'Patient'> = await req.smart.read('Patient', 'patient-1')
 */
export type FhirResourceOf<K extends FhirResourceType> = Extract<fhir4.FhirResource, { resourceType: K }>

type SearchValue = string | number | boolean

/**
 * Search parameters. An array repeats the parameter (FHIR's AND); put alternatives (OR) in one
 * comma-separated string.
 *
 * @example
 * const params: FhirSearchParams = { patient: 'patient-1', code: 'http://loinc.org|8867-4', _count: 10 }
 */
export type FhirSearchParams = URLSearchParams | Record<string, SearchValue | readonly SearchValue[]>

/**
 * One entry of a batch or transaction: `request` says what to do, `resource` is the body of a POST or PUT.
 *
 * @example
 * const entry: FhirBundleRequestEntry = { request: { method: 'GET', url: 'Patient/patient-1' } }
 */
export type FhirBundleRequestEntry = fhir4.BundleEntry<fhir4.FhirResource> & { request: fhir4.BundleEntryRequest }

/**
 * Opt-in caching of a GET. The answer is kept for `ttlSeconds`, for this session and patient only;
 * errors are never kept. Ignored when the client has no read cache.
 *
 * @example
 * await req.smart.read('Practitioner', id, { cache: { ttlSeconds: 300 } })
 */
export interface FhirCacheOptions {
  ttlSeconds: number
}

/**
 * What `request()` sends.
 *
 * @example
 * await req.smart.request('Observation', { method: 'POST', body: observation })
 */
export interface FhirRequestInit {
  method?: string
  /** A JSON value (sent as `application/fhir+json`) or a string sent as is. */
  body?: unknown
  headers?: Record<string, string>
  /** GET only: keep the answer for this session and patient (see {@link FhirCacheOptions}). */
  cache?: FhirCacheOptions
}

/**
 * Options of a read.
 *
 * @example
 * const options: FhirReadOptions = { cache: { ttlSeconds: 60 } }
 */
export interface FhirReadOptions {
  cache?: FhirCacheOptions
}

/**
 * A launch context reference (`patient`, `encounter`). Its `read()` is not an own enumerable property,
 * so the reference serializes as `{ id, reference }`.
 *
 * @example
 * const patient = await req.smart.patient?.read()
 */
export interface FhirContextReference<K extends FhirResourceType> {
  readonly id: string
  readonly reference: string
  /** Reads the referenced resource. */
  read(options?: FhirReadOptions): Promise<FhirResourceOf<K>>
}

/**
 * The resource types a SMART `fhirUser` may name.
 *
 * @example
 * const user: FhirUserResource | undefined = await req.smart.user?.read()
 */
export type FhirUserResource = fhir4.Practitioner | fhir4.Patient | fhir4.RelatedPerson | fhir4.Person

/**
 * The signed-in user from the id_token's `fhirUser`. `read()` fetches `fhirUser`, which must be on the
 * FHIR server's origin (anything else is `FORBIDDEN_URL`).
 *
 * @example
 * const practitioner = await req.smart.user?.read()
 */
export interface FhirUserReference {
  readonly fhirUser: string
  readonly resourceType: string
  readonly id: string
  /** Reads the user's resource. */
  read(options?: FhirReadOptions): Promise<FhirUserResource>
}
