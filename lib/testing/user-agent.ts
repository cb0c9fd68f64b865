/**
 * Plays the user's browser at the EHR's authorization server: follows redirects within the EHR's
 * origin, keeping the cookies oidc-provider relies on (interaction, resume, session), and stops at
 * the first redirect that leaves the EHR, which is the one back to the app's redirect_uri. That URL
 * is returned, never requested.
 */
const MAX_REDIRECTS = 20

type CookieJar = Map<string, string>

function storeCookies(jar: CookieJar, response: Response): void {
  for (const header of response.headers.getSetCookie()) {
    const [pair, ...attributes] = header.split(';')
    const separator = pair.indexOf('=')
    if (separator < 1) continue
    const name = pair.slice(0, separator).trim()
    const value = pair.slice(separator + 1).trim()
    const expired = attributes.some((attribute) => {
      const [key, attributeValue = ''] = attribute.split('=').map((part) => part.trim())
      if (key.toLowerCase() === 'max-age') return Number(attributeValue) <= 0
      if (key.toLowerCase() === 'expires') return Date.parse(attributeValue) <= Date.now()
      return false
    })
    if (expired || value === '') jar.delete(name)
    else jar.set(name, value)
  }
}

function cookieHeader(jar: CookieJar): string {
  return [...jar].map(([name, value]) => `${name}=${value}`).join('; ')
}

async function describe(response: Response): Promise<string> {
  const body = await response.text().catch(() => '')
  return `${response.status} ${body.slice(0, 300)}`
}

export function createUserAgent(ehrOrigin: string): (authorizationUrl: string) => Promise<URL> {
  return async function authorize(authorizationUrl: string): Promise<URL> {
    let url = new URL(authorizationUrl)
    if (url.origin !== ehrOrigin) {
      throw new Error(`authorize(): ${url.origin} is not this mock EHR (${ehrOrigin})`)
    }
    const jar: CookieJar = new Map()
    for (let hop = 0; hop < MAX_REDIRECTS; hop++) {
      const response = await fetch(url, {
        redirect: 'manual',
        headers: jar.size > 0 ? { cookie: cookieHeader(jar) } : {},
      })
      storeCookies(jar, response)
      const location = response.headers.get('location')
      if (response.status < 300 || response.status >= 400 || location === null) {
        throw new Error(`authorize(): the authorization server answered ${await describe(response)}`)
      }
      await response.body?.cancel()
      url = new URL(location, url)
      if (url.origin !== ehrOrigin) return url
    }
    throw new Error(`authorize(): more than ${MAX_REDIRECTS} redirects`)
  }
}
