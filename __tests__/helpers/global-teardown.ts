// Jest globalTeardown: stop the redis-server and the Redis Cluster that global-setup.ts started (by
// PID), if any, and remove their directories.
import { recallCluster, rememberCluster, stopRedisCluster } from './redis-cluster'
import { recallRedis, rememberRedis, stopRedis } from './redis-server'

export default async function globalTeardown(): Promise<void> {
  const redis = recallRedis()
  const cluster = recallCluster()
  rememberRedis(undefined)
  rememberCluster(undefined)
  if (redis && process.env.REDIS_URL === redis.url) delete process.env.REDIS_URL
  if (cluster && process.env.REDIS_CLUSTER_NODES === cluster.nodes) delete process.env.REDIS_CLUSTER_NODES
  await Promise.all([redis && stopRedis(redis), cluster && stopRedisCluster(cluster)])
}
