import { SmartError } from '../errors'

const MAX_PARAM_LENGTH = 4096

/** A request parameter the library needs: a non-empty string of bounded length, or a `MISSING_PARAMETER` error. */
export function param(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new SmartError('MISSING_PARAMETER', `The "${name}" parameter is required`)
  if (value.length > MAX_PARAM_LENGTH) throw new SmartError('MISSING_PARAMETER', `The "${name}" parameter is too long`)
  return value
}
