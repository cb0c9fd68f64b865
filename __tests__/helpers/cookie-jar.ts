/**
 * A browser's cookies as one `Cookie` header, after an answer's `Set-Cookie`s: every cookie the app sets
 * (session, the library's launch and browser cookies); an empty value or Max-Age=0 deletes. Only Path=/
 * cookies on one host, which is all the app sets. Shared by the tests' raw-request helpers and the bench.
 *
 *   cookie = applySetCookies(cookie, response.headers.getSetCookie())
 */
export function applySetCookies(cookie: string, setCookies: readonly string[]): string {
  const jar = new Map<string, string>()
  for (const pair of cookie.split(';')) {
    const at = pair.indexOf('=')
    if (at > 0) jar.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim())
  }
  for (const setCookie of setCookies) {
    const [pair, ...attributes] = setCookie.split(';')
    const at = pair.indexOf('=')
    if (at <= 0) continue
    const name = pair.slice(0, at).trim()
    const value = pair.slice(at + 1).trim()
    if (value === '' || attributes.some((attribute) => /^\s*max-age=0\s*$/i.test(attribute))) jar.delete(name)
    else jar.set(name, value)
  }
  return [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
}
