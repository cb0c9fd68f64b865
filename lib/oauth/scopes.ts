/**
 * SMART scopes in both syntaxes (SMART App Launch 1.0 and 2.x): `patient/Observation.read` and
 * `patient/Observation.rs`. What the app asks an EHR for, and what a granted scope permits.
 */

/**
 * The FHIR interactions a SMART v2 scope's permissions name: create, read, update, delete, search.
 *
 * @example
 * const canChart: boolean = req.smart.permits('create' satisfies FhirInteraction, 'Observation')
 */
export type FhirInteraction = 'create' | 'read' | 'update' | 'delete' | 'search'

const V2_LETTERS: Record<string, FhirInteraction> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' }
const V1_PERMISSIONS: Record<string, FhirInteraction[]> = {
  read: ['read', 'search'],
  write: ['create', 'update', 'delete'],
  '*': ['create', 'read', 'update', 'delete', 'search'],
}

/** `(patient|user|system)/(Type|*).(permissions)[?query]` */
const RESOURCE_SCOPE = /^(patient|user|system)\/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$/

interface ResourceScope {
  context: 'patient' | 'user' | 'system'
  type: string
  interactions: Set<FhirInteraction>
  /** A v2 query restriction (`?category=…`): narrower than the type. */
  query: string | null
  /** Written in SMART v1 syntax (`.read`, `.write`, `.*`). */
  v1: boolean
}

function parse(scope: string): ResourceScope | null {
  const match = RESOURCE_SCOPE.exec(scope)
  if (!match) return null
  const [, context, type, permissions, query] = match
  let interactions: FhirInteraction[] | undefined = Object.hasOwn(V1_PERMISSIONS, permissions) ? V1_PERMISSIONS[permissions] : undefined
  const v1 = interactions !== undefined
  if (!interactions) {
    // v2: letters in the order c, r, u, d, s, each at most once.
    if (!/^c?r?u?d?s?$/.test(permissions) || permissions === '') return null
    interactions = [...permissions].map((letter) => V2_LETTERS[letter])
  }
  return { context: context as ResourceScope['context'], type, interactions: new Set(interactions), query: query ?? null, v1 }
}

/**
 * `scope` in SMART v1 syntax, for an EHR that advertises `permission-v1` and not `permission-v2`: v2 resource
 * scopes become `.read` (for r or s) and `.write` (for c, u or d); a v2 query restriction cannot be said in v1
 * and is dropped (the EHR may grant more than asked: `dropped` lists them, for a warning). Other scopes pass unchanged.
 */
export function toV1Scope(scope: string): { scope: string; dropped: string[] } {
  const out: string[] = []
  const dropped: string[] = []
  for (const name of scope.split(' ')) {
    const parsed = parse(name)
    if (!parsed || parsed.v1) {
      out.push(name)
      continue
    }
    if (parsed.query) dropped.push(name)
    const base = `${parsed.context}/${parsed.type}`
    const has = (...names: FhirInteraction[]) => names.some((interaction) => parsed.interactions.has(interaction))
    if (has('read', 'search')) out.push(`${base}.read`)
    if (has('create', 'update', 'delete')) out.push(`${base}.write`)
  }
  return { scope: [...new Set(out)].join(' '), dropped }
}

/**
 * Whether a granted `scope` (v1 or v2 syntax) permits `interaction` on `resourceType`, in any context
 * (patient, user or system). A v2 scope with a query restriction counts as permitting the type: the EHR
 * enforces the restriction on each request.
 */
export function permits(scope: string, interaction: FhirInteraction, resourceType: string): boolean {
  return scope.split(' ').some((name) => {
    const parsed = parse(name)
    return parsed !== null && (parsed.type === '*' || parsed.type === resourceType) && parsed.interactions.has(interaction)
  })
}
