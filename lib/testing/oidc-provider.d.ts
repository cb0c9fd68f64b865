// oidc-provider ships no type declarations and @types/oidc-provider is not a dependency of this
// package; these are the few shapes the mock EHR touches. Kept internal: no public type mentions them.
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http'

  export interface KoaContextWithOIDC {
    status: number
    body: unknown
    method: string
    path: string
    query: Record<string, string | string[] | undefined>
    get(header: string): string
    set(header: string, value: string): void
    oidc?: {
      route: string
      params?: Record<string, unknown>
      entities: { Grant?: { jti: string } }
    }
  }

  export interface GrantInstance {
    jti: string
    accountId: string
    clientId: string
    addOIDCScope(scope: string): void
    save(): Promise<string>
  }

  export interface AccessTokenInstance {
    jti: string
    clientId: string
    accountId: string
    grantId: string
    scope?: string
    isExpired: boolean
  }

  export interface InteractionDetails {
    uid: string
    prompt: { name: string }
    params: Record<string, unknown>
    grantId?: string
  }

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>)
    issuer: string
    Grant: {
      new (init: { accountId: string; clientId: string }): GrantInstance
      find(id: string): Promise<GrantInstance | undefined>
    }
    AccessToken: { find(token: string): Promise<AccessTokenInstance | undefined> }
    Client: { prototype: { redirectUriAllowed(this: { clientId: string }, value: string): boolean } }
    use(middleware: (ctx: KoaContextWithOIDC, next: () => Promise<void>) => Promise<void>): void
    on(event: string, listener: (...args: never[]) => void): this
    callback(): (req: IncomingMessage, res: ServerResponse) => void
    interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>
    interactionFinished(
      req: IncomingMessage,
      res: ServerResponse,
      result: Record<string, unknown>,
      options?: { mergeWithLastSubmission?: boolean },
    ): Promise<void>
  }

  export const errors: {
    InvalidRequest: new (description: string) => Error
    InvalidClientAuth: new (detail: string) => Error
  }

  export default Provider
}
