export { createMockEhr } from './mock-ehr'
export { launchAs } from './launch-as'
export type { LaunchAsOptions } from './launch-as'
export type { Fault, FhirLogEntry, LaunchContext, MockEhr, MockEhrClient, MockEhrFaults, MockEhrOptions, MockEhrStats } from './types'
