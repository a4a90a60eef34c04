import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { ROOT, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const run = promisify(execFile);
const ADMIN = `uk_${randomBytes(24).toString('hex')}`;
const SDK_DIR = path.join(ROOT, 'src/sdk');

/** What an agent builder writes in their own project: only the package name, nothing of this repo. */
const CONSUMER = `
import { AgentOTPClient, SDK_VERSION, TokenUsedError } from '@agent-otp/sdk';

const out = (line) => console.log(JSON.stringify(line));
const otp = new AgentOTPClient({ apiKey: process.env.AGENT_OTP_API_KEY, baseUrl: process.env.AGENT_OTP_URL });
out({ step: 'version', version: SDK_VERSION });

const auto = await otp.requestPermission({ action: 'file.read', scope: { max_files: 1 }, context: { reason: 'package test' } });
out({ step: 'auto', status: auto.status });
out({ step: 'auto-used', ...(await otp.useToken(auto.id, auto.token, { actionDetails: { file: 'a.txt' } })) });
const again = await otp.useToken(auto.id, auto.token).catch((error) => error);
out({ step: 'reuse', tokenUsedError: again instanceof TokenUsedError, code: again.code });

const waited = await otp.requestPermission({
  action: 'email.send',
  context: { reason: 'package test' },
  waitForApproval: true,
  timeout: 30000,
  onPendingApproval: ({ id }) => out({ step: 'pending', id }),
});
out({ step: 'decided', status: waited.status });
out({ step: 'waited-used', ...(await otp.useToken(waited.id, waited.token)) });
`;

interface PackResult {
  name: string;
  version: string;
  filename: string;
  size: number;
  entryCount: number;
}

/**
 * The SDK as an agent builder gets it: `npm pack` of the workspace, installed into an empty
 * project with no registry reachable, then used by name against the built server.
 */
describe('the @agent-otp/sdk package, packed and installed into an empty project', () => {
  let server: ServerProcess;
  let operator: Api;
  let agentKey: string;
  let work: string;
  let project: string;
  let pack: PackResult;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'aotp-sdkpkg-'));
    project = path.join(work, 'project');
    const packed = run('npm', ['pack', SDK_DIR, '--pack-destination', work, '--json'], {
      cwd: ROOT,
      // Not the npm_config_* of an `npm test` around this run.
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
      maxBuffer: 10 * 1024 * 1024,
    });
    server = await startServer({ env: { ADMIN_TOKEN: ADMIN } });
    operator = apiClient(server.url, ADMIN);
    const put = await operator('PUT', '/api/v1/policies', {
      policies: [
        { name: 'files-auto', conditions: { action: 'file.*' }, action: 'auto_approve' },
        { name: 'email-human', conditions: { action: 'email.*' }, action: 'require_approval' },
      ],
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'packaged' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    agentKey = created.body.data.apiKey;
    pack = (JSON.parse((await packed).stdout) as PackResult[])[0]!;
  });

  afterAll(async () => {
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('packs under 50 KB with no dependencies of any kind', async () => {
    const tarball = path.join(work, pack.filename);
    const size = statSync(tarball).size;
    console.log(`${pack.filename}: ${size} bytes, ${pack.entryCount} files`);
    expect(pack.name).toBe('@agent-otp/sdk');
    expect(size).toBeLessThan(50 * 1024);
    // The package.json inside the tarball, as npm sees it.
    const manifest = JSON.parse((await run('tar', ['-xzOf', tarball, 'package/package.json'])).stdout);
    expect(manifest.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies', 'bundleDependencies']) {
      expect(manifest[field], field).toBeUndefined();
    }
  });

  it('installs offline into an empty project, pulling in nothing else', async () => {
    mkdirSync(project);
    writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'agent-project', private: true, type: 'module' }),
    );
    // An unreachable registry as well as --offline: any fetch would fail the install.
    await run('npm', ['install', path.join(work, pack.filename), '--offline', '--no-audit', '--no-fund'], {
      cwd: project,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, npm_config_registry: 'http://127.0.0.1:9/' },
    });
    const installed = readdirSync(path.join(project, 'node_modules')).filter((f) => !f.startsWith('.'));
    expect(installed).toEqual(['@agent-otp']);
    expect(readdirSync(path.join(project, 'node_modules/@agent-otp'))).toEqual(['sdk']);
    const files = readdirSync(path.join(project, 'node_modules/@agent-otp/sdk/dist'));
    expect(files).toContain('index.js');
    expect(files).toContain('index.d.ts');
  });

  it('gives a TypeScript project real types by package name (no @types/node needed)', async () => {
    writeFileSync(
      path.join(project, 'typed.ts'),
      `import { AgentOTPClient, type PermissionResult } from '@agent-otp/sdk';
const otp = new AgentOTPClient({ apiKey: 'ak_x' });
export const permission: Promise<PermissionResult> = otp.requestPermission({ action: 'file.read' });
// @ts-expect-error the declarations are real types, not any: an action is a string
otp.requestPermission({ action: 1 });
`,
    );
    writeFileSync(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          lib: ['ES2023', 'DOM'],
          types: [],
          strict: true,
          noEmit: true,
        },
        files: ['typed.ts'],
      }),
    );
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project }).catch(
      (error: { stdout?: string }) => ({ stdout: `failed: ${error.stdout}` }),
    );
    expect(result.stdout).toBe('');
  });

  it('requests, waits for a human and spends tokens, imported by name from the installed package', async () => {
    writeFileSync(path.join(project, 'agent.mjs'), CONSUMER);
    const child = spawn(process.execPath, ['agent.mjs'], {
      cwd: project,
      env: { PATH: process.env.PATH, AGENT_OTP_URL: server.url, AGENT_OTP_API_KEY: agentKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const decisions: Promise<number>[] = [];
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const pending = /"step":"pending","id":"([^"]+)"/.exec(d.toString());
      // Decide while the installed SDK is waiting on its long-poll.
      if (pending) {
        decisions.push(
          operator('POST', `/api/v1/permissions/${pending[1]}/decide`, { approved: true }).then(
            (r) => r.status,
          ),
        );
      }
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code, stderr).toBe(0);
    expect(await Promise.all(decisions)).toEqual([200]);

    const steps = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const version = JSON.parse(readFileSync(path.join(SDK_DIR, 'package.json'), 'utf8')).version;
    expect(steps).toEqual([
      { step: 'version', version },
      { step: 'auto', status: 'approved' },
      { step: 'auto-used', success: true, usesRemaining: 0, status: 'used' },
      { step: 'reuse', tokenUsedError: true, code: 'TOKEN_USED' },
      { step: 'pending', id: expect.any(String) },
      { step: 'decided', status: 'approved' },
      { step: 'waited-used', success: true, usesRemaining: 0, status: 'used' },
    ]);
  });
});
