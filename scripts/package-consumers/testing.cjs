// With the peers installed: the testing entry loads from CommonJS and its mock EHR serves SMART discovery.
const assert = require('node:assert/strict')
const { createMockEhr } = require('express-smart-on-fhir/testing')

createMockEhr().then(async (ehr) => {
  try {
    const res = await fetch(`${ehr.iss}/.well-known/smart-configuration`)
    assert.equal(res.status, 200)
    assert.ok((await res.json()).capabilities.includes('launch-ehr'))
    console.log('testing entry (CommonJS) with its peers: the mock EHR serves SMART discovery')
  } finally {
    await ehr.close()
  }
})
