/** @jest-config-loader esbuild-register */
import type { Config } from 'jest'

// openid-client, oauth4webapi, jose and oidc-provider ship ESM only; Jest (CommonJS here) must
// transform them. See ../shared/TOOLCHAIN.md.
const esmOnly = ['openid-client', 'oauth4webapi', 'jose', 'oidc-provider']

const config: Config = {
  testEnvironment: 'node',
  roots: ['<rootDir>/__tests__'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.(t|j)sx?$': '@swc/jest' },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly.join('|')})/)`],
  globalSetup: '<rootDir>/__tests__/helpers/global-setup.ts',
  globalTeardown: '<rootDir>/__tests__/helpers/global-teardown.ts',
  // The example app imports the package by name; tests run it against the sources.
  moduleNameMapper: {
    '^express-smart-on-fhir$': '<rootDir>/lib/index.ts',
    '^express-smart-on-fhir/testing$': '<rootDir>/lib/testing/index.ts',
  },
  testTimeout: 20000,
}

export default config
