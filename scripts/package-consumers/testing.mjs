// With the peers installed: a whole EHR launch of an app built on the package, through launchAs and supertest.
import assert from 'node:assert/strict'
import express from 'express'
import session from 'express-session'
import request from 'supertest'
import { requireSmartContext, smartCallback, smartLaunch } from 'express-smart-on-fhir'
import { createMockEhr, launchAs } from 'express-smart-on-fhir/testing'

const ehr = await createMockEhr()
try {
  const smart = {
    config: {
      clientId: 'mock-app',
      scope: 'openid fhirUser launch launch/patient patient/*.rs offline_access',
      callbackUrl: 'http://app.test/callback',
      redirectUrl: '/app',
      knownFhirServers: [{ issuer: ehr.iss, type: 'public' }],
    },
    options: { allowNonHttpsLaunch: true },
  }
  const app = express()
  app.use(session({ secret: 'consumer', resave: false, saveUninitialized: false }))
  app.get('/launch', smartLaunch(smart))
  app.get('/callback', smartCallback(smart))
  app.get('/api/patient', requireSmartContext(smart), async (req, res) => {
    res.json(await req.smart.request(`Patient/${req.smart.patient?.id}`))
  })

  const agent = request.agent(app)
  const { patient } = await launchAs(agent, ehr, { patient: 'patient-2' })
  const res = await agent.get('/api/patient').expect(200)
  assert.equal(patient, 'patient-2')
  assert.equal(res.body.resourceType, 'Patient')
  assert.equal(res.body.id, 'patient-2')
  assert.equal(ehr.stats.codeGrants, 1)
  console.log('testing entry (ESM) with its peers: launchAs launched patient-2, req.smart read it')
} finally {
  await ehr.close()
}
