// A browser without a screen for the docs tests: follows redirects one by one and keeps a cookie jar per host,
// as a browser does (cookies are per host, not per port), with applySetCookies (cookie-jar.ts) for each jar.
import { applySetCookies } from './cookie-jar'

export class FetchBrowser {
  private readonly jars = new Map<string, string>()

  constructor(private readonly extraHeaders: Record<string, string> = {}) {}

  /** One request without following redirects, carrying and updating the host's cookies. */
  async step(url: string, timeoutMs = 15_000): Promise<Response> {
    const host = new URL(url).hostname
    const cookie = this.jars.get(host)
    const res = await fetch(url, {
      redirect: 'manual',
      headers: { ...this.extraHeaders, ...(cookie ? { cookie } : {}) },
      signal: AbortSignal.timeout(timeoutMs),
    })
    this.jars.set(host, applySetCookies(cookie ?? '', res.headers.getSetCookie()))
    return res
  }

  /** GETs `url` and follows its redirects (at most 20); the final answer and every URL visited. */
  async open(url: string): Promise<{ res: Response; visited: string[] }> {
    const visited: string[] = []
    for (let current = url; visited.length < 20; ) {
      visited.push(current)
      const res = await this.step(current)
      const location = res.headers.get('location')
      if (res.status < 300 || res.status >= 400 || !location) return { res, visited }
      await res.body?.cancel()
      current = new URL(location, current).href
    }
    throw new Error(`more than 20 redirects: ${visited.join(' -> ')}`)
  }
}
