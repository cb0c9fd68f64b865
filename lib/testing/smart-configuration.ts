import { advertisedScopes } from './smart-scopes'
import { RESOURCE_TYPES } from './fhir-store'
import type { FhirResource } from './seed-data'

export interface SmartEndpoints {
  issuer: string
  fhirBase: string
  authorization: string
  token: string
  jwks: string
  revocation: string
  userinfo: string
}

const CAPABILITIES = [
  'launch-ehr',
  'launch-standalone',
  'client-public',
  'client-confidential-symmetric',
  'client-confidential-asymmetric',
  'context-ehr-patient',
  'context-ehr-encounter',
  'context-standalone-patient',
  'context-passthrough-banner',
  'sso-openid-connect',
  'permission-offline',
  'permission-online',
  'permission-patient',
  'permission-user',
  'permission-v1',
  'permission-v2',
]

/** What differs between the EHRs the mock imitates (MockEhrOptions). */
export interface EhrProfile {
  scopeSyntax: 'v1' | 'both'
  refreshTokens: boolean
  revocation: boolean
}

/** `<FHIR base>/.well-known/smart-configuration` (SMART App Launch 2.x). */
export function smartConfiguration(endpoints: SmartEndpoints, profile: EhrProfile = { scopeSyntax: 'both', refreshTokens: true, revocation: true }): Record<string, unknown> {
  const capabilities = CAPABILITIES.filter((capability) =>
    !(profile.scopeSyntax === 'v1' && capability === 'permission-v2') && !(!profile.refreshTokens && (capability === 'permission-offline' || capability === 'permission-online')))
  return {
    issuer: endpoints.issuer,
    jwks_uri: endpoints.jwks,
    authorization_endpoint: endpoints.authorization,
    token_endpoint: endpoints.token,
    ...(profile.revocation ? { revocation_endpoint: endpoints.revocation } : {}),
    userinfo_endpoint: endpoints.userinfo,
    grant_types_supported: ['authorization_code', 'refresh_token'],
    token_endpoint_auth_methods_supported: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    scopes_supported: advertisedScopes(profile.scopeSyntax),
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    authorization_response_iss_parameter_supported: true,
    capabilities,
  }
}

/** `<FHIR base>/metadata`: a small CapabilityStatement pointing at the SMART endpoints. */
export function capabilityStatement(endpoints: SmartEndpoints): FhirResource {
  return {
    resourceType: 'CapabilityStatement',
    id: 'mock-ehr',
    status: 'active',
    date: '2025-01-01',
    kind: 'instance',
    software: { name: 'express-smart-on-fhir mock EHR' },
    implementation: { description: 'Mock SMART on FHIR EHR for tests', url: endpoints.fhirBase },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [{
      mode: 'server',
      security: {
        service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
        extension: [{
          url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
          extension: [
            { url: 'authorize', valueUri: endpoints.authorization },
            { url: 'token', valueUri: endpoints.token },
            { url: 'revoke', valueUri: endpoints.revocation },
          ],
        }],
      },
      resource: RESOURCE_TYPES.map((type) => ({
        type,
        interaction: ['read', 'search-type', 'create', 'update', 'delete'].map((code) => ({ code })),
      })),
      interaction: [{ code: 'batch' }, { code: 'transaction' }],
    }],
  }
}
