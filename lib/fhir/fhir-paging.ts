import type * as fhir4 from 'fhir/r4'
import { SmartError } from '../errors'

/** The URL of a searchset page's `next` link, if it has one. */
export function nextLink(bundle: fhir4.Bundle): string | undefined {
  return bundle.link?.find((link) => link.relation === 'next')?.url
}

/**
 * Yields `first`, then every page its `next` links lead to, each fetched through `get` only when the
 * caller asks for it (a consumer that stops early sends no further request). `get` is
 * ReadyClient.request, so a link to another origin is refused before anything is sent.
 */
export async function* followPages<B extends fhir4.Bundle>(first: B, get: (url: string) => Promise<B>): AsyncGenerator<B, void, undefined> {
  const followed = new Set<string>()
  for (let page = first; ; ) {
    yield page
    const next = nextLink(page)
    if (next === undefined) return
    // A server whose next link leads back to a page already read would otherwise be paged forever.
    if (followed.has(next)) throw new SmartError('FHIR_REQUEST_FAILED', 'The FHIR server\'s next link leads back to a page already read')
    followed.add(next)
    page = await get(next)
  }
}
