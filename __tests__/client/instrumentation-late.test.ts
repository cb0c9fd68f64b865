// Issue 24: without an OpenTelemetry SDK the library skips its no-op spans (their context was most of an
// observation's cost). Whether one is registered is asked on every operation: an SDK registered after the app
// started — as instrumentation set up late, or in a test — gets its spans from the next operation on, and the
// log lines never depend on it.
import { trace } from '@opentelemetry/api'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { MemoryStore } from 'express-session'
import request from 'supertest'
import type { SmartLogger } from '../../lib'
import { createMockEhr, launchAs, type MockEhr } from '../../lib/testing'
import { testApp } from '../helpers/app'

let ehr: MockEhr
beforeAll(async () => (ehr = await createMockEhr()))
afterAll(async () => {
  await ehr.close()
  trace.disable()
})

it('spans start with the first operation after an SDK is registered and stop when it is removed; log lines throughout', async () => {
  const events: string[] = []
  const log = (fields: Record<string, unknown>) => void events.push(String(fields.event))
  const logger: SmartLogger = { debug: log, info: log, warn: log, error: log }
  const agent = request.agent(testApp({ store: new MemoryStore(), jsonErrors: true, options: { logger } }))
  const exporter = new InMemorySpanExporter()
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })

  trace.disable()
  await launchAs(agent, ehr, { patient: 'patient-1' })
  await agent.get('/api/patient').expect(200)
  expect(events).toEqual(expect.arrayContaining(['smart.launch', 'smart.callback', 'smart.fhir_request']))

  trace.setGlobalTracerProvider(provider)
  await agent.get('/api/patient').expect(200)
  await launchAs(agent, ehr, { patient: 'patient-2' })
  const names = exporter.getFinishedSpans().map((span) => span.name)
  expect(names).toEqual(expect.arrayContaining(['smart.fhir_request', 'smart.launch', 'smart.callback']))
  // Nothing from before the SDK was there: one FHIR request and one launch since.
  expect(names.filter((name) => name === 'smart.fhir_request')).toHaveLength(1)
  expect(names.filter((name) => name === 'smart.launch')).toHaveLength(1)

  trace.disable()
  exporter.reset()
  events.length = 0
  await agent.get('/api/patient').set('X-Active-Patient', 'patient-2').expect(200)
  expect(exporter.getFinishedSpans()).toEqual([])
  expect(events).toContain('smart.fhir_request')
  await provider.shutdown()
})
