// Plain Node loads the tsc build (dist/) by `require` and by `import` alike (the `module-sync` condition): one copy
// of the package inside Node. The bundles under dist/cjs/ (the `require` condition, for Jest) are complete by
// themselves: they require nothing but Node's built-ins and the packages the user installs beside them.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
for (const entry of ['express-smart-on-fhir', 'express-smart-on-fhir/testing']) {
  const byImport = fileURLToPath(import.meta.resolve(entry))
  const byRequire = require.resolve(entry)
  assert.equal(byImport, byRequire, `${entry}: import and require resolve to different files`)
  assert.match(byRequire, /\/node_modules\/express-smart-on-fhir\/dist\/(testing\/)?index\.js$/, `${entry}: Node resolves ${byRequire}`)
}
const imported = await import('express-smart-on-fhir')
const required = require('express-smart-on-fhir')
assert.equal(imported.SmartError, required.SmartError, 'import and require give two copies of the package')

const dist = new URL('./node_modules/express-smart-on-fhir/dist/', import.meta.url)
const allowed = new Set(['express', 'express-session', 'supertest', '@opentelemetry/api'])
for (const bundle of ['cjs/index.js', 'cjs/testing/index.js']) {
  const source = readFileSync(new URL(bundle, dist), 'utf8')
  const required = [...source.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1])
  const outside = required.filter((name) => !name.startsWith('node:') && !allowed.has(name) && !require('node:module').isBuiltin(name))
  assert.deepEqual(outside, [], `dist/${bundle} requires ${outside.join(', ')}`)
}
const bundled = require(fileURLToPath(new URL('cjs/index.js', dist)))
assert.deepEqual(Object.keys(bundled).sort(), Object.keys(required).sort(), 'dist/cjs/index.js exports other names than dist/index.js')
console.log('Node loads dist/ by require and import (one copy); the Jest bundles under dist/cjs/ are self-contained')
