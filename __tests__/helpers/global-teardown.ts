// Jest globalTeardown: stop the redis-server that global-setup.ts started (by PID), if any.
import { recallRedis, rememberRedis, stopRedis } from './redis-server'

export default async function globalTeardown(): Promise<void> {
  const redis = recallRedis()
  if (!redis) return
  rememberRedis(undefined)
  if (process.env.REDIS_URL === redis.url) delete process.env.REDIS_URL
  await stopRedis(redis)
}
