// Before oidc-provider and supertest are installed: the testing entry refuses to load, from CommonJS and
// from ESM, with the missing packages and the command that installs them. The main entry still loads.
const assert = require('node:assert/strict')

const hint = /needs oidc-provider and supertest, optional peer dependencies[\s\S]*npm install --save-dev oidc-provider supertest\n/

assert.throws(() => require('express-smart-on-fhir/testing'), hint)
import('express-smart-on-fhir/testing').then(
  () => assert.fail('the ESM import of express-smart-on-fhir/testing loaded without its peers'),
  (error) => {
    assert.match(error.message, hint)
    assert.equal(typeof require('express-smart-on-fhir').smartLaunch, 'function')
    console.log('testing entry without its peers: fails with the install hint, from require and import')
    console.log(error.message.replace(/^/gm, '  | '))
  },
)
