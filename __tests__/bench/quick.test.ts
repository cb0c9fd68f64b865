import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

// `npm run bench -- --quick` is the benchmark's smoke test: every scenario, briefly, in its own processes
// (app, load generator, redis-server). It asserts counts only and exits non-zero when one fails; here we
// also check that the results file has the keys the issue asks for. Timings are never asserted.
const root = join(__dirname, '..', '..')
let out: string
beforeAll(() => (out = mkdtempSync(join(tmpdir(), 'esof-bench-'))))
afterAll(() => rmSync(out, { recursive: true, force: true }))

function runQuickBench(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('npm', ['run', 'bench', '--', '--quick', '--out', out], { cwd: root, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}\n${stderr}` })
    })
    child.stdin?.end()
  })
}

describe('npm run bench -- --quick', () => {
  it('runs every scenario and passes its count checks', async () => {
    const { code, output } = await runQuickBench()
    if (code !== 0) throw new Error(`the quick bench exited with ${code}:\n${output.slice(-4000)}`)
    expect(output).toMatch(/checks: (\d+)\/\1 passed/)

    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'))
    for (const ratio of [
      results.protected_vs_session_baseline.memory, results.protected_vs_session_baseline.redis,
      results.protected_vs_fhirclient, results.protected_vs_fhirclient_redis, results.launch_vs_session_write_baseline,
    ]) {
      expect(ratio).toEqual(expect.any(Number))
      expect(ratio).toBeGreaterThan(0)
    }
    expect(results.refresh_herd).toMatchObject({ requests: 100, refresh_grants: 1, ok: 100 })
    expect(results.stored_bytes_per_session).toBeGreaterThan(0)
    expect(results.memory_bytes_per_session).toEqual(expect.any(Number))
    expect(readFileSync(join(out, 'RESULTS.md'), 'utf8')).toContain('| protected vs fhirclient 2.6.3 | MemoryStore |')
  }, 180_000)
})
