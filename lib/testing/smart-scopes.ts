/** SMART App Launch scope grammar (v1 `.read/.write/.*`, v2 `.cruds` subsets) and what a granted scope allows. */

export type Interaction = 'c' | 'r' | 'u' | 'd' | 's'

export const CONTEXT_SCOPES = [
  'openid', 'fhirUser', 'profile', 'launch', 'launch/patient', 'launch/encounter',
  'offline_access', 'online_access',
] as const

// oidc-provider drops every requested scope it does not know by name, so the resource scopes have
// to be enumerated. Types beyond the ones the mock serves are listed so that apps asking for them
// are not surprised by a silently narrowed grant.
const RESOURCE_TYPES = [
  '*', 'Patient', 'Practitioner', 'Encounter', 'Observation', 'Condition', 'MedicationRequest',
  'AllergyIntolerance', 'Procedure', 'Immunization', 'DiagnosticReport', 'DocumentReference',
  'CarePlan', 'Goal', 'Medication', 'MedicationStatement', 'Organization', 'Location',
  'ServiceRequest', 'Appointment', 'Coverage', 'Device', 'Binary', 'Questionnaire',
  'QuestionnaireResponse', 'RelatedPerson', 'PractitionerRole', 'Provenance', 'CareTeam',
]

const V1_PERMISSIONS = ['read', 'write', '*']

function v2Permissions(): string[] {
  const letters = 'cruds'
  const out: string[] = []
  for (let mask = 1; mask < 1 << letters.length; mask++) {
    out.push([...letters].filter((_, i) => mask & (1 << i)).join(''))
  }
  return out
}

/** Every scope the authorization server grants (`'v1'`: v1 resource scopes only); the short, common ones first. */
export function allSupportedScopes(syntax: 'v1' | 'both' = 'both'): string[] {
  const permissions = syntax === 'v1' ? V1_PERMISSIONS : [...V1_PERMISSIONS, ...v2Permissions()]
  const resource: string[] = []
  for (const level of ['patient', 'user', 'system']) {
    for (const type of RESOURCE_TYPES) {
      for (const permission of permissions) resource.push(`${level}/${type}.${permission}`)
    }
  }
  return [...CONTEXT_SCOPES, ...resource]
}

/** A short list for `scopes_supported` in the SMART configuration (the full list has thousands). */
export function advertisedScopes(syntax: 'v1' | 'both' = 'both'): string[] {
  const v2 = syntax === 'v1' ? [] : ['patient/*.rs', 'patient/*.cruds', 'user/*.rs', 'user/*.cruds']
  return [...CONTEXT_SCOPES, ...v2, 'patient/*.read', 'patient/*.write', 'patient/*.*', 'user/*.read', 'user/*.write', 'user/*.*']
}

const RESOURCE_SCOPE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)$/

function lettersOf(permission: string): string {
  if (permission === 'read') return 'rs'
  if (permission === 'write') return 'cud'
  if (permission === '*') return 'cruds'
  return permission
}

/** Whether any of the granted scopes allows `interaction` on `resourceType`. */
export function scopeAllows(grantedScope: string, resourceType: string, interaction: Interaction): boolean {
  return grantedScope.split(' ').some((scope) => {
    const match = RESOURCE_SCOPE.exec(scope)
    if (!match || match[3] === '') return false
    const [, , type, permission] = match
    return (type === '*' || type === resourceType) && lettersOf(permission).includes(interaction)
  })
}
