import type * as fhir4 from 'fhir/r4'
import { SmartError } from '../errors'
import { FHIR_ID, FHIR_RESOURCE_TYPE } from './fhir-ids'
import { followPages } from './fhir-paging'
import type {
  FhirBundleRequestEntry,
  FhirContextReference,
  FhirReadOptions,
  FhirRequestInit,
  FhirResourceOf,
  FhirResourceType,
  FhirSearchParams,
  FhirUserReference,
  FhirUserResource,
} from './fhir-types'

// Types and ids are checked before building a path: an id such as `..` or `x?_format=xml` would otherwise
// address another resource than the one the caller named.
function typePath(type: string): string {
  if (typeof type !== 'string' || !FHIR_RESOURCE_TYPE.test(type)) throw new TypeError(`Not a FHIR resource type: ${JSON.stringify(type)}`)
  return type
}

function instancePath(type: string, id: string | undefined): string {
  if (typeof id !== 'string' || !FHIR_ID.test(id)) throw new TypeError(`Not a FHIR resource id: ${JSON.stringify(id)}`)
  return `${typePath(type)}/${id}`
}

function searchPath(type: string, params: FhirSearchParams = {}): string {
  const query = new URLSearchParams(params instanceof URLSearchParams ? params : undefined)
  if (!(params instanceof URLSearchParams)) {
    for (const [name, value] of Object.entries(params)) {
      for (const item of ([] as ReadonlyArray<string | number | boolean>).concat(value)) query.append(name, String(item))
    }
  }
  const search = query.toString()
  return search === '' ? typePath(type) : `${typePath(type)}?${search}`
}

/** The typing promises a `resourceType`; a 2xx answer that is something else is the server's fault. */
function expectResource<K extends string>(value: unknown, type: K, what: string): Extract<fhir4.FhirResource, { resourceType: K }> {
  const actual = (value as { resourceType?: unknown } | null | undefined)?.resourceType
  if (actual !== type) throw new SmartError('FHIR_REQUEST_FAILED', `The FHIR server answered ${what} without a ${type} resource`)
  return value as Extract<fhir4.FhirResource, { resourceType: K }>
}

// Servers may answer a write with an empty body unless asked for the resource.
const RETURN_RESOURCE = { prefer: 'return=representation' }

/**
 * True when a FHIR request failed because the resource does not exist: 404 Not Found, or
 * 410 Gone (deleted). Equivalent to checking `err.code === 'FHIR_REQUEST_FAILED'` and `err.status`.
 *
 * @example
 * const patient = await req.smart.read('Patient', id).catch((err) => (isNotFound(err) ? null : Promise.reject(err)))
 */
export function isNotFound(err: unknown): err is SmartError {
  return err instanceof SmartError && err.code === 'FHIR_REQUEST_FAILED' && (err.status === 404 || err.status === 410)
}

/**
 * The typed FHIR R4 REST helpers of a ReadyClient. Every helper goes through `request()`, so each gets
 * its refresh-on-401, its origin check and its errors (`FHIR_REQUEST_FAILED` with the server's
 * `status` and `operationOutcome`).
 */
export abstract class FhirApi {
  /** The FHIR base URL (`iss`) the launch came from. */
  abstract readonly fhirServer: string

  /** Sends one FHIR request with the session's bearer token; see ReadyClient. */
  abstract request<T = unknown>(pathOrUrl: string, init?: FhirRequestInit): Promise<T>

  /**
   * Reads one resource by type and id. A missing resource throws `FHIR_REQUEST_FAILED` with status 404
   * (see {@link isNotFound}).
   *
   * @example
   * const patient = await req.smart.read('Patient', 'patient-1')          // fhir4.Patient
   * const cached = await req.smart.read('Practitioner', id, { cache: { ttlSeconds: 300 } })
   */
  async read<K extends FhirResourceType>(type: K, id: string, options: FhirReadOptions = {}): Promise<FhirResourceOf<K>> {
    const path = instancePath(type, id)
    return expectResource(await this.request(path, { cache: options.cache }), type, `GET ${path}`)
  }

  /**
   * Searches one resource type and returns the first page (a searchset Bundle). Resources added by
   * `_include` are in the Bundle too, with `search.mode: 'include'`.
   *
   * @example
   * const bundle = await req.smart.search('Observation', { code: 'http://loinc.org|8867-4', _count: 10 })
   * const total = bundle.total
   */
  async search<K extends FhirResourceType>(type: K, params?: FhirSearchParams): Promise<fhir4.Bundle<FhirResourceOf<K>>> {
    const path = searchPath(type, params)
    return expectResource(await this.request(path), 'Bundle', `GET ${path}`) as fhir4.Bundle<FhirResourceOf<K>>
  }

  /**
   * Searches and yields each page, following `next` links. A `next` link to another origin than the
   * FHIR server's is refused (`FORBIDDEN_URL`) before anything is sent. Pages are fetched as iterated.
   *
   * @example
   * for await (const page of req.smart.pages('Observation', { _count: 50 })) render(page.entry ?? [])
   */
  async *pages<K extends FhirResourceType>(type: K, params?: FhirSearchParams): AsyncGenerator<fhir4.Bundle<FhirResourceOf<K>>, void, undefined> {
    const get = async (url: string) => expectResource(await this.request(url), 'Bundle', 'a next link') as fhir4.Bundle<FhirResourceOf<K>>
    yield* followPages(await this.search(type, params), get)
  }

