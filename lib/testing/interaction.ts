import type { Request, Response } from 'express'
import type { InteractionDetails, Provider } from 'oidc-provider'
import type { FhirStore } from './fhir-store'
import { displayName, sendPage } from './html'
import { interactionErrorPage, pickerPage, PICKER_DENY_FIELD, PICKER_PATIENT_FIELD } from './patient-picker'
import type { LaunchContext, MockEhrFaults } from './types'
import type { SignedInUser, Users } from './users'

/** Where oidc-provider sends the browser for login and consent; the interaction's uid follows. */
export const INTERACTION_PATH = '/interaction'

/** What a grant (and every token issued from it) stands for. */
export interface GrantRecord {
  /** Returned with the tokens: the EHR launch's context, or the patient chosen in a standalone launch. */
  context: LaunchContext | null
  /** The one patient the tokens may see at the FHIR server; null: any. */
  patient: string | null
}

export interface InteractionOptions {
  provider: Provider
  store: FhirStore
  users: Users
  launches: ReadonlyMap<string, LaunchContext>
  grants: Map<string, GrantRecord>
  faults: Pick<MockEhrFaults, 'authorize'>
}

/** The authorization server's `interactions.url` pages: GET shows (or skips) the patient picker, POST answers it. */
export interface Interaction {
  show(req: Request, res: Response): Promise<void>
  answer(req: Request, res: Response): Promise<void>
}

const DENIED = { error: 'access_denied', error_description: 'The user denied the authorization request' }

/**
 * The launch context an authorization gets, or `'pick'` when the user has to choose a patient: a
 * standalone launch (no `launch` parameter) asking for `launch/patient`, by a user who may open any
 * patient's record. A patient or related person is given their own patient instead.
 */
function contextFor(details: InteractionDetails, user: SignedInUser, launches: ReadonlyMap<string, LaunchContext>): { context: LaunchContext | null } | 'pick' {
  const launch = details.params.launch
  // The launch parameter was checked (known launch id) before the interaction started.
  if (typeof launch === 'string') return { context: launches.get(launch) ?? null }
  if (!String(details.params.scope ?? '').split(' ').includes('launch/patient')) return { context: null }
  // Standalone: the app runs outside the EHR, which cannot show a banner around it.
  if (user.patient !== null) return { context: { patient: user.patient, needPatientBanner: true } }
  return 'pick'
}

export function createInteraction(options: InteractionOptions): Interaction {
  const { provider, store, users, launches, grants, faults } = options

  async function finish(req: Request, res: Response, details: InteractionDetails, user: SignedInUser, context: LaunchContext | null): Promise<void> {
    // A new grant per authorization, so that each launch keeps its own context across refreshes.
    const grant = new provider.Grant({ accountId: user.accountId, clientId: String(details.params.client_id) })
    grant.addOIDCScope(String(details.params.scope ?? ''))
    const grantId = await grant.save()
    grants.set(grantId, { context, patient: context?.patient ?? user.patient })
    const result = { login: { accountId: user.accountId }, consent: { grantId } }
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false })
  }

  function deny(req: Request, res: Response): Promise<void> {
    return provider.interactionFinished(req, res, DENIED, { mergeWithLastSubmission: false })
  }

  function showPicker(res: Response, status: number, details: InteractionDetails, user: SignedInUser, notice?: string): void {
    const [type, id] = user.reference.split('/')
    sendPage(res, status, pickerPage({
      action: `${INTERACTION_PATH}/${details.uid}`,
      clientId: String(details.params.client_id),
      user: displayName(store.read(type, id)) || user.reference,
      patients: store.search('Patient', new URLSearchParams()),
      today: new Date(),
      notice,
    }), { form: true })
  }

  function signedIn(req: Request, res: Response): SignedInUser | null {
    const user = users.signedIn(req.headers.cookie)
    if (typeof user !== 'string') return user
    sendPage(res, 400, interactionErrorPage('Unknown user', `Nobody can sign in: ${user}.`))
    return null
  }

  return {
    async show(req, res) {
      const details = await provider.interactionDetails(req, res)
      if (faults.authorize === 'deny') return deny(req, res)
      const user = signedIn(req, res)
      if (!user) return
      const next = contextFor(details, user, launches)
      if (next === 'pick') return showPicker(res, 200, details, user)
      await finish(req, res, details, user, next.context)
    },

    async answer(req, res) {
      const details = await provider.interactionDetails(req, res)
      if (details.uid !== req.params.uid) {
        sendPage(res, 400, interactionErrorPage('Wrong authorization', 'This page belongs to another authorization request.'))
        return
      }
      const user = signedIn(req, res)
      if (!user) return
      if (contextFor(details, user, launches) !== 'pick') {
        sendPage(res, 400, interactionErrorPage('Nothing to choose', 'This authorization request has no patient to choose.'))
        return
      }
      const form = (req.body ?? {}) as Record<string, unknown>
      if (form[PICKER_DENY_FIELD] !== undefined) return deny(req, res)
      const patient = form[PICKER_PATIENT_FIELD]
      if (typeof patient !== 'string' || !store.read('Patient', patient)) {
        return showPicker(res, 400, details, user, `Unknown patient ${String(patient ?? '(none)')}: choose one from the list.`)
      }
      await finish(req, res, details, user, { patient, needPatientBanner: true })
    },
  }
}
