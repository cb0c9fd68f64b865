import type { TokenEndpointResponse } from 'openid-client'
import { SmartError } from '../errors'
import type { FhirContextItem, LaunchContext, TokenSet } from '../storage/records'

const text = (value: unknown): string | null => (typeof value === 'string' && value !== '' ? value : null)

function fhirContextOf(value: unknown): FhirContextItem[] {
  if (!Array.isArray(value)) return []
  return value
    .filter((item): item is Record<string, unknown> => typeof item === 'object' && item !== null)
    .map((item) => {
      const entry: FhirContextItem = {}
      for (const field of ['reference', 'canonical', 'type', 'role'] as const) {
        const v = text(item[field])
        if (v !== null) entry[field] = v
      }
      return entry
    })
}

/**
 * Tokens from a token response (SECURITY S16, S21): `token_type` must be bearer in any case, an
 * `access_token` must be present, expiry comes from `expires_in` only — access tokens stay opaque.
 * A refresh that brings no new refresh token keeps the previous one (S32).
 */
export function tokenSetFrom(response: TokenEndpointResponse, now: number, previous?: TokenSet): TokenSet {
  if (typeof response.access_token !== 'string' || response.access_token === '') {
    throw new SmartError('TOKEN_EXCHANGE_FAILED', 'The token response has no access_token')
  }
  if (typeof response.token_type !== 'string' || response.token_type.toLowerCase() !== 'bearer') {
    throw new SmartError('TOKEN_EXCHANGE_FAILED', 'The token response is not a bearer token')
  }
  const expiresIn = Number(response.expires_in)
  return {
    accessToken: response.access_token,
    expiresAt: Number.isFinite(expiresIn) && expiresIn > 0 ? now + expiresIn * 1000 : null,
    issuedAt: now,
    refreshToken: text(response.refresh_token) ?? previous?.refreshToken ?? null,
  }
}

/** The launch context of a code exchange; `scope` falls back to what was requested (RFC 6749 §5.1). */
export function launchContextFrom(response: TokenEndpointResponse, requestedScope: string): LaunchContext {
  const banner = response.need_patient_banner
  return {
    scope: text(response.scope) ?? requestedScope,
    patient: text(response.patient),
    encounter: text(response.encounter),
    intent: text(response.intent),
    needPatientBanner: banner === true || banner === 'true',
    smartStyleUrl: text(response.smart_style_url),
    fhirContext: fhirContextOf(response.fhirContext),
  }
}
