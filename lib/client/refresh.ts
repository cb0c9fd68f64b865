import type { ResolvedConfig } from '../config'
import { SmartError } from '../errors'
import { redeemRefreshToken } from '../oauth/authorization-server'
import { tokenSetFrom } from '../oauth/token-response'
import { withEnded } from '../session/launch-identity'
import { singleFlight } from '../storage/lock'
import type { LaunchRecord, TokenSet } from '../storage/records'
import { authorizationServerFor } from './registration'
import type { ClientParts } from './runtime'

/**
 * How long before expiry to refresh: `refreshLeewaySeconds`, but never more than half the token's lifetime
 * (one-minute sandbox tokens would otherwise be refreshed on every request).
 */
export function refreshLead(config: ResolvedConfig, tokens: TokenSet): number {
  const leeway = config.refreshLeewaySeconds * 1000
  if (tokens.expiresAt === null || tokens.issuedAt === undefined) return leeway
  return Math.min(leeway, (tokens.expiresAt - tokens.issuedAt) / 2)
}

/** The launch with fresh tokens: refreshed by us, or by whoever held the session's lock before us. */
export async function refreshLaunch(
  { rt, session }: Pick<ClientParts, 'rt' | 'session'>, sid: string, stale: LaunchRecord, staleAccessToken: string,
): Promise<{ launch: LaunchRecord; tokens: TokenSet }> {
  const launchId = stale.id
  const outcome = await singleFlight(rt, `${sid}\u0000${launchId}`, () =>
    session.update<{ launch: LaunchRecord; tokens: TokenSet } | SmartError>(sid, async (current) => {
      const launch = current?.launches[launchId]
      // A relaunch of the same EHR and patient replaced it while we waited for the lock: its tokens are new.
      const relaunched = launch ? undefined : Object.values(current?.launches ?? {}).find((other) => other.selector === stale.selector)
      if (relaunched) return { result: { launch: relaunched, tokens: session.tokensOf(relaunched) } }
      if (!current || !launch) throw new SmartError('NO_SESSION', 'The SMART launch ended while refreshing; launch again')
      const tokens = session.tokensOf(launch)
      // Someone else refreshed while we waited for the lock: use their tokens (a refresh token is single use).
      if (tokens.accessToken !== staleAccessToken) return { result: { launch, tokens } }
      if (!tokens.refreshToken) throw new SmartError('SESSION_EXPIRED', 'The SMART session has expired and cannot be refreshed; launch again')
      const as = authorizationServerFor(rt, launch.iss, await rt.discover(launch.iss))
      try {
        const refreshToken = tokens.refreshToken
        const response = await rt.observe('refresh', { 'smart.iss': launch.iss }, () => redeemRefreshToken(as, refreshToken))
        const now = rt.config.now()
        const refreshed = tokenSetFrom(response, now, tokens)
        const scope = typeof response.scope === 'string' && response.scope ? response.scope : launch.scope
        const updated: LaunchRecord = { ...launch, scope, tokens: session.sealTokens(launchId, refreshed), lastUsedAt: now }
        return { record: { ...current, launches: { ...current.launches, [launchId]: updated } }, result: { launch: updated, tokens: refreshed } }
      } catch (err) {
        if (!(err instanceof SmartError) || err.code !== 'SESSION_EXPIRED') throw err
        // A refused refresh (invalid_grant) ends this launch, and only this one: the next request does
        // not try again (S33), and other patients' launches keep their lifetime.
        const { [launchId]: ended, ...rest } = current.launches
        const endings = withEnded(current.ended, { [ended.selector]: { reason: 'refused', at: rt.config.now() } })
        return { record: { ...current, launches: rest, ended: endings }, result: err }
      }
    }),
  )
  if (outcome instanceof SmartError) throw outcome
  return outcome
}
