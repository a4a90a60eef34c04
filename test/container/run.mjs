#!/usr/bin/env node
// npm run test:container: builds manifests/docker/Dockerfile with podman and checks the image the
// way an operator would use it. Needs root (apt, rootful podman), the Debian mirror and the npm
// registry, a Postgres at 127.0.0.1:5432 (user postgres, trust) and a Redis at 127.0.0.1:6379.
// Not part of .ci/run: it takes minutes and installs packages (see README, "Run with Docker").
//
// Checks: the image builds (time, size, size over the base), runs as a non-root user with its
// HEALTHCHECK; compose.yaml's secrets-init writes secrets the service accepts, once; api, worker and bot run as separate containers on one Postgres (a database of its
// own, dropped at the end) and Redis (a key prefix of its own, deleted at the end), secrets
// given as *_FILE; /readyz answers 200; an agent made with the CLI inside the container requests a
// permission over HTTP, the CLI inside the container approves it, the agent uses the token;
// SIGTERM stops each role within 10 s with exit 0, answering a waiting long poll on the way; after
// a restart the audit trail has the use; the worker expired a request nobody answered; `start`
// on the embedded PGlite comes up on a fresh volume.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASE_IMAGE, ensureBaseImage } from './standInBase.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const IMAGE = process.env.CONTAINER_TEST_IMAGE ?? 'localhost/agent-otp:test';
// crun fails on this machine's cgroup setup, and podman's default ulimits exceed the hard limits.
const RUNTIME = ['--runtime', 'runc'];
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
const PG = { host: '127.0.0.1', port: 5432, user: 'postgres', adminDb: 'test', db: 'agent_otp_container' };
const REDIS_URL = 'redis://127.0.0.1:6379';
const RUN_ID = `${process.pid}`;
const PREFIX = `aotpct${RUN_ID}`;
const NAMES = {
  api: `aotp-ct-api-${RUN_ID}`,
  worker: `aotp-ct-worker-${RUN_ID}`,
  bot: `aotp-ct-bot-${RUN_ID}`,
  pglite: `aotp-ct-pglite-${RUN_ID}`,
};
const DATA_VOLUME = `aotp-ct-data-${RUN_ID}`;
const PGLITE_VOLUME = `aotp-ct-pglite-${RUN_ID}`;
const SECRETS_VOLUME = `aotp-ct-secrets-${RUN_ID}`;

let failures = 0;
const log = (text) => process.stdout.write(`${text}\n`);
function check(name, ok, detail = '') {
  log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
  if (!ok) failures++;
  return ok;
}
function must(name, ok, detail = '') {
  if (!check(name, ok, detail)) throw new Error(`stopping: ${name}`);
}

function sh(cmd, args, { check: mustSucceed = true, input } = {}) {
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    input,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    maxBuffer: 64 << 20,
  });
  if (r.error) throw r.error;
  if (mustSucceed && r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  }
  return r;
}
const podman = (args, opts) => sh('podman', [...RUNTIME, ...args], opts);
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `podman build` with the output streamed (a build takes minutes: show that it moves). */
function build(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'podman',
      [...RUNTIME, 'build', '--format', 'docker', '--network', 'host', ...ULIMITS, ...args],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let tail = '';
    const keep = (chunk) => {
      tail = (tail + chunk).slice(-8000);
      if (process.env.CONTAINER_TEST_VERBOSE) process.stdout.write(chunk);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`podman build failed:\n${tail}`)),
    );
  });
}
const buildSync = (args) => {
  const r = spawnSync(
    'podman',
    [...RUNTIME, 'build', '--format', 'docker', '--network', 'host', ...ULIMITS, ...args],
    {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    },
  );
  if (r.status !== 0) throw new Error(`podman build failed:\n${r.stderr.slice(-4000)}`);
};

