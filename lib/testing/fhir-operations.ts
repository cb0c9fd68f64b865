import { FhirStore, compartmentPatient, isResourceType } from './fhir-store'
import type { FhirResource } from './seed-data'
import { scopeAllows, type Interaction } from './smart-scopes'

/** What a valid access token allows: its scopes and, for a patient launch, the one patient it may see. */
export interface FhirAccess {
  scope: string
  patient: string | null
}

export interface FhirResult {
  status: number
  body: FhirResource
  location?: string
}

export interface FhirOperation {
  method: string
  /** Path below the FHIR base without leading slash, e.g. `Observation/123`. */
  path: string
  query: URLSearchParams
  body: unknown
}

const DEFAULT_COUNT = 50
const MAX_COUNT = 200

export function outcome(status: number, code: string, diagnostics: string): FhirResult {
  const severity = status >= 500 ? 'fatal' : status >= 400 ? 'error' : 'information'
  return {
    status,
    body: { resourceType: 'OperationOutcome', id: 'outcome', issue: [{ severity, code, diagnostics }] },
  }
}

function isResource(value: unknown): value is FhirResource {
  return typeof value === 'object' && value !== null && typeof (value as { resourceType?: unknown }).resourceType === 'string'
}

/** Executes single FHIR interactions (read, search, create, update, delete) for one token's access. */
export class FhirOperations {
  constructor(private readonly store: FhirStore, private readonly base: string) {}

  execute(operation: FhirOperation, access: FhirAccess): FhirResult {
    const [type, id, ...rest] = operation.path.split('/').filter(Boolean)
    if (!type || rest.length > 0 || !isResourceType(type)) {
      return outcome(404, 'not-supported', `Unknown resource type or path: ${operation.path}`)
    }
    switch (operation.method) {
      case 'GET': return id ? this.read(type, id, access) : this.search(type, operation.query, access)
      case 'POST': return id ? outcome(405, 'not-supported', 'POST on an instance') : this.create(type, operation.body, access)
      case 'PUT': return id ? this.update(type, id, operation.body, access) : outcome(405, 'not-supported', 'PUT needs an id')
      case 'DELETE': return id ? this.delete(type, id, access) : outcome(405, 'not-supported', 'conditional delete')
      default: return outcome(405, 'not-supported', `Method ${operation.method} not supported`)
    }
  }

  private forbidden(type: string, interaction: Interaction, access: FhirAccess): FhirResult | null {
    // The user's own Practitioner resource is readable with any SMART token (fhirUser look-ups).
    if (type === 'Practitioner' && (interaction === 'r' || interaction === 's')) return null
    if (scopeAllows(access.scope, type, interaction)) return null
    return outcome(403, 'forbidden', `The granted scopes do not allow '${interaction}' on ${type}`)
  }

  private outOfContext(resource: FhirResource, access: FhirAccess): FhirResult | null {
    if (access.patient === null || resource.resourceType === 'Practitioner') return null
    if (compartmentPatient(resource) === access.patient) return null
    return outcome(403, 'forbidden', `${resource.resourceType}/${resource.id} is outside the launch's patient context`)
  }

  private read(type: string, id: string, access: FhirAccess): FhirResult {
    const denied = this.forbidden(type, 'r', access)
    if (denied) return denied
    const resource = this.store.read(type, id)
    if (!resource) return outcome(404, 'not-found', `${type}/${id} not found`)
    return this.outOfContext(resource, access) ?? { status: 200, body: resource }
  }

  private search(type: string, query: URLSearchParams, access: FhirAccess): FhirResult {
    const denied = this.forbidden(type, 's', access)
    if (denied) return denied
    const params = new URLSearchParams(query)
    if (access.patient !== null && type !== 'Practitioner') {
      const searched = type === 'Patient' ? params.get('_id') : FhirStore.searchedPatient(params)
      if (searched !== null && searched !== access.patient) {
        return outcome(403, 'forbidden', `Patient ${searched} is outside the launch's patient context`)
      }
      // Without an explicit patient the search is confined to the launch's patient.
      params.set(type === 'Patient' ? '_id' : 'patient', access.patient)
    }
    const count = Math.min(Number(params.get('_count') ?? DEFAULT_COUNT) || DEFAULT_COUNT, MAX_COUNT)
    const offset = Math.max(Number(params.get('_offset') ?? 0) || 0, 0)
    const matches = this.store.search(type, params)
    const page = matches.slice(offset, offset + count)
    const link = (at: number) => {
      const linkQuery = new URLSearchParams(query)
      linkQuery.set('_count', String(count))
      linkQuery.set('_offset', String(at))
      return `${this.base}/${type}?${linkQuery}`
    }
    const links = [{ relation: 'self', url: link(offset) }]
    if (offset + count < matches.length) links.push({ relation: 'next', url: link(offset + count) })
    if (offset > 0) links.push({ relation: 'previous', url: link(Math.max(offset - count, 0)) })
    return {
      status: 200,
      body: {
        resourceType: 'Bundle',
        id: `search-${type}-${offset}`,
        type: 'searchset',
        total: matches.length,
        link: links,
        entry: page.map((resource) => ({
          fullUrl: `${this.base}/${resource.resourceType}/${resource.id}`,
          resource,
          search: { mode: 'match' },
        })),
      },
    }
  }

  private create(type: string, body: unknown, access: FhirAccess): FhirResult {
    const denied = this.forbidden(type, 'c', access)
    if (denied) return denied
    if (!isResource(body) || body.resourceType !== type) {
      return outcome(400, 'invalid', `Body must be a ${type} resource`)
    }
    const candidate = { ...body, id: body.id ?? 'new' }
    const outside = this.outOfContext(candidate, access)
    if (outside) return outside
    const created = this.store.create(candidate)
    return { status: 201, body: created, location: this.versionUrl(created) }
  }

  private update(type: string, id: string, body: unknown, access: FhirAccess): FhirResult {
    const denied = this.forbidden(type, 'u', access)
    if (denied) return denied
    if (!isResource(body) || body.resourceType !== type || body.id !== id) {
      return outcome(400, 'invalid', `Body must be a ${type} resource with id ${id}`)
    }
    const existing = this.store.read(type, id)
    const outside = (existing && this.outOfContext(existing, access)) || this.outOfContext(body, access)
    if (outside) return outside
    const { resource, created } = this.store.update(body)
    return { status: created ? 201 : 200, body: resource, location: this.versionUrl(resource) }
  }

  private delete(type: string, id: string, access: FhirAccess): FhirResult {
    const denied = this.forbidden(type, 'd', access)
    if (denied) return denied
    const existing = this.store.read(type, id)
    if (!existing) return outcome(404, 'not-found', `${type}/${id} not found`)
    const outside = this.outOfContext(existing, access)
    if (outside) return outside
    this.store.delete(type, id)
    return outcome(200, 'informational', `${type}/${id} deleted`)
  }

  private versionUrl(resource: FhirResource): string {
    const version = (resource.meta as { versionId?: string } | undefined)?.versionId ?? '1'
    return `${this.base}/${resource.resourceType}/${resource.id}/_history/${version}`
  }
}
