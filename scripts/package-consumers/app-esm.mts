// The same types from an ES module (nodenext resolves the package's exports under the "import" condition),
// and the testing entry's types with @types/supertest.
import express from 'express'
import request from 'supertest'
import { requireSmartContext, type ReadyClient, type SmartMiddlewareOptions } from 'express-smart-on-fhir'
import { createMockEhr, launchAs, type MockEhr } from 'express-smart-on-fhir/testing'

export async function launched(opts: SmartMiddlewareOptions): Promise<string | undefined> {
  const app = express()
  app.get('/', requireSmartContext(opts), (req, res) => {
    const client: ReadyClient = req.smart
    res.send(client.patient?.id)
  })
  const ehr: MockEhr = await createMockEhr({ accessTokenTtlSeconds: 60 })
  const { patient }: { patient: string } = await launchAs(request.agent(app), ehr, { patient: 'patient-1' })
  await ehr.close()
  return patient
}
