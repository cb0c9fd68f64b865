import { randomBytes } from 'node:crypto'

/** Everything the example app reads from its environment. */
export interface ExampleSettings {
  /** Where browsers reach the app, e.g. `http://127.0.0.1:3000` (callbackUrl = `${publicUrl}/callback`). */
  publicUrl: string
  sessionSecret: string
  /** When set, sessions and SMART state live in Redis (connect-redis); otherwise in memory. */
  redisUrl: string | undefined
  clientId: string
  /** The FHIR bases of the EHRs allowed to launch the app. */
  issuers: string[]
  /** http:// EHRs are only acceptable for local development (the built-in mock EHR). */
  allowHttpIssuer: boolean
  /** Refresh this long before the access token expires. */
  refreshLeewaySeconds: number
}

/**
 * Reads the settings from environment variables:
 * PORT, APP_URL, SESSION_SECRET, REDIS_URL, CLIENT_ID, ISS, ALLOW_HTTP_ISSUER, REFRESH_LEEWAY_SECONDS.
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
  return {
    publicUrl: (env.APP_URL ?? defaults.publicUrl ?? `http://127.0.0.1:${port}`).replace(/\/$/, ''),
    sessionSecret,
    redisUrl: env.REDIS_URL || defaults.redisUrl || undefined,
    clientId: env.CLIENT_ID ?? defaults.clientId ?? 'mock-app',
    issuers,
    allowHttpIssuer: (env.ALLOW_HTTP_ISSUER ?? String(defaults.allowHttpIssuer ?? false)) === 'true',
    refreshLeewaySeconds: Number(env.REFRESH_LEEWAY_SECONDS ?? defaults.refreshLeewaySeconds ?? 60),
  }
}
