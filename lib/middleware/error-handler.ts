import type { ErrorRequestHandler, NextFunction, Request, Response } from 'express'
import { SmartError } from '../errors'

const HIDDEN_MESSAGES: Record<number, string> = {
  502: 'The EHR did not answer as expected; try again',
  503: 'The session store is unavailable; try again',
}

/**
 * An optional JSON error handler for `SmartError`s: answers `{ code, message }` with the error's status.
 * Messages of server-side failures (5xx) are replaced by a generic text. Other errors pass on.
 *
 * @example
 * app.use(smartErrorHandler())
 */
export function smartErrorHandler(): ErrorRequestHandler {
  return function smartErrorHandlerMiddleware(err: unknown, _req: Request, res: Response, next: NextFunction): void {
    if (!(err instanceof SmartError) || res.headersSent) return next(err)
    const message = err.expose ? err.message : (HIDDEN_MESSAGES[err.status] ?? 'Internal error')
    res.status(err.status).json({ code: err.code, message })
  }
}