function ensureTools() {
  const missing = ['podman', 'runc', 'mmdebstrap', 'psql', 'redis-cli'].filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
  const fromApt = missing.filter((t) => ['podman', 'runc', 'mmdebstrap'].includes(t));
  if (missing.length > fromApt.length) {
    throw new Error(
      `missing ${missing.filter((t) => !fromApt.includes(t)).join(', ')} (Postgres and Redis clients)`,
    );
  }
  if (fromApt.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`missing ${fromApt.join(', ')}; run as root to install them`);
  log(`installing ${fromApt.join(', ')} with apt-get`);
  sh('apt-get', ['update', '-q']);
  sh('env', [
    'DEBIAN_FRONTEND=noninteractive',
    'apt-get',
    'install',
    '-y',
    '-q',
    'podman',
    'runc',
    'mmdebstrap',
  ]);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const psql = (db, sql) =>
  sh('psql', [
    '-h',
    PG.host,
    '-p',
    String(PG.port),
    '-U',
    PG.user,
    '-d',
    db,
    '-v',
    'ON_ERROR_STOP=1',
    '-qAt',
    '-c',
    sql,
  ]);

function dropTestState() {
  for (const name of Object.values(NAMES)) podman(['rm', '-f', '-v', '-t', '0', name], { check: false });
  for (const volume of [DATA_VOLUME, PGLITE_VOLUME, SECRETS_VOLUME])
    podman(['volume', 'rm', '-f', volume], { check: false });
  psql(PG.adminDb, `DROP DATABASE IF EXISTS ${PG.db} WITH (FORCE)`);
  const keys = sh('redis-cli', ['-u', REDIS_URL, '--scan', '--pattern', `${PREFIX}*`])
    .stdout.split('\n')
    .filter(Boolean);
  for (let i = 0; i < keys.length; i += 500)
    sh('redis-cli', ['-u', REDIS_URL, 'DEL', ...keys.slice(i, i + 500)]);
}

async function main() {
  if (process.getuid?.() !== 0)
    throw new Error('run as root: the checks use rootful podman (and apt when tools are missing)');
  ensureTools();
  const base = ensureBaseImage({ podman, build: buildSync, log });
  log(`base image ${BASE_IMAGE}: ${base}`);

  // ---- build ----
  const started = Date.now();
  const cache = process.env.CONTAINER_TEST_CACHE ? [] : ['--no-cache'];
  await build([...cache, '-t', IMAGE, '-f', 'manifests/docker/Dockerfile', ROOT]);
  const buildSeconds = (Date.now() - started) / 1000;
  log(
    `build time: ${buildSeconds.toFixed(0)} s${cache.length ? ' (no layer cache)' : ' (layer cache allowed)'}`,
  );
  const size = Number(podman(['image', 'inspect', '--format', '{{.Size}}', IMAGE]).stdout.trim());
  const baseSize = Number(podman(['image', 'inspect', '--format', '{{.Size}}', BASE_IMAGE]).stdout.trim());
  log(`image size: ${mb(size)}; added over the base: ${mb(size - baseSize)} (base ${mb(baseSize)})`);
  check('what the image adds over the base is under 100 MB', size - baseSize < 100e6, mb(size - baseSize));
  const [inspected] = JSON.parse(podman(['image', 'inspect', IMAGE]).stdout);
  const config = inspected.Config;
  check('the image runs as a non-root user', config.User === '10001:10001', config.User);
  check('the data dir is a volume', Object.keys(config.Volumes ?? {}).includes('/data'));
  check(
    'the entrypoint is tini, then the CLI',
    (config.Entrypoint ?? []).join(' ').startsWith('/usr/bin/tini -- node'),
  );
  check(
    'the image has a HEALTHCHECK',
    (inspected.Healthcheck?.Test ?? []).join(' ').includes('healthcheck.mjs'),
  );

  // ---- compose.yaml's secrets-init: secrets the service accepts, written once ----
  const initSecrets = () =>
    podman([
      'run',
      '--rm',
      ...ULIMITS,
      '--user',
      '0:0',
      '-v',
      `${SECRETS_VOLUME}:/run/agent-otp`,
      '--entrypoint',
      'node',
      IMAGE,
      '/app/init-secrets.mjs',
    ]);
  const readSecrets = () =>
    podman([
      'run',
      '--rm',
      ...ULIMITS,
      '-v',
      `${SECRETS_VOLUME}:/run/agent-otp:ro`,
      '--entrypoint',
      'sh',
      IMAGE,
      '-c',
      'cat /run/agent-otp/admin_token /run/agent-otp/secrets_encryption_key /run/agent-otp/database_url',
    ]).stdout;
  initSecrets();
  const firstSecrets = readSecrets();
  initSecrets();
  check('secrets-init: a second run keeps the secrets', readSecrets() === firstSecrets);
  const accepted = podman(
    [
      'run',
      '--rm',
      ...ULIMITS,
      '-v',
      `${SECRETS_VOLUME}:/run/agent-otp:ro`,
      '-e',
      'ADMIN_TOKEN_FILE=/run/agent-otp/admin_token',
      '-e',
      'SECRETS_ENCRYPTION_KEY_FILE=/run/agent-otp/secrets_encryption_key',
      '-e',
      'DATABASE_URL_FILE=/run/agent-otp/database_url',
      '--entrypoint',
      'node',
      IMAGE,
      '--input-type=module',
      '-e',
      "const { loadConfig } = await import('/app/dist/config.js'); const c = loadConfig(); " +
        'console.log(new URL(c.DATABASE_URL).host, c.ADMIN_TOKEN.length, Boolean(c.SECRETS_ENCRYPTION_KEY));',
    ],
    { check: false },
  );
  check(
    'secrets-init: the service (uid 10001) reads them as *_FILE and its config accepts them',
    accepted.status === 0 && accepted.stdout.trim() === 'postgres:5432 51 true',
    (accepted.stdout + accepted.stderr).trim(),
  );

  // ---- the database, the secrets, the roles ----
  dropTestState();
  psql(PG.adminDb, `CREATE DATABASE ${PG.db}`);
  const port = await freePort();
  const adminToken = `uk_${randomBytes(36).toString('base64url')}`;
  const secrets = mkdtempSync(path.join(os.tmpdir(), 'aotp-ct-secrets-'));
  try {
    chmodSync(secrets, 0o755); // read by the container's user 10001
    const secret = (name, value) => writeFileSync(path.join(secrets, name), `${value}\n`, { mode: 0o644 });
    secret('admin_token', adminToken);
    secret('database_url', `postgres://${PG.user}@${PG.host}:${PG.port}/${PG.db}`);
    // The same key for every role, as the service requires of instances sharing a database.
    secret('secrets_encryption_key', randomBytes(32).toString('base64'));
    const env = {
      PORT: String(port),
      REDIS_URL,
      REDIS_KEY_PREFIX: PREFIX,
      DATABASE_URL_FILE: '/run/secrets/database_url',
      ADMIN_TOKEN_FILE: '/run/secrets/admin_token',
      SECRETS_ENCRYPTION_KEY_FILE: '/run/secrets/secrets_encryption_key',
      // The shortest the schema allows, so the worker's expiry is seen within the run.
      APPROVAL_TIMEOUT_SECONDS: '30',
      RECONCILE_INTERVAL_MS: '5000',
    };
    // As manifests/k8s runs them: a read-only root filesystem (and no tmpfs on /tmp, which
    // Kubernetes does not add), no capabilities, no privilege escalation, the heap cap.
    const runRole = (role, extra = []) =>
      podman([
        'run',
        '-d',
        '--name',
        NAMES[role],
        '--network',
        'host',
        ...ULIMITS,
        '--read-only',
        '--read-only-tmpfs=false',
        '--cap-drop',
        'ALL',
        '--security-opt',
        'no-new-privileges',
        '-e',
        'NODE_OPTIONS=--max-old-space-size=256',
        '-v',
        `${secrets}:/run/secrets:ro`,
        ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
        ...extra,
        IMAGE,
        role,
      ]);
    const url = `http://127.0.0.1:${port}`;

    const apiStarted = Date.now();
    runRole('api', ['-v', `${DATA_VOLUME}:/data`]);
    const readyIn = await waitReady(url, NAMES.api);
    must(
      'api: /readyz 200',
      readyIn !== null,
      readyIn === null ? lastLogs(NAMES.api) : `${((readyIn - apiStarted) / 1000).toFixed(1)} s after run`,
    );
    runRole('worker');
    runRole('bot');
    for (const role of ['worker', 'bot']) {
      const line = await waitForLog(NAMES[role], '"msg":"listening"', 60_000);
      must(
        `${role}: runs as its own container`,
        line?.includes(`"roles":["${role}"]`) === true,
        line === null ? lastLogs(NAMES[role]) : `logged "listening" with roles ["${role}"]`,
      );
    }
    check('the process runs as uid 10001', exec(['id', '-u']).stdout.trim() === '10001');
    for (const role of ['api', 'worker']) {
      const h = podman(['healthcheck', 'run', NAMES[role]], { check: false });
      check(`${role}: HEALTHCHECK passes`, h.status === 0, (h.stdout + h.stderr).trim());
    }

    // ---- request → approval through the CLI in the container → use ----
    const agent = JSON.parse(
      exec(['agent-otp', 'agent:create', '--name', 'container-check', '--json']).stdout,
    );
    must('CLI in the container: agent:create', typeof agent.apiKey === 'string', agent.id);
    const call = (method, route, body) =>
      fetch(`${url}/api/v1${route}`, {
        method,
        headers: {
          authorization: `Bearer ${agent.apiKey}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
    const ask = async (action) => {
      const res = await call('POST', '/permissions/request', {
        action,
        resource: 'container-check',
        ttl: 300,
      });
      return { status: res.status, data: (await res.json()).data };
    };
    const unanswered = await ask('report.send'); // left for the worker to expire
    const asked = await ask('deploy.production');
    must(
      'agent: request is pending (202)',
      asked.status === 202 && asked.data.status === 'pending',
      `${asked.status}`,
    );
    const approved = exec(['agent-otp', 'approve', asked.data.id, '--yes', '--reason', 'container check'], {
      check: false,
    });
    must(
      'CLI in the container: approve',
      approved.status === 0,
      (approved.stdout + approved.stderr).trim().split('\n').at(-1),
    );
    const got = await (await call('GET', `/permissions/${asked.data.id}`)).json();
    must(
      'agent: the approved permission carries its token',
      got.data.status === 'approved' && Boolean(got.data.token),
    );
    const used = await call('POST', `/permissions/${asked.data.id}/use`, { token: got.data.token });
    const usedBody = await used.json();
    must('agent: use succeeds', used.status === 200 && usedBody.data.success === true, `${used.status}`);

    // ---- SIGTERM: a waiting long poll is answered, the process exits 0 within 10 s ----
    const waiting = await ask('db.migrate');
    const longPoll = call('GET', `/permissions/${waiting.data.id}?wait=30`).then(
      async (res) => ({ status: res.status, body: await res.json() }),
      (err) => ({ error: err.cause?.code ?? err.message }),
    );
    await sleep(500);
    const api = stopTimed(NAMES.api);
    check(
      'api: SIGTERM stops it within 10 s, exit 0',
      api.seconds < 10 && api.exitCode === 0,
      `${api.seconds.toFixed(1)} s, exit ${api.exitCode}`,
    );
    const polled = await longPoll;
    check(
      'api: a long poll in flight is answered at shutdown',
      polled.status === 200 && polled.body.data.status === 'pending',
      polled.error ?? `${polled.status} ${polled.body?.data?.status}`,
    );
    check('api: logged "stopped"', podman(['logs', NAMES.api]).stdout.includes('"msg":"stopped"'));

    // ---- nothing lost: after a restart the trail has the use ----
    const restarted = Date.now();
    podman(['start', NAMES.api]);
    const readyAgain = await waitReady(url, NAMES.api);
    must(
      'api: ready again after a restart',
      readyAgain !== null,
      readyAgain === null ? lastLogs(NAMES.api) : `${((readyAgain - restarted) / 1000).toFixed(1)} s`,
    );
    const trail = JSON.parse(
      exec(['agent-otp', 'audit:list', '--permission', asked.data.id, '--json']).stdout,
    );
    const types = trail.map((e) => e.type);
    check(
      'after the restart the audit trail has request, approve and use',
      ['request', 'approve', 'use'].every((t) => types.includes(t)),
      types.join(', '),
    );
    const verified = exec(['agent-otp', 'audit:verify', '--json'], { check: false });
    check(
      'audit:verify: the chain is intact',
      verified.status === 0 && JSON.parse(verified.stdout).valid === true,
    );

    // ---- the worker, its own container on the same Postgres and Redis, expired the unanswered request ----
    const deadline = Date.now() + 90_000;
    let expired = false;
    while (!expired && Date.now() < deadline) {
      const events = JSON.parse(
        exec(['agent-otp', 'audit:list', '--permission', unanswered.data.id, '--json']).stdout,
      );
      expired = events.some((e) => e.type === 'expire');
      if (!expired) await sleep(2000);
    }
    check('worker: expired the request nobody answered (audit "expire")', expired);

    for (const role of ['worker', 'bot']) {
      const stopped = stopTimed(NAMES[role]);
      check(
        `${role}: SIGTERM stops it within 10 s, exit 0`,
        stopped.seconds < 10 && stopped.exitCode === 0,
        `${stopped.seconds.toFixed(1)} s, exit ${stopped.exitCode}`,
      );
    }
    const apiStop = stopTimed(NAMES.api);
    check(
      'api (restarted): SIGTERM stops it within 10 s, exit 0',
      apiStop.seconds < 10 && apiStop.exitCode === 0,
      `${apiStop.seconds.toFixed(1)} s`,
    );

    // ---- the default: `start` (every role in one process) on the embedded PGlite, in the volume ----
    const pglitePort = await freePort();
    const pgliteStarted = Date.now();
    podman([
      'run',
      '-d',
      '--name',
      NAMES.pglite,
      '--network',
      'host',
      ...ULIMITS,
      '-v',
      `${PGLITE_VOLUME}:/data`,
      '-e',
      `PORT=${pglitePort}`,
      '-e',
      `REDIS_URL=${REDIS_URL}`,
      '-e',
      `REDIS_KEY_PREFIX=${PREFIX}pglite`,
      IMAGE,
    ]);
    const pgliteReady = await waitReady(`http://127.0.0.1:${pglitePort}`, NAMES.pglite, 180_000);
    check(
      'start on PGlite: /readyz 200 on a fresh volume (the cluster made on first start)',
      pgliteReady !== null,
      pgliteReady === null
        ? lastLogs(NAMES.pglite)
        : `${((pgliteReady - pgliteStarted) / 1000).toFixed(1)} s after run`,
    );
    const h = podman(['healthcheck', 'run', NAMES.pglite], { check: false });
    check('start on PGlite: HEALTHCHECK passes', h.status === 0, (h.stdout + h.stderr).trim());
    const key = exec(['test', '-s', '/data/admin-token'], { check: false, name: NAMES.pglite });
    check('start on PGlite: the generated operator key is in the volume', key.status === 0);
    const pgliteStop = stopTimed(NAMES.pglite);
    check(
      'start on PGlite: SIGTERM stops it within 10 s, exit 0',
      pgliteStop.seconds < 10 && pgliteStop.exitCode === 0,
      `${pgliteStop.seconds.toFixed(1)} s, exit ${pgliteStop.exitCode}`,
    );
    log(
      `\nfigures: build ${buildSeconds.toFixed(0)} s, image ${mb(size)}, added over base ${mb(size - baseSize)}`,
    );
  } finally {
    rmSync(secrets, { recursive: true, force: true });
  }
}

function exec(args, { name = NAMES.api, ...opts } = {}) {
  return podman(['exec', name, ...args], opts);
}

function stopTimed(name) {
  const t = Date.now();
  podman(['stop', '-t', '10', name]);
  const seconds = (Date.now() - t) / 1000;
  const exitCode = Number(podman(['inspect', '--format', '{{.State.ExitCode}}', name]).stdout.trim());
  return { seconds, exitCode };
}

async function waitReady(url, name, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return Date.now();
    } catch {}
    if (podman(['inspect', '--format', '{{.State.Running}}', name]).stdout.trim() !== 'true') return null;
    await sleep(500);
  }
  return null;
}

async function waitForLog(name, needle, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const line = podman(['logs', name], { check: false })
      .stdout.split('\n')
      .find((l) => l.includes(needle));
    if (line) return line;
    await sleep(500);
  }
  return null;
}

function lastLogs(name) {
  const r = podman(['logs', '--tail', '20', name], { check: false });
  return `\n${r.stdout}${r.stderr}`;
}

try {
  await main();
} catch (err) {
  failures++;
  log(`FAIL ${err.message}`);
} finally {
  try {
    dropTestState();
  } catch (err) {
    log(`cleanup: ${err.message}`);
  }
}
log(failures === 0 ? '\ncontainer checks passed' : `\n${failures} container check(s) failed`);
process.exit(failures === 0 ? 0 : 1);
