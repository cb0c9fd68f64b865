import type { FhirStore } from './fhir-store'
import { officialName } from './html'
import type { FhirResource } from './seed-data'
import type { MockEhrUser } from './types'

/**
 * The users who can sign in at the mock authorization server: the practitioner (the default), a patient,
 * or a patient's RelatedPerson. The browser names a patient or related-person login in a cookie of the
 * EHR's origin, as a browser signed in at the EHR's portal carries its session; without it the
 * practitioner signs in, as before. `authorize()` sets the cookie from its `user` option.
 */
export const USER_COOKIE = 'mock-ehr-user'

export interface SignedInUser {
  /** oidc-provider's account id, the id_token `sub`: the practitioner id, or `Patient/<id>`, `RelatedPerson/<id>`. */
  accountId: string
  /** `Practitioner/<id>`, `Patient/<id>` or `RelatedPerson/<id>`. */
  reference: string
  /** The one patient whose record this user may see; null for the practitioner (any patient). */
  patient: string | null
}

export interface Users {
  /** Who the browser's request signs in as; a string says why nobody can. */
  signedIn(cookieHeader: string | undefined): SignedInUser | string
  /** oidc-provider's `findAccount`: the id_token and userinfo claims of an account id. */
  claims(accountId: string): Record<string, unknown> | undefined
}

export function userCookieValue(user: Exclude<MockEhrUser, 'practitioner'>, patient: string): string {
  return encodeURIComponent(`${user}:${patient}`)
}

function cookie(header: string | undefined, name: string): string | undefined {
  for (const pair of (header ?? '').split(';')) {
    const separator = pair.indexOf('=')
    if (separator > 0 && pair.slice(0, separator).trim() === name) return pair.slice(separator + 1).trim()
  }
  return undefined
}

function decode(value: string): string | null {
  try {
    return decodeURIComponent(value)
  } catch {
    return null
  }
}

function nameClaims(resource: FhirResource | undefined): Record<string, string> {
  const { given = [], family } = officialName(resource)
  const givenName = given.join(' ')
  const name = [givenName, family].filter(Boolean).join(' ')
  return { ...(name ? { name } : {}), ...(givenName ? { given_name: givenName } : {}), ...(family ? { family_name: family } : {}) }
}

export function createUsers(options: { store: FhirStore; practitionerId: string; fhirUser(reference: string): string }): Users {
  const { store, practitionerId } = options
  const practitioner: SignedInUser = { accountId: practitionerId, reference: `Practitioner/${practitionerId}`, patient: null }

  function relatedPersonOf(patientId: string): FhirResource | undefined {
    return store.search('RelatedPerson', new URLSearchParams({ patient: patientId })).sort((a, b) => a.id.localeCompare(b.id))[0]
  }

  function signedIn(cookieHeader: string | undefined): SignedInUser | string {
    const raw = cookie(cookieHeader, USER_COOKIE)
    if (raw === undefined) return practitioner
    const value = decode(raw) ?? ''
    const separator = value.indexOf(':')
    const [user, patientId] = [value.slice(0, separator), value.slice(separator + 1)]
    if (separator < 0 || (user !== 'patient' && user !== 'related-person')) return `no such user: ${value}`
    if (!store.read('Patient', patientId)) return `no such patient: ${patientId}`
    if (user === 'patient') {
      const reference = `Patient/${patientId}`
      return { accountId: reference, reference, patient: patientId }
    }
    const related = relatedPersonOf(patientId)
    if (!related) return `patient ${patientId} has no RelatedPerson`
    const reference = `RelatedPerson/${related.id}`
    return { accountId: reference, reference, patient: patientId }
  }

  function claims(accountId: string): Record<string, unknown> | undefined {
    const reference = accountId === practitionerId ? practitioner.reference : accountId
    const [type, id, ...rest] = reference.split('/')
    if (rest.length > 0 || !['Practitioner', 'Patient', 'RelatedPerson'].includes(type)) return undefined
    const resource = store.read(type, id)
    if (!resource && type !== 'Practitioner') return undefined
    return { sub: accountId, fhirUser: options.fhirUser(reference), ...nameClaims(resource) }
  }

  return { signedIn, claims }
}
