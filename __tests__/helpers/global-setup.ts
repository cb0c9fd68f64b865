// Jest globalSetup: make a Redis available to the tests as process.env.REDIS_URL.
//  - REDIS_URL already set: used as is.
//  - otherwise: start redis-server from PATH on a free port (stopped by global-teardown.ts).
//  - no redis-server on PATH: with CI=true the run fails; elsewhere a warning, and the Redis
//    variants of the tests are left out (see stores.ts).
import { findOnPath, recallRedis, rememberRedis, startRedis } from './redis-server'

const EXIT_HOOK = '__expressSmartOnFhirTestRedisExitHook__'

/** Safety net if Jest exits without running globalTeardown (installed once, also in watch mode). */
function killOnExit(): void {
  const g = globalThis as typeof globalThis & { [EXIT_HOOK]?: true }
  if (g[EXIT_HOOK]) return
  g[EXIT_HOOK] = true
  process.once('exit', () => {
    const child = recallRedis()?.child
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
}

export default async function globalSetup(): Promise<void> {
  if (process.env.REDIS_URL) return
  if (recallRedis()) return // watch mode: still running from the previous run

  const binary = findOnPath('redis-server')
  if (!binary) {
    const help =
      'redis-server was not found on PATH. Install it (Debian/Ubuntu: `apt-get update && apt-get install -y redis-server`) ' +
      'or set REDIS_URL to a Redis the tests may use.'
    if (process.env.CI === 'true') {
      throw new Error(`CI=true: the tests need Redis. ${help}`)
    }
    console.warn(`\n[express-smart-on-fhir tests] WARNING: ${help} Tests over RedisStore are SKIPPED.\n`)
    return
  }

  const redis = await startRedis(binary)
  rememberRedis(redis)
  killOnExit()
  // Set before Jest spawns its workers, so they inherit it (and --runInBand shares this process).
  process.env.REDIS_URL = redis.url
}
