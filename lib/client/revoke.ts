import { revokeToken, type AuthorizationServer } from '../oauth/authorization-server'
import type { LaunchRecord, TokenSet } from '../storage/records'
import { authorizationServerOf } from './registration'
import type { ClientParts } from './runtime'

/** Revokes tokens at an authorization server: the refresh token first. Nothing without a server (its discovery failed). */
export async function revoke(as: AuthorizationServer | null, tokens: TokenSet): Promise<void> {
  if (!as) return
  if (tokens.refreshToken) await revokeToken(as, tokens.refreshToken, 'refresh_token')
  await revokeToken(as, tokens.accessToken, 'access_token')
}

/** Revokes a stored launch's tokens at its own EHR. */
export async function revokeLaunch({ rt, session }: Pick<ClientParts, 'rt' | 'session'>, launch: LaunchRecord): Promise<void> {
  await revoke(await authorizationServerOf(rt, launch.iss), session.tokensOf(launch))
}
