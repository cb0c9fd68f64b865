import type { SmartLogger } from '../config'
import type { KnownFhirServer } from '../config-servers'
import type { SmartConfiguration } from '../oauth/discovery'
import { toV1Scope } from '../oauth/scopes'

/**
 * What an EHR's smart-configuration says it can do, checked before the browser is sent there (issue 21).
 * Metadata in the field is often incomplete — EHRs that launch apps every day omit `launch-ehr`, list no
 * client types, or no `capabilities` at all — so a missing capability is a warning through the app's logger,
 * once per EHR and capability, and the launch goes on; the EHR's own answer decides. The one refusal is PKCE:
 * an EHR that lists `code_challenge_methods_supported` without `S256` is refused at discovery (SECURITY S4);
 * one that lists nothing gets S256 anyway (athenahealth lists nothing and requires it).
 *
 * | check                                   | when it fails                          | outcome |
 * |-----------------------------------------|----------------------------------------|---------|
 * | `launch-ehr` for an EHR launch          | listed capabilities lack it            | warning |
 * | `launch-standalone` for a login         | listed capabilities lack it            | warning |
 * | `client-public` / `client-confidential-symmetric` / `client-confidential-asymmetric` for the app's type | listed capabilities lack it | warning |
 * | PKCE `S256`                             | `code_challenge_methods_supported` lacks it | refusal (DISCOVERY_FAILED) |
 * | scope syntax                            | `permission-v1` without `permission-v2` | v2 scopes sent in v1 form |
 */

const CLIENT_CAPABILITY: Record<KnownFhirServer['type'], string> = {
  public: 'client-public',
  'confidential-symmetric': 'client-confidential-symmetric',
  'confidential-asymmetric': 'client-confidential-asymmetric',
}

const warned = new WeakMap<SmartLogger, Set<string>>()

function warnOnce(logger: SmartLogger | null, iss: string, key: string, message: string): void {
  if (!logger) return
  let seen = warned.get(logger)
  if (!seen) warned.set(logger, (seen = new Set()))
  if (seen.has(`${iss}\u0000${key}`)) return
  seen.add(`${iss}\u0000${key}`)
  logger.warn({ event: 'smart.capabilities', iss, capability: key }, message)
}

/** Warns (once per EHR and capability) about what the launch needs and the EHR does not list. */
export function checkCapabilities(smart: SmartConfiguration, iss: string, launch: { kind: 'ehr' | 'standalone'; clientType: KnownFhirServer['type'] }, logger: SmartLogger | null): void {
  const listed = Array.isArray(smart.capabilities) ? smart.capabilities : null
  if (listed === null) return
  const needed = [launch.kind === 'ehr' ? 'launch-ehr' : 'launch-standalone', CLIENT_CAPABILITY[launch.clientType]]
  for (const capability of needed) {
    if (!listed.includes(capability)) {
      warnOnce(logger, iss, capability, `The EHR's smart-configuration does not list "${capability}"; launching anyway (EHRs often list less than they support)`)
    }
  }
}

/**
 * The scope to send: SMART v2 resource scopes in v1 form for an EHR that advertises `permission-v1` and not
 * `permission-v2`; unchanged otherwise, and always unchanged when the app gave this EHR a scope of its own.
 */
export function scopeForEhr(smart: SmartConfiguration, iss: string, scope: string, explicit: boolean, logger: SmartLogger | null): string {
  const listed = Array.isArray(smart.capabilities) ? smart.capabilities : []
  if (explicit || !listed.includes('permission-v1') || listed.includes('permission-v2')) return scope
  const converted = toV1Scope(scope)
  for (const widened of converted.dropped) {
    warnOnce(logger, iss, widened, `"${widened}" cannot be asked of a SMART v1 EHR with its query restriction; asked without it`)
  }
  return converted.scope
}
