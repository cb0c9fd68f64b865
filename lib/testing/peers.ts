// The testing entry's runtime needs are optional peer dependencies, so `npm install express-smart-on-fhir`
// alone does not bring them. The first `require('oidc-provider')` happens deep inside the entry
// (index → mock-ehr → authorization-server) and would fail with a bare "Cannot find module"; this
// module is the entry's first import, so the check runs before that load, from CJS `require` and from
// ESM `import` of the built package alike. It only resolves the names: nothing is loaded here.

/** The optional peers of `express-smart-on-fhir/testing`; `neededToLoad` ones make loading the entry fail. */
const PEERS = [
  { name: 'oidc-provider', neededToLoad: true },  // the mock EHR's authorization server
  { name: 'supertest', neededToLoad: false },     // the agent that launchAs() drives (the user creates it)
] as const

function isInstalled(name: string): boolean {
  try {
    require.resolve(name)
    return true
  } catch (error) {
    // Anything but "not found" (say, an installed but broken package) is left to the real load to report.
    return (error as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND'
  }
}

function checkPeers(): void {
  const missing = PEERS.filter((peer) => !isInstalled(peer.name))
  if (!missing.some((peer) => peer.neededToLoad)) return
  const names = missing.map((peer) => peer.name)
  const them = names.length === 1 ? 'it' : 'them'
  throw new Error(
    `express-smart-on-fhir/testing needs ${names.join(' and ')}, optional peer ${names.length === 1 ? 'dependency' : 'dependencies'} ` +
      `of express-smart-on-fhir that ${names.length === 1 ? 'is' : 'are'} not installed (the main entry does not need ${them}). ` +
      `Install ${them} with:\n\n  npm install --save-dev ${names.join(' ')}\n`,
  )
}

checkPeers()
