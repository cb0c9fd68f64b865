import { ProxyTracerProvider, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api'
import type { ResolvedConfig } from './config'
import { SmartError } from './errors'

/**
 * What the library tells the app's logger and OpenTelemetry about its work: one span and one log line per
 * launch, callback, refresh, logout and FHIR request, with the issuer, the outcome, the error code and counts.
 * Never a token, a code, a verifier or a secret; a patient id only with `recordPatientIds`. Without an
 * OpenTelemetry SDK installed by the app, the spans are no-ops.
 */

export type Operation = 'launch' | 'login' | 'callback' | 'refresh' | 'logout' | 'fhir_request'

/** What an operation adds as it learns it (attributes are recorded on the span and in the log line). */
export interface Observation {
  set(attributes: Attributes): void
  /** Recorded only when the app opted in with `recordPatientIds`. */
  patient(id: string | null): void
}

export type Observe = <T>(operation: Operation, attributes: Attributes, work: (observation: Observation) => Promise<T>) => Promise<T>

const TRACER_NAME = 'express-smart-on-fhir'

/**
 * The tracer of the OpenTelemetry SDK registered now, or null without one. Without one, the global provider is
 * the API's proxy with no delegate and every span would be a no-op: the span and its context are then skipped,
 * which is most of an observation's cost on a launch or a FHIR request. Asked on every operation, so that an
 * SDK registered after the app started (or again after `trace.disable()`) is used from its next operation on.
 */
function currentTracer(): Tracer | null {
  const provider = trace.getTracerProvider()
  if (provider instanceof ProxyTracerProvider && provider.getDelegateTracer(TRACER_NAME) === undefined) return null
  return provider.getTracer(TRACER_NAME)
}

const MESSAGES: Record<Operation, string> = {
  launch: 'SMART EHR launch',
  login: 'SMART standalone launch',
  callback: 'SMART callback',
  refresh: 'SMART token refresh',
  logout: 'SMART logout',
  fhir_request: 'FHIR request',
}

/** The `observe` of one configuration: its logger, and whether patient ids may be recorded. */
export function instrumentationFor(config: Pick<ResolvedConfig, 'logger' | 'recordPatientIds' | 'now'>): Observe {
  const { logger, recordPatientIds } = config
  /** One operation: its log line, and its span when an SDK is registered (null: none). */
  async function run<T>(operation: Operation, attributes: Attributes, work: (observation: Observation) => Promise<T>, span: Span | null): Promise<T> {
    const recorded: Attributes = { ...attributes }
    const observation: Observation = {
      set(more) {
        Object.assign(recorded, more)
        span?.setAttributes(more)
      },
      patient(id) {
        if (recordPatientIds && id !== null) observation.set({ 'smart.patient.id': id })
      },
    }
    const started = config.now()
    try {
      const result = await work(observation)
      span?.setAttribute('smart.outcome', 'ok')
      span?.setStatus({ code: SpanStatusCode.OK })
      const level = operation === 'fhir_request' ? 'debug' : 'info'
      logger?.[level]({ event: `smart.${operation}`, outcome: 'ok', ...recorded, durationMs: config.now() - started }, MESSAGES[operation])
      return result
    } catch (err) {
      const code = err instanceof SmartError ? err.code : 'INTERNAL_ERROR'
      const status = err instanceof SmartError ? err.status : 500
      span?.setAttributes({ 'smart.outcome': 'error', 'smart.error_code': code, 'smart.error_status': status })
      span?.setStatus({ code: SpanStatusCode.ERROR, message: code })
      const fields = { event: `smart.${operation}`, outcome: 'error', code, status, ...recorded, durationMs: config.now() - started }
      if (status >= 500) logger?.error(fields, `${MESSAGES[operation]} failed`)
      else logger?.info(fields, `${MESSAGES[operation]} refused`)
      throw err
    } finally {
      span?.end()
    }
  }
  return function observe(operation, attributes, work) {
    const tracer = currentTracer()
    if (tracer === null) return run(operation, attributes, work, null)
    return tracer.startActiveSpan(`smart.${operation}`, { attributes }, (span) => run(operation, attributes, work, span))
  }
}
