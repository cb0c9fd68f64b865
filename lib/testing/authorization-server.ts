import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { exportJWK, generateKeyPair } from 'jose'
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider'
import { rawBasicCredentialsCheck, strictAssertionCheck } from './client-auth'
import type { FhirStore } from './fhir-store'
import { createInteraction, INTERACTION_PATH, type GrantRecord, type Interaction } from './interaction'
import { memoryAdapterFactory } from './memory-adapter'
import type { EhrProfile } from './smart-configuration'
import { allSupportedScopes } from './smart-scopes'
import type { LaunchContext, MockEhrClient, MockEhrFaults, MockEhrStats } from './types'
import type { Users } from './users'

export interface AuthorizationServerOptions {
  issuer: string
  fhirBase: string
  clients: MockEhrClient[]
  accessTokenTtlSeconds: number
  refreshTokenTtlSeconds: number
  rotateRefreshTokens: boolean
  /** What differs between the EHRs the mock imitates. */
  profile: EhrProfile
  store: FhirStore
  users: Users
  launches: ReadonlyMap<string, LaunchContext>
  stats: MockEhrStats
  faults: MockEhrFaults
}

/** What the FHIR server learns from a valid access token. */
export interface TokenInfo {
  scope: string
  clientId: string
  /** The one patient the token may see: the launch's, or the signed-in patient's; null: any. */
  patient: string | null
}

export interface AuthorizationServer {
  /** Node request handler for the provider, to be mounted at the issuer's path. */
  handler: (req: IncomingMessage, res: ServerResponse) => void
  /** Auto-approving login + consent, and the patient picker: the `interactions.url` pages. */
  interaction: Interaction
  validateAccessToken(token: string): Promise<TokenInfo | null>
  expireAccessTokens(): void
  endpoints: { authorization: string; token: string; jwks: string; revocation: string; userinfo: string }
}

const ROUTES = {
  authorization: '/authorize',
  token: '/token',
  jwks: '/jwks',
  revocation: '/revoke',
  userinfo: '/userinfo',
}

// oidc-provider insists on registered redirect_uris; clients registered without any get this
// placeholder and a redirectUriAllowed override that accepts any http(s) URL instead.
const ANY_REDIRECT_PLACEHOLDER = 'https://any-redirect.invalid/callback'

function clientMetadata(client: MockEhrClient): Record<string, unknown> {
  const base = {
    client_id: client.clientId,
    redirect_uris: client.redirectUris ?? [ANY_REDIRECT_PLACEHOLDER],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  }
  switch (client.type) {
    case 'public':
      return { ...base, token_endpoint_auth_method: 'none' }
    case 'confidential-symmetric':
      return { ...base, client_secret: client.clientSecret, token_endpoint_auth_method: client.method }
    case 'confidential-asymmetric':
      return {
        ...base,
        jwks: client.jwks,
        token_endpoint_auth_method: 'private_key_jwt',
        ...(client.alg ? { token_endpoint_auth_signing_alg: client.alg } : {}),
      }
  }
}

function launchContextFields(context: LaunchContext): Record<string, unknown> {
  return {
    patient: context.patient,
    ...(context.encounter ? { encounter: context.encounter } : {}),
    need_patient_banner: context.needPatientBanner ?? true,
    ...(context.smartStyleUrl ? { smart_style_url: context.smartStyleUrl } : {}),
    ...(context.intent ? { intent: context.intent } : {}),
    ...(context.fhirContext ? { fhirContext: context.fhirContext } : {}),
  }
}

function isHttpUrl(value: string): boolean {
  const url = URL.parse(value)
  return url !== null && (url.protocol === 'http:' || url.protocol === 'https:')
}

async function signingKey(): Promise<JsonWebKey & { kid: string }> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true })
  const jwk = await exportJWK(privateKey)
  return { ...jwk, kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' }
}

