// Jest globalTeardown: stop the redis-server and the Redis Cluster (by PID) and the PostgreSQL cluster
// (pg_ctl stop) that global-setup.ts started, if any, and remove their directories.
import { recallPostgres, rememberPostgres, stopPostgres } from './postgres-server'
import { recallCluster, rememberCluster, stopRedisCluster } from './redis-cluster'
import { recallRedis, rememberRedis, stopRedis } from './redis-server'

export default async function globalTeardown(): Promise<void> {
  const redis = recallRedis()
  const cluster = recallCluster()
  rememberRedis(undefined)
  rememberCluster(undefined)
  const postgres = recallPostgres()
  rememberPostgres(undefined)
  if (postgres && process.env.DATABASE_URL === postgres.url) delete process.env.DATABASE_URL
  if (redis && process.env.REDIS_URL === redis.url) delete process.env.REDIS_URL
  if (cluster && process.env.REDIS_CLUSTER_NODES === cluster.nodes) delete process.env.REDIS_CLUSTER_NODES
  await Promise.all([redis && stopRedis(redis), cluster && stopRedisCluster(cluster), postgres && stopPostgres(postgres)])
}