  /**
   * Searches and yields every matching resource of `type` across all pages (`_include`d resources and
   * OperationOutcomes are skipped: use `pages()` for them).
   *
   * @example
   * const vitals = []
   * for await (const obs of req.smart.resources('Observation', { category: 'vital-signs' })) vitals.push(obs)
   */
  async *resources<K extends FhirResourceType>(type: K, params?: FhirSearchParams): AsyncGenerator<FhirResourceOf<K>, void, undefined> {
    for await (const page of this.pages(type, params)) {
      for (const entry of page.entry ?? []) {
        if (entry.resource?.resourceType === type) yield entry.resource
      }
    }
  }

  /**
   * Creates a resource (POST to its type) and returns it as the server stored it, with its new `id`.
   *
   * @example
   * const created = await req.smart.create({ resourceType: 'Observation', status: 'final', code: { text: 'Note' }, subject: { reference: 'Patient/patient-1' } })
   */
  async create<R extends fhir4.FhirResource>(resource: R): Promise<R> {
    const path = typePath(resource?.resourceType)
    const answer = await this.request(path, { method: 'POST', body: resource, headers: RETURN_RESOURCE })
    return expectResource(answer, resource.resourceType, `POST ${path}`) as R
  }

  /**
   * Updates a resource (PUT to `<type>/<id>`; the resource must have its `id`) and returns it as stored.
   *
   * @example
   * const patient = await req.smart.read('Patient', 'patient-1')
   * const updated = await req.smart.update({ ...patient, active: false })
   */
  async update<R extends fhir4.FhirResource>(resource: R): Promise<R> {
    const path = instancePath(resource?.resourceType, resource?.id)
    const answer = await this.request(path, { method: 'PUT', body: resource, headers: RETURN_RESOURCE })
    return expectResource(answer, resource.resourceType, `PUT ${path}`) as R
  }

  /**
   * Deletes a resource by type and id.
   *
   * @example
   * await req.smart.delete('Observation', created.id!)
   */
  async delete(type: FhirResourceType, id: string): Promise<void> {
    await this.request(instancePath(type, id), { method: 'DELETE' })
  }

  /**
   * Sends a batch Bundle to the FHIR base: entries succeed or fail independently, so a failure is
   * reported per entry (`entry[i].response.status`, and `response.outcome`), not thrown.
   *
   * @example
   * const result = await req.smart.batch([
   *   { request: { method: 'GET', url: 'Patient/patient-1' } },
   *   { request: { method: 'POST', url: 'Observation' }, resource: observation },
   * ])
   * const failed = result.entry?.filter((e) => !e.response?.status.startsWith('2'))
   */
  batch(entries: FhirBundleRequestEntry[]): Promise<fhir4.Bundle> {
    return this.#postBundle('batch', entries)
  }

  /**
   * Sends a transaction Bundle to the FHIR base: all entries succeed or none does; a failure throws
   * `FHIR_REQUEST_FAILED` with the server's status and OperationOutcome.
   *
   * @example
   * await req.smart.transaction([
   *   { request: { method: 'PUT', url: `Patient/${patient.id}` }, resource: patient },
   *   { request: { method: 'POST', url: 'Observation' }, resource: observation },
   * ])
   */
  transaction(entries: FhirBundleRequestEntry[]): Promise<fhir4.Bundle> {
    return this.#postBundle('transaction', entries)
  }

  async #postBundle(type: 'batch' | 'transaction', entries: FhirBundleRequestEntry[]): Promise<fhir4.Bundle> {
    if (!Array.isArray(entries)) throw new TypeError(`${type}: entries must be an array`)
    const bundle: fhir4.Bundle = { resourceType: 'Bundle', type, entry: entries }
    // To the base itself (not `<base>/Bundle`, which would store the Bundle as a document).
    const answer = await this.request(this.fhirServer, { method: 'POST', body: bundle })
    return expectResource(answer, 'Bundle', `the ${type}`)
  }
}

/** `patient` / `encounter` of a ReadyClient: frozen, serializes as `{ id, reference }`; `read()` is not enumerable. */
export function contextReference<K extends FhirResourceType>(api: FhirApi, type: K, id: string | null): FhirContextReference<K> | null {
  if (id === null) return null
  const read = (options?: FhirReadOptions) => api.read(type, id, options)
  return Object.freeze(Object.defineProperty({ id, reference: `${type}/${id}` }, 'read', { value: read })) as FhirContextReference<K>
}

/** `user` of a ReadyClient: frozen, serializes as `{ fhirUser, resourceType, id }`; `read()` is not enumerable. */
export function userReference(api: FhirApi, user: { fhirUser: string; resourceType: string; id: string } | null): FhirUserReference | null {
  if (user === null) return null
  const read = async (options?: FhirReadOptions) => {
    const answer = await api.request(user.fhirUser, { cache: options?.cache })
    return expectResource(answer, user.resourceType, `GET ${user.fhirUser}`) as FhirUserResource
  }
  return Object.freeze(Object.defineProperty({ ...user }, 'read', { value: read })) as FhirUserReference
}
