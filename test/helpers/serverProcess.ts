import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { createSchema, dropSchema, uniqueSchema } from './databases.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = path.join(ROOT, 'dist/cli/index.js');

let emptyDir: string | undefined;
/**
 * The working directory of every process the tests start. The server and the CLI read `.env`
 * and the default data dir `./.agent-otp` from their working directory: an empty one keeps the
 * checkout's (a developer's `.env`, the admin-token of their `npm start`) out of every test.
 */
export function hermeticCwd(): string {
  if (!emptyDir) {
    const dir = mkdtempSync(path.join(tmpdir(), 'aotp-cwd-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    emptyDir = dir;
  }
  return emptyDir;
}

export interface ServerProcess {
  /** The API's base URL; '' for a process without the HTTP API (`worker`, `bot`). */
  url: string;
  dataDir: string;
  env: NodeJS.ProcessEnv;
  /** The Postgres schema this server uses (postgres only). */
  schema?: string;
  /** Every line the server wrote to stdout and stderr so far. */
  output(): string;
  /**
   * output() once every line the server logged before this call has arrived. The server writes
   * its log in batches (up to 100 ms late), so a check that a line is absent, or counts lines,
   * right after an action reads this instead.
   */
  logsSoFar(): Promise<string>;
  /** The server's process id (e.g. to read its memory from /proc). */
  pid?: number;
  /** Sends `signal` (e.g. SIGKILL for a crash) and resolves once the process has exited. */
  kill(signal: NodeJS.Signals): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  /** 'pglite' (default) runs on the embedded database in a temp data dir. */
  database?: 'pglite' | 'postgres';
  /** Reuse a data dir (and with it the PGlite database and admin token). */
  dataDir?: string;
  /** Reuse a Postgres schema (several instances on one database). */
  schema?: string;
  /** The CLI command, i.e. the roles to run (default 'start': all of them). */
  command?: 'start' | 'api' | 'worker' | 'bot';
  /** The server's working directory (default: an empty one, see hermeticCwd). */
  cwd?: string;
}

/** Starts the built server (`dist/`) as a child process and waits for its "listening" line. */
export async function startServer(opts: StartOptions = {}): Promise<ServerProcess> {
  if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), 'aotp-e2e-'));
  let schema: string | undefined;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    AGENT_OTP_DATA_DIR: dataDir,
    REDIS_URL: inject('redisUrl'),
    REDIS_KEY_PREFIX: `t${Math.random().toString(36).slice(2, 10)}`,
    ...opts.env,
  };
  if (opts.database === 'postgres') {
    const url = process.env.TEST_DATABASE_URL;
    if (!url) throw new Error('TEST_DATABASE_URL is not set');
    schema = opts.schema ?? uniqueSchema();
    if (!opts.schema) await createSchema(url, schema);
    const sep = url.includes('?') ? '&' : '?';
    env.DATABASE_URL = `${url}${sep}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  }
  // Only the variables above: nothing of the developer's shell reaches the server.
  const child: ChildProcess = spawn(process.execPath, [CLI, opts.command ?? 'start'], {
    env,
    cwd: opts.cwd ?? hermeticCwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });

  const url = await new Promise<string>((resolve, reject) => {
    // Generous: a fresh PGlite database takes 5–20 s to create on a busy 2-core CI machine.
    // A server that did not start is stopped: the test that gave up on it cannot stop it later.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in 90 s:\n${output}`));
    }, 90_000);
    const onData = () => {
      // A role without the HTTP API logs `"url":null`.
      const match = /"url":(?:"(https?:\/\/[^"]+)"|null),"msg":"listening"/.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] ?? '');
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${output}`));
    });
  });

  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let stopped: Promise<void> | null = null;
  return {
    url,
    dataDir,
    env,
    schema,
    pid: child.pid,
    output: () => output,
    async logsSoFar() {
      // A request's access-log line comes after every line logged before it: wait for it.
      if (url.startsWith('http://')) {
        const mark = `logmark-${randomUUID()}`;
        const answered = await fetch(`${url}/healthz`, { headers: { 'x-request-id': mark } }).then(
          () => true,
          () => false,
        );
        const until = performance.now() + 10_000;
        while (answered && !output.includes(mark) && performance.now() < until) {
          await sleep(20);
        }
        if (output.includes(mark)) return output;
      }
      // No HTTP API to mark with (worker, bot, TLS): the batch interval, with room to spare.
      await sleep(500);
      return output;
    },
    kill(signal) {
      child.kill(signal);
      return exited;
    },
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          });
        }
        if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
        if (schema && !opts.schema && process.env.TEST_DATABASE_URL) {
          await dropSchema(process.env.TEST_DATABASE_URL, schema);
        }
      })();
      return stopped;
    },
  };
}

/** Runs the CLI with only `env` (and PATH), in `cwd` (default: an empty directory). */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv,
  /** `cli`: another build of the CLI (a copy of the repository) instead of this checkout's. */
  opts: { cwd?: string; cli?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [opts.cli ?? CLI, ...args], {
      env: { PATH: process.env.PATH, ...env },
      cwd: opts.cwd ?? hermeticCwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.once('exit', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

export function cleanupDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
