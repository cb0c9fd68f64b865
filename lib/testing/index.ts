export { createMockEhr } from './mock-ehr'
export type { Fault, FhirLogEntry, LaunchContext, MockEhr, MockEhrClient, MockEhrFaults, MockEhrOptions, MockEhrStats } from './types'
