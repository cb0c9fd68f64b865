// oidc-provider (inside the mock EHR) warns on every load that Node 20 is not its preferred runtime.
// The project supports Node >= 20.19 and the suite passes there; keep that one line out of test output.
const warn = console.warn.bind(console)
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && args[0].includes('Unsupported runtime. Use Node.js v22')) return
  warn(...args)
}
