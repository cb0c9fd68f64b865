import type { Store } from 'express-session'
import type { SmartLogger } from '../config'

/**
 * node-redis clients are EventEmitters that emit `error` whenever the connection drops. With no listener,
 * Node turns that event into an uncaught exception and the app process dies when Redis restarts, although
 * every store call would otherwise fail cleanly (and the middleware answer 503 `STORAGE_UNAVAILABLE`).
 * The fix is one line in the app (`client.on('error', …)`), so the library says so, once per client.
 */
interface NodeRedisLike {
  isOpen: unknown
  listenerCount(event: 'error'): number
}

function nodeRedisClientOf(store: Store): NodeRedisLike | null {
  const client = (store as Store & { client?: unknown }).client as Partial<NodeRedisLike> | undefined
  // isOpen tells node-redis (client and cluster) from ioredis, which handles a missing listener itself.
  if (client && typeof client === 'object' && 'isOpen' in client && typeof client.listenerCount === 'function') return client as NodeRedisLike
  return null
}

const warned = new WeakSet<object>()

/**
 * Warns once, through `logger` (else `process.emitWarning`), when `store` is connect-redis over a node-redis
 * client without an `error` listener. Checked on the next turn of the event loop, so that an app which adds
 * its listener right after creating the storage is not warned.
 */
export function warnWithoutErrorListener(store: Store, logger: SmartLogger | undefined): void {
  const client = nodeRedisClientOf(store)
  if (!client || warned.has(client)) return
  setImmediate(() => {
    if (warned.has(client) || client.listenerCount('error') > 0) return
    warned.add(client)
    const message =
      "express-smart-on-fhir: the node-redis client behind the session store has no 'error' listener: when Redis " +
      "goes away, Node throws its 'error' event and the app process exits instead of answering 503 " +
      "STORAGE_UNAVAILABLE. Add one: client.on('error', (err) => logger.error(err))."
    if (logger) logger.warn({ event: 'smart.storage.no_error_listener' }, message)
    else process.emitWarning(message, { code: 'SMART_STORE_NO_ERROR_LISTENER' })
  }).unref()
}
