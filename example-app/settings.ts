import { randomBytes } from 'node:crypto'

/** Everything the example app reads from its environment. */
export interface ExampleSettings {
  /**
   * Where browsers reach the app, e.g. `https://localhost:3000` (callbackUrl = `${publicUrl}/callback`). Over https
   * the app can run inside the EHR's frame (its session cookie is Secure); over plain http only top-level.
   */
  publicUrl: string
  sessionSecret: string
  /** When set, sessions and SMART state live in Redis (connect-redis); otherwise in memory. */
  redisUrl: string | undefined
  /** When set (and no Redis URL), sessions and SMART state live in PostgreSQL (connect-pg-simple). */
  databaseUrl?: string
  clientId: string
  /** The FHIR bases of the EHRs allowed to launch the app. */
  issuers: string[]
  /** http:// EHRs are only acceptable for local development (the built-in mock EHR). */
  allowHttpIssuer: boolean
  /** Refresh this long before the access token expires. */
  refreshLeewaySeconds: number
  /**
   * Origins of the EHRs' own pages that may show the app in a frame (`knownFhirServers[].frameAncestors`);
   * no other site may frame it. Default: none (only the app itself).
   */
  frameAncestors?: string[]
  /**
   * The session cookie's SameSite. Default over https: `'none'`, sent with Secure and Partitioned, which the
   * app needs inside the EHR's frame and which works top-level too; `'lax'` for an app never shown in a frame
   * (a framed launch is then refused with MISCONFIGURED). Over plain http always `'lax'`. `partitioned: false`
   * leaves Partitioned out (the browsers that block third-party cookies then drop the cookie in the frame).
   */
  sessionCookie?: { sameSite?: 'none' | 'lax'; partitioned?: boolean }
}

/**
 * Reads the settings from environment variables:
 * PORT, APP_URL, SESSION_SECRET, REDIS_URL, DATABASE_URL, CLIENT_ID, ISS, ALLOW_HTTP_ISSUER, REFRESH_LEEWAY_SECONDS,
 * FRAME_ANCESTORS (origins, comma-separated), SESSION_SAMESITE (`none` or `lax`).
 */
export function settingsFromEnv(env: NodeJS.ProcessEnv, defaults: Partial<ExampleSettings> = {}): ExampleSettings {
  const port = Number(env.PORT ?? 3000)
  const issuers = env.ISS ? env.ISS.split(',').map((iss) => iss.trim()).filter(Boolean) : defaults.issuers
  if (!issuers?.length) throw new Error('ISS (the FHIR base URLs of the EHRs allowed to launch the app, comma-separated) is not set')
  let sessionSecret = env.SESSION_SECRET ?? defaults.sessionSecret
  if (!sessionSecret) {
    sessionSecret = randomBytes(32).toString('base64url')
    console.warn('SESSION_SECRET is not set: using a random one (sessions end when the app restarts)')
  }
  const sameSite = env.SESSION_SAMESITE ?? defaults.sessionCookie?.sameSite
  if (sameSite !== undefined && sameSite !== 'none' && sameSite !== 'lax') throw new Error(`SESSION_SAMESITE must be none or lax, got ${sameSite}`)
  const frameAncestors = env.FRAME_ANCESTORS ? env.FRAME_ANCESTORS.split(',').map((origin) => origin.trim()).filter(Boolean) : defaults.frameAncestors
  return {
    publicUrl: (env.APP_URL ?? defaults.publicUrl ?? `http://127.0.0.1:${port}`).replace(/\/$/, ''),
    sessionSecret,
    redisUrl: env.REDIS_URL || defaults.redisUrl || undefined,
    databaseUrl: env.DATABASE_URL || defaults.databaseUrl || undefined,
    clientId: env.CLIENT_ID ?? defaults.clientId ?? 'mock-app',
    issuers,
    allowHttpIssuer: (env.ALLOW_HTTP_ISSUER ?? String(defaults.allowHttpIssuer ?? false)) === 'true',
    refreshLeewaySeconds: Number(env.REFRESH_LEEWAY_SECONDS ?? defaults.refreshLeewaySeconds ?? 60),
    frameAncestors,
    sessionCookie: { ...defaults.sessionCookie, sameSite },
  }
}
