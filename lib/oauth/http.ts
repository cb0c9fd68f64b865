/** Outbound HTTP with the limits every call to an EHR needs: a timeout, no redirects, a size cap. */

import { sanitizeCause } from '../errors'

export interface HttpLimits {
  fetch: typeof fetch
  timeoutMs: number
}

/**
 * Thrown for transport-level failures; callers turn it into the SmartError of their step. Its cause is
 * sanitized: a fetch implementation's error may carry the request, bearer token included.
 */
export class HttpFailure extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: sanitizeCause(options.cause) })
    this.name = 'HttpFailure'
  }
}

const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304])

async function readCapped(response: Response, maxBytes: number): Promise<Buffer | null> {
  if (!response.body) return null
  const length = response.headers.get('content-length')
  const declared = length !== null && /^\d{1,15}$/.test(length) ? Number(length) : null
  if (declared !== null && declared > maxBytes) {
    await response.body.cancel().catch(() => undefined)
    throw new HttpFailure(`response larger than ${maxBytes} bytes`)
  }
  // A declared length within the cap bounds what the HTTP parser reads: one read of the whole body, much
  // cheaper than a loop over the stream (the FHIR read's most frequent case). Not when the body is encoded:
  // the length is then the compressed one, and what fetch decompresses may be far larger. Else count as we go.
  const encoding = response.headers.get('content-encoding')
  if (declared !== null && (encoding === null || encoding === 'identity')) return Buffer.from(await response.arrayBuffer())
  const reader = response.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > maxBytes) {
      await reader.cancel().catch(() => undefined)
      throw new HttpFailure(`response larger than ${maxBytes} bytes`)
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks)
}

/** An answer read whole: what `boundedAnswer` gives (its body null when the status has none). */
export interface BufferedAnswer {
  status: number
  statusText: string
  headers: Headers
  body: Buffer | null
}

/**
 * Fetches with a timeout that covers the whole body, never follows a redirect (a 3xx is returned as is),
 * and refuses bodies over `maxBytes`. The answer is fully buffered. The FHIR client reads it as is (one
 * buffer, no second stream: a FHIR read is the app's most frequent call); see `boundedFetch` for a Response.
 */
export async function boundedAnswer(limits: HttpLimits, url: string | URL, init: RequestInit = {}, maxBytes = 1 << 20): Promise<BufferedAnswer> {
  // A timer of our own, cleared as soon as the body is read (AbortSignal.timeout's stays armed for the whole
  // timeout after every call: one per FHIR request).
  const timeout = new AbortController()
  const timer = setTimeout(() => timeout.abort(new DOMException(`no answer within ${limits.timeoutMs} ms`, 'TimeoutError')), limits.timeoutMs)
  const signal = init.signal ? AbortSignal.any([init.signal, timeout.signal]) : timeout.signal
  try {
    const response = await limits.fetch(url, { ...init, redirect: 'manual', signal })
    const body = await readCapped(response, maxBytes)
    const { status, statusText, headers } = response
    return { status, statusText, headers, body: NULL_BODY_STATUS.has(status) ? null : body }
  } catch (err) {
    if (err instanceof HttpFailure) throw err
    const timedOut = timeout.signal.aborted
    throw new HttpFailure(timedOut ? `no answer within ${limits.timeoutMs} ms` : 'request failed', { cause: err })
  } finally {
    clearTimeout(timer)
  }
}

/** `boundedAnswer` as a fully buffered `Response`, for code that expects one (openid-client's customFetch, discovery). */
export async function boundedFetch(limits: HttpLimits, url: string | URL, init: RequestInit = {}, maxBytes = 1 << 20): Promise<Response> {
  const { status, statusText, headers, body } = await boundedAnswer(limits, url, init, maxBytes)
  return new Response(body === null ? null : new Uint8Array(body), { status, statusText, headers })
}
