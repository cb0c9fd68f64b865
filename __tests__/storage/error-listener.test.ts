// Issue 23: a node-redis client without an 'error' listener kills the app process when Redis goes away
// (Node throws an unhandled 'error' event) instead of letting the store calls fail into 503s. The library
// cannot add the listener for the app (it would hide the errors), so it says so once, through its logger.
import { MemoryStore } from 'express-session'
import { RedisStore } from 'connect-redis'
import { createClient, createCluster } from 'redis'
import { expressSessionStorage } from '../../lib'
import type { SmartLogger } from '../../lib'

interface Warning {
  fields: Record<string, unknown>
  message: string
}

function recordingLogger(): { logger: SmartLogger; warnings: Warning[] } {
  const warnings: Warning[] = []
  const logger: SmartLogger = { debug() {}, info() {}, error() {}, warn: (fields, message) => void warnings.push({ fields, message }) }
  return { logger, warnings }
}

/** Past the turn of the event loop on which the check is deferred. */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve))

const redisUrl = () => {
  const url = process.env.REDIS_URL
  if (!url) throw new Error('REDIS_URL is not set: __tests__/helpers/global-setup.ts starts a redis-server')
  return url
}

describe('a node-redis client without an error listener', () => {
  it('is reported once through the logger, however many storages use it', async () => {
    const client = createClient({ url: redisUrl(), socket: { reconnectStrategy: false } })
    try {
      await client.connect()
      const store = new RedisStore({ client })
      const { logger, warnings } = recordingLogger()
      expressSessionStorage(store, { logger })
      expressSessionStorage(store, { logger, prefix: 'other:' })
      await nextTurn()
      expect(warnings).toHaveLength(1)
      expect(warnings[0].fields).toEqual({ event: 'smart.storage.no_error_listener' })
      expect(warnings[0].message).toMatch(/no 'error' listener.*client\.on\('error'/s)
    } finally {
      client.on('error', () => {})
      if (client.isOpen) await client.close()
    }
  })

  it('is not reported when the app adds its listener right after creating the storage', async () => {
    const client = createClient({ url: redisUrl(), socket: { reconnectStrategy: false } })
    try {
      await client.connect()
      const { logger, warnings } = recordingLogger()
      expressSessionStorage(new RedisStore({ client }), { logger })
      client.on('error', () => {})
      await nextTurn()
      expect(warnings).toEqual([])
    } finally {
      if (client.isOpen) await client.close()
    }
  })

  it('covers the cluster client too (not connected: the check needs only the object)', async () => {
    const nodes = process.env.REDIS_CLUSTER_NODES ?? '127.0.0.1:1'
    const cluster = createCluster({ rootNodes: nodes.split(',').map((node) => ({ url: `redis://${node.trim()}` })) })
    const { logger, warnings } = recordingLogger()
    expressSessionStorage(new RedisStore({ client: cluster }), { logger })
    await nextTurn()
    expect(warnings.map((w) => w.fields.event)).toEqual(['smart.storage.no_error_listener'])
  })

  it('goes to process.emitWarning without a logger', async () => {
    const client = createClient({ url: redisUrl() })
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    try {
      expressSessionStorage(new RedisStore({ client }))
      await nextTurn()
      expect(emitWarning).toHaveBeenCalledTimes(1)
      expect(emitWarning).toHaveBeenCalledWith(expect.stringContaining("no 'error' listener"), { code: 'SMART_STORE_NO_ERROR_LISTENER' })
    } finally {
      emitWarning.mockRestore()
    }
  })

  it('says nothing for stores without one (MemoryStore)', async () => {
    const { logger, warnings } = recordingLogger()
    expressSessionStorage(new MemoryStore(), { logger })
    await nextTurn()
    expect(warnings).toEqual([])
  })
})
