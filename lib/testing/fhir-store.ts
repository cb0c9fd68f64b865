import { randomUUID } from 'node:crypto'
import type { FhirResource } from './seed-data'

/** The resource types the mock FHIR server serves. */
export const RESOURCE_TYPES = ['Patient', 'Practitioner', 'RelatedPerson', 'Encounter', 'Observation', 'Condition', 'MedicationRequest'] as const

export function isResourceType(type: string): boolean {
  return (RESOURCE_TYPES as readonly string[]).includes(type)
}

function referenceId(value: unknown, type: string): string | null {
  if (typeof value !== 'object' || value === null) return null
  const reference = (value as { reference?: unknown }).reference
  if (typeof reference !== 'string' || !reference.startsWith(`${type}/`)) return null
  return reference.slice(type.length + 1)
}

/** The patient whose compartment holds the resource; null for resources outside any patient compartment. */
export function compartmentPatient(resource: FhirResource): string | null {
  if (resource.resourceType === 'Patient') return resource.id
  if (resource.resourceType === 'Practitioner') return null
  return referenceId(resource.subject, 'Patient') ?? referenceId(resource.patient, 'Patient')
}

type Coding = { system?: string; code?: string }

function codings(concepts: unknown): Coding[] {
  const list = Array.isArray(concepts) ? concepts : [concepts]
  return list.flatMap((concept) => {
    const coding = (concept as { coding?: unknown } | null)?.coding
    return Array.isArray(coding) ? (coding as Coding[]) : []
  })
}

// FHIR token search: `code` or `system|code`, comma-separated alternatives.
function tokenMatches(concepts: unknown, query: string): boolean {
  return query.split(',').some((alternative) => {
    const [system, code] = alternative.includes('|') ? alternative.split('|', 2) : [undefined, alternative]
    return codings(concepts).some((c) => c.code === code && (system === undefined || system === '' || c.system === system))
  })
}

function identifierMatches(resource: FhirResource, query: string): boolean {
  const identifiers = Array.isArray(resource.identifier) ? (resource.identifier as Array<{ system?: string; value?: string }>) : []
  const [system, value] = query.includes('|') ? query.split('|', 2) : [undefined, query]
  return identifiers.some((i) => i.value === value && (system === undefined || i.system === system))
}

function nameMatches(resource: FhirResource, query: string): boolean {
  const names = Array.isArray(resource.name) ? (resource.name as Array<{ family?: string; given?: string[] }>) : []
  const needle = query.toLowerCase()
  return names.some((n) => [n.family ?? '', ...(n.given ?? [])].some((part) => part.toLowerCase().startsWith(needle)))
}

function patientParam(params: URLSearchParams): string | null {
  const value = params.get('patient') ?? params.get('subject')
  if (value === null) return null
  return value.startsWith('Patient/') ? value.slice('Patient/'.length) : value
}

/** Matches one search parameter; unknown parameters are ignored, as lenient FHIR servers do. */
function matches(resource: FhirResource, name: string, value: string): boolean {
  switch (name) {
    case '_id': return value.split(',').includes(resource.id)
    case 'patient':
    case 'subject': return compartmentPatient(resource) === (value.startsWith('Patient/') ? value.slice(8) : value)
    case 'category': return tokenMatches(resource.category, value)
    case 'code': return tokenMatches(resource.code, value)
    case 'status': return resource.status === value
    case 'identifier': return identifierMatches(resource, value)
    case 'name': return nameMatches(resource, value)
    default: return true
  }
}

/** In-memory resources of one mock EHR instance. */
export class FhirStore {
  private resources = new Map<string, FhirResource>()

  constructor(seed: FhirResource[]) {
    for (const resource of seed) this.put(resource)
  }

  read(type: string, id: string): FhirResource | undefined {
    const resource = this.resources.get(`${type}/${id}`)
    return resource && structuredClone(resource)
  }

  create(resource: FhirResource): FhirResource {
    return this.put({ ...resource, id: randomUUID() })
  }

  /** Update or create-on-update; `created` tells which. */
  update(resource: FhirResource): { resource: FhirResource; created: boolean } {
    const previous = this.read(resource.resourceType, resource.id)
    const version = previous ? Number((previous.meta as { versionId?: string }).versionId ?? '1') + 1 : 1
    return { resource: this.put(resource, version), created: !previous }
  }

  delete(type: string, id: string): boolean {
    return this.resources.delete(`${type}/${id}`)
  }

  search(type: string, params: URLSearchParams): FhirResource[] {
    const criteria = [...params].filter(([name]) => !name.startsWith('_') || name === '_id')
    return [...this.resources.values()].filter(
      (resource) => resource.resourceType === type && criteria.every(([name, value]) => matches(resource, name, value)),
    )
  }

  /** The patient a search is about (`patient=` or `subject=`), if it names one. */
  static searchedPatient(params: URLSearchParams): string | null {
    return patientParam(params)
  }

  snapshot(): Map<string, FhirResource> {
    return new Map(this.resources)
  }

  restore(snapshot: Map<string, FhirResource>): void {
    this.resources = snapshot
  }

  private put(resource: FhirResource, version = 1): FhirResource {
    const stored: FhirResource = {
      ...structuredClone(resource),
      meta: { versionId: String(version), lastUpdated: new Date().toISOString() },
    }
    this.resources.set(`${stored.resourceType}/${stored.id}`, stored)
    return structuredClone(stored)
  }
}
