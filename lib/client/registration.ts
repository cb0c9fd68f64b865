import type { ResolvedConfig } from '../config'
import { normalizeIssuer, type KnownFhirServer } from '../config-servers'
import type { AuthorizationServer } from '../oauth/authorization-server'
import type { SmartConfiguration } from '../oauth/discovery'
import type { Runtime } from './runtime'

/**
 * The app's registration at one EHR (SECURITY S39): the client id and scope of its `knownFhirServers` entry
 * when it has them, else the configuration's. Every step of a launch uses the registration of the EHR it
 * talks to: the authorization request, the token request and client authentication, the id_token's
 * `aud`/`azp`, refresh and revocation.
 */
export interface Registration {
  clientId: string
  /** The scope of an EHR launch. */
  scope: string
  /** The scope of a standalone launch: without the bare `launch` scope. */
  standaloneScope: string
  /** Whether the scope asks for an id_token (`openid`): a nonce is sent and checked. */
  openid: boolean
  /** The EHR's entry of `knownFhirServers`, if the app lists EHRs. */
  server: KnownFhirServer | undefined
}

const registrations = new WeakMap<ResolvedConfig, Map<string, Registration>>()

export function registrationFor(config: ResolvedConfig, iss: string): Registration {
  let byServer = registrations.get(config)
  if (!byServer) registrations.set(config, (byServer = new Map()))
  const server = config.knownFhirServers?.get(normalizeIssuer(iss))
  const key = server ? normalizeIssuer(server.issuer) : ''
  let registration = byServer.get(key)
  if (!registration) {
    const scope = server?.scope ?? config.scope
    const scopes = scope.split(' ')
    registration = {
      clientId: server?.clientId ?? config.clientId,
      scope,
      standaloneScope: scopes.filter((name) => name !== 'launch').join(' '),
      openid: scopes.includes('openid'),
      server,
    }
    byServer.set(key, registration)
  }
  return registration
}

/** The authorization server of `iss` as the app is registered there (null without its discovery). */
export function authorizationServerFor(rt: Runtime, iss: string, smart: SmartConfiguration): AuthorizationServer
export function authorizationServerFor(rt: Runtime, iss: string, smart: SmartConfiguration | null): AuthorizationServer | null
export function authorizationServerFor(rt: Runtime, iss: string, smart: SmartConfiguration | null): AuthorizationServer | null {
  if (!smart) return null
  const { config, http } = rt
  const { clientId, server } = registrationFor(config, iss)
  return { iss, smart, clientId, server, http, allowHttp: config.allowNonHttpsLaunch }
}

/** The authorization server of `iss`, discovered now; null when discovery fails (best-effort revocation). */
export async function authorizationServerOf(rt: Runtime, iss: string): Promise<AuthorizationServer | null> {
  return authorizationServerFor(rt, iss, await rt.discover(iss).catch(() => null))
}