/** The SMART authorization server: oidc-provider configured for the SMART App Launch code flow. */
export async function createAuthorizationServer(options: AuthorizationServerOptions): Promise<AuthorizationServer> {
  const { launches, stats } = options
  const grants = new Map<string, GrantRecord>()
  const issuedAccessTokens = new Set<string>()
  const expiredAccessTokens = new Set<string>()
  const anyRedirectClients = new Set(options.clients.filter((c) => !c.redirectUris).map((c) => c.clientId))

  const provider = new Provider(options.issuer, {
    adapter: memoryAdapterFactory(options.clients.map(clientMetadata)),
    jwks: { keys: [await signingKey()] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    routes: ROUTES,
    responseTypes: ['code'],
    pkce: { required: () => true },
    scopes: allSupportedScopes(options.profile.scopeSyntax),
    claims: { openid: ['sub'], fhirUser: ['fhirUser'], profile: ['name', 'given_name', 'family_name'] },
    // SMART apps read fhirUser from the id_token even when an access token is issued alongside.
    conformIdTokenClaims: false,
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post', 'private_key_jwt'],
    enabledJWA: { clientAuthSigningAlgValues: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'ES256', 'ES384'] },
    assertJwtClientAuthClaimsAndHeader: strictAssertionCheck(options.clients, `${options.issuer}${ROUTES.token}`),
    features: {
      devInteractions: { enabled: false },
      revocation: {
        enabled: options.profile.revocation,
        allowedPolicy: async (_ctx: unknown, client: { clientId: string }, token: { clientId?: string }) => token.clientId === client.clientId,
      },
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `${INTERACTION_PATH}/${interaction.uid}` },
    extraParams: {
      async aud(_ctx: unknown, value: unknown) {
        if (value !== options.fhirBase) throw new errors.InvalidRequest('aud must be the FHIR server base URL')
      },
      async launch(ctx: KoaContextWithOIDC, value: unknown) {
        if (value === undefined) {
          const scope = String(ctx.oidc?.params?.scope ?? '').split(' ')
          if (scope.includes('launch')) {
            throw new errors.InvalidRequest('launch is required with the launch scope (a standalone launch asks for launch/patient without the launch scope)')
          }
        } else if (typeof value !== 'string' || !launches.has(value)) {
          throw new errors.InvalidRequest('unknown launch')
        }
      },
    },
    findAccount: async (_ctx: unknown, sub: string) => {
      const claims = options.users.claims(sub)
      return claims && { accountId: sub, claims: async () => claims }
    },
    // Only the grant of this authorization's own interaction, never one an earlier authorization left in
    // the browser's session: every authorization gets its interaction (a fresh grant with its own launch
    // context, and the patient picker of a standalone launch each time).
    loadExistingGrant: async (ctx: { oidc: { result?: { consent?: { grantId?: string } }; provider: Provider } }) => {
      const grantId = ctx.oidc.result?.consent?.grantId
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined
    },
    // SMART: online_access asks for a refresh token too, and no client has to send prompt=consent.
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }, code: { scopes: Set<string> }) =>
      options.profile.refreshTokens && client.grantTypeAllowed('refresh_token') && (code.scopes.has('offline_access') || code.scopes.has('online_access')),
    rotateRefreshToken: () => options.rotateRefreshTokens,
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: options.accessTokenTtlSeconds,
      RefreshToken: options.refreshTokenTtlSeconds,
      Grant: Math.max(options.refreshTokenTtlSeconds, options.accessTokenTtlSeconds),
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
    },
    renderError: async (ctx: KoaContextWithOIDC, out: Record<string, string>) => {
      ctx.body = out
    },
  })

  const originalRedirectUriAllowed = provider.Client.prototype.redirectUriAllowed
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value: string) {
    if (anyRedirectClients.has(this.clientId)) return isHttpUrl(value)
    return originalRedirectUriAllowed.call(this, value)
  }

  provider.on('access_token.saved', (token: { jti: string }) => {
    issuedAccessTokens.add(token.jti)
  })

  provider.use(rawBasicCredentialsCheck(options.clients, [ROUTES.token, ROUTES.revocation]))
  provider.use(async function smartAuthorizationServer(ctx, next) {
    // oidc-provider drops offline_access unless prompt=consent (OIDC Core 11); SMART apps do not send
    // it, and consent is approved automatically here anyway.
    const { scope, prompt } = ctx.query
    if (ctx.method === 'GET' && ctx.path === ROUTES.authorization && prompt === undefined
      && typeof scope === 'string' && scope.split(' ').includes('offline_access')) {
      ctx.query = { ...ctx.query, prompt: 'consent' }
    }
    await next()
    const route = ctx.oidc?.route
    if (ctx.status !== 200) return
    if (route === 'revocation') stats.revocations++
    if (route !== 'token' || typeof ctx.body !== 'object' || ctx.body === null) return
    const grantType = ctx.oidc?.params?.grant_type
    if (grantType === 'authorization_code') stats.codeGrants++
    if (grantType === 'refresh_token') stats.refreshGrants++
    // oidc-provider repeats an unrotated refresh token; EHRs that keep it usually send none.
    if (grantType === 'refresh_token' && !options.rotateRefreshTokens) delete (ctx.body as { refresh_token?: unknown }).refresh_token
    const grantId = ctx.oidc?.entities.Grant?.jti
    const context = grantId ? grants.get(grantId)?.context : undefined
    if (context) Object.assign(ctx.body, launchContextFields(context))
  })

  async function validateAccessToken(value: string): Promise<TokenInfo | null> {
    const token = await provider.AccessToken.find(value).catch(() => undefined)
    if (!token || token.isExpired || expiredAccessTokens.has(token.jti)) return null
    return { scope: token.scope ?? '', clientId: token.clientId, patient: grants.get(token.grantId)?.patient ?? null }
  }

  function expireAccessTokens(): void {
    for (const jti of issuedAccessTokens) expiredAccessTokens.add(jti)
    issuedAccessTokens.clear()
  }

  const endpoint = (path: string) => `${options.issuer}${path}`
  return {
    handler: provider.callback(),
    interaction: createInteraction({ provider, store: options.store, users: options.users, launches, grants, faults: options.faults }),
    validateAccessToken,
    expireAccessTokens,
    endpoints: {
      authorization: endpoint(ROUTES.authorization),
      token: endpoint(ROUTES.token),
      jwks: endpoint(ROUTES.jwks),
      revocation: endpoint(ROUTES.revocation),
      userinfo: endpoint(ROUTES.userinfo),
    },
  }
}
