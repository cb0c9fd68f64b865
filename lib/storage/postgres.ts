import type { Store } from 'express-session'

/**
 * The public part of connect-pg-simple's `PGStore` we build on: its `query` (over the app's `pg` pool or
 * pg-promise, creating the table first when `createTableIfMissing` is set) and the quoted name of its
 * table. Its pool itself is private. Duck-typed, so the library never loads `pg` itself.
 */
export interface PgLikeStore {
  query(sql: string, params: unknown[], done: (err: Error | null, firstRow?: Record<string, unknown>) => void): void
  quotedTable(): string
}

/** connect-pg-simple's store (any version with `query`, `quotedTable` and `pruneSessions`), or null. */
export function asPgStore(store: Store): PgLikeStore | null {
  const candidate = store as Store & Partial<Record<'query' | 'quotedTable' | 'pruneSessions', unknown>>
  if (typeof candidate.query === 'function' && typeof candidate.quotedTable === 'function' && typeof candidate.pruneSessions === 'function') {
    return candidate as unknown as PgLikeStore
  }
  return null
}

/**
 * Writes the row `sid` only when there is none or the one there has expired; true when it did.
 *
 * Why a row and not `pg_try_advisory_lock`: an advisory lock belongs to one connection (a pool would have to
 * pin it for the lock's whole life) and carries no value or lifetime, while a claim is also a single-use
 * marker that must outlive the request (a spent `state`) and a lock whose owner is read back before it is
 * released. A row of the session table is all of that, and connect-pg-simple prunes it with the sessions.
 *
 * One statement, so PostgreSQL makes it atomic across every process: a concurrent insert of the same `sid`
 * waits for the first to commit, then takes the `DO UPDATE` branch, whose `WHERE` replaces the row only if
 * it has expired (a claim whose holder died does not block beyond its TTL). A row comes back (`RETURNING`)
 * only when this call wrote it. Expiry is computed and compared by the database's clock, the one authority
 * all processes share, as Redis's own clock is for `SET NX EX`.
 */
export function pgClaim(store: PgLikeStore, sid: string, sess: unknown, ttlSeconds: number): Promise<boolean> {
  const sql =
    `INSERT INTO ${store.quotedTable()} AS claimed (sid, sess, expire) VALUES ($1, $2, now() + make_interval(secs => $3)) ` +
    'ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess, expire = EXCLUDED.expire WHERE claimed.expire < now() ' +
    'RETURNING sid'
  return new Promise((resolve, reject) => {
    store.query(sql, [sid, JSON.stringify(sess), ttlSeconds], (err, row) => (err ? reject(err) : resolve(row !== undefined)))
  })
}

/**
 * Removes the row `sid` and answers what it held, unless it had expired: one `DELETE … RETURNING`, so that of
 * concurrent takes in any number of processes exactly one gets the row (the others wait for its lock, then
 * find it gone). Expiry by the database's clock, as for `pgClaim`.
 */
export function pgTake(store: PgLikeStore, sid: string): Promise<unknown> {
  const sql = `DELETE FROM ${store.quotedTable()} WHERE sid = $1 RETURNING sess, expire >= now() AS live`
  return new Promise((resolve, reject) => {
    store.query(sql, [sid], (err, row) => {
      if (err) return reject(err)
      // Parsed here, in connect-pg-simple's callback: a malformed row must reject, never throw out of it.
      try {
        resolve(row?.live === true ? parsedSess(row.sess) : undefined)
      } catch (parseError) {
        reject(parseError)
      }
    })
  })
}

/** The `sess` column as connect-pg-simple reads it: json(b) comes parsed, text as a string. */
function parsedSess(sess: unknown): unknown {
  return typeof sess === 'string' ? JSON.parse(sess) : sess
}
