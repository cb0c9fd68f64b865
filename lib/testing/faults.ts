import type { NextFunction, Request, RequestHandler, Response } from 'express'
import type { Fault } from './types'

/**
 * Express middleware that makes an endpoint misbehave while `current()` names a fault. Hung
 * responses are handed to `hanging` so that closing the mock EHR can end them.
 */
export function faultInjector(current: () => Fault | undefined, hanging: Set<Response>): RequestHandler {
  return function injectFault(_req: Request, res: Response, next: NextFunction) {
    const fault = current()
    if (fault === undefined) return next()
    if (fault === '500') {
      res.status(500).json({ error: 'server_error', error_description: 'injected fault' })
    } else if (fault === 'malformed') {
      res.status(200).type('text/html').send('<html><body>Not what you expected</body></html>')
    } else {
      hanging.add(res)
      res.on('close', () => hanging.delete(res))
      if (fault === 'drop') {
        // The endpoint runs as usual; whatever it answers is swallowed.
        res.writeHead = () => res
        res.write = () => true
        res.end = () => res
        next()
      }
    }
  }
}
