// First: fails with an install hint when the optional peers are missing, before anything loads them.
import './peers'
export { createMockEhr } from './mock-ehr'
export { launchAs } from './launch-as'
export type { LaunchAsOptions } from './launch-as'
export { loginAs } from './login-as'
export type { LoginAsOptions, LoginContext } from './login-as'
export type { AuthorizeOptions, Fault, FhirLogEntry, LaunchContext, MockEhr, MockEhrClient, MockEhrFaults, MockEhrOptions, MockEhrStats, MockEhrUser } from './types'
