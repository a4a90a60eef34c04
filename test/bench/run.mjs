#!/usr/bin/env node
// npm run bench: the hot paths of the built server on real Postgres and Redis, next to a bare
// Fastify hello-world measured in the same run, so results are read as ratios (DESIGN §12).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DB_URL =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ADMIN = `uk_${randomBytes(24).toString('hex')}`;

function startProcess(args, env, readyPattern) {
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`did not start:\n${output}`)), 30_000);
    const onData = (d) => {
      output += d.toString();
      const match = readyPattern.exec(output);
      if (match) {
        clearTimeout(timer);
        child.stdout.removeAllListeners('data');
        child.stdout.resume();
        resolve({ child, url: match[1] });
      }
      if (output.length > 1_000_000) output = output.slice(-10_000);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (d) => {
      output += d.toString();
    });
    child.once('exit', (code) => reject(new Error(`exited ${code}:\n${output}`)));
  });
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
  });
}

async function sql(query, params) {
  const client = new pg.Client({ connectionString: DB_URL });
  await client.connect();
  try {
    return await client.query(query, params);
  } finally {
    await client.end();
  }
}

async function api(base, key, method, route, body) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!json.success) throw new Error(`${method} ${route}: ${JSON.stringify(json.error)}`);
  return json.data;
}

function run(name, opts) {
  return new Promise((resolve, reject) => {
    autocannon({ connections: CONNECTIONS, duration: DURATION, ...opts }, (err, result) => {
      if (err) return reject(err);
      const non2xx = result.non2xx + result.errors;
      resolve({
        name,
        rps: result.requests.average,
        p50: result.latency.p50,
        p99: result.latency.p99,
        non2xx,
      });
    });
  });
}

const HELLO = `
const app = require(${JSON.stringify(path.join(ROOT, 'node_modules/fastify'))})();
app.get('/', async () => ({ hello: 'world' }));
app.listen({ port: 0, host: '127.0.0.1' }).then((url) => console.log('listening ' + url));
`;

async function main() {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  await sql(`CREATE SCHEMA ${schema}`);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'aotp-bench-'));
  const sep = DB_URL.includes('?') ? '&' : '?';
  const results = [];
  let server;
  let hello;
  try {
    hello = await startProcess(['-e', HELLO], {}, /listening (http:\/\/\S+)/);
    results.push(await run('hello-world (bare Fastify)', { url: `${hello.url}/` }));
    await stop(hello.child);

    server = await startProcess(
      // BENCH_NODE_OPTIONS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the server.
      [
        ...(process.env.BENCH_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []),
        path.join(ROOT, 'dist/cli/index.js'),
        'start',
      ],
      {
        PORT: '0',
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
        ADMIN_TOKEN: ADMIN,
        AGENT_OTP_DATA_DIR: dataDir,
        DATABASE_URL: `${DB_URL}${sep}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
        DATABASE_POOL_SIZE: String(CONNECTIONS),
        REDIS_URL,
        REDIS_KEY_PREFIX: schema,
        RATE_LIMIT_PER_MIN: '100000000',
        RATE_LIMIT_PER_HOUR: '1000000000',
      },
      /"url":"(http:\/\/[^"]+)","msg":"listening"/,
    );
    const base = server.url;
    await api(base, ADMIN, 'PUT', '/api/v1/policies', {
      policies: [{ name: 'bench', conditions: { action: 'bench.*' }, action: 'auto_approve' }],
    });
    const agent = await api(base, ADMIN, 'POST', '/api/v1/agents', { name: 'bench' });
    const headers = { authorization: `Bearer ${agent.apiKey}`, 'content-type': 'application/json' };

    results.push(
      await run('request (auto-approved)', {
        url: `${base}/api/v1/permissions/request`,
        method: 'POST',
        headers,
        body: JSON.stringify({
          action: 'bench.op',
          scope: { max_amount: 100 },
          context: { reason: 'bench' },
        }),
      }),
    );

    // Tokens for verify and use: client commitments, many uses each, spread over many rows so
    // the measurement is the path, not one hot row's lock.
    const tokens = [];
    for (let i = 0; i < 1000; i += 1) {
      const token = `otp_v1_${randomBytes(32).toString('base64url')}`;
      const p = await api(base, agent.apiKey, 'POST', '/api/v1/permissions/request', {
        action: 'bench.op',
        ttl: 3600,
        scope: { max_uses: 1000000, max_amount: 100 },
        tokenHash: createHash('sha256').update(token).digest('hex'),
      });
      tokens.push({ id: p.id, token });
    }
    const rotating = (kind) => {
      let n = 0;
      return [
        {
          method: 'POST',
          setupRequest: (req) => {
            const t = tokens[n++ % tokens.length];
            return {
              ...req,
              path: `/api/v1/permissions/${t.id}/${kind}`,
              headers,
              body: JSON.stringify({ token: t.token, actionDetails: { amount: 5 } }),
            };
          },
        },
      ];
    };
    results.push(await run('verify', { url: base, requests: rotating('verify') }));
    results.push(await run('use', { url: base, requests: rotating('use') }));
  } finally {
    if (server) await stop(server.child);
    if (hello) await stop(hello.child);
    rmSync(dataDir, { recursive: true, force: true });
    await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
  }

  const baseline = results[0].rps;
  const targets = { 'request (auto-approved)': 0.1, verify: 0.25, use: 0.15 };
  console.log(
    `\n${CONNECTIONS} connections, ${DURATION} s each, Postgres ${new URL(DB_URL).host}, Redis ${new URL(REDIS_URL).host}\n`,
  );
  console.log(
    [
      'path'.padEnd(28),
      'req/s'.padStart(9),
      'p50 ms'.padStart(8),
      'p99 ms'.padStart(8),
      'ratio'.padStart(7),
      'target'.padStart(7),
      'non-2xx'.padStart(8),
    ].join(' '),
  );
  for (const r of results) {
    const target = targets[r.name];
    console.log(
      [
        r.name.padEnd(28),
        r.rps.toFixed(0).padStart(9),
        String(r.p50).padStart(8),
        String(r.p99).padStart(8),
        (r.rps / baseline).toFixed(3).padStart(7),
        (target ? `≥${target}` : '').padStart(7),
        String(r.non2xx).padStart(8),
      ].join(' '),
    );
  }
}

/** A policy `matches: "(a+)+$"` against 50 000 hostile characters: RE2 keeps it linear. */
async function hostileRegex() {
  const { compilePolicies, evaluate, parsePolicySet } = await import(
    path.join(ROOT, 'dist/core/policy/index.js')
  );
  const set = compilePolicies(
    parsePolicySet([
      { name: 'redos', conditions: { 'context.text': { matches: '(a+)+$' } }, action: 'deny' },
    ]),
  );
  const text = `${'a'.repeat(50_000)}!`;
  const req = { agentId: 'a', action: 'x', scope: {}, context: { text } };
  const timings = [];
  for (let i = 0; i < 21; i += 1) {
    const started = performance.now();
    evaluate(set, req);
    timings.push(performance.now() - started);
  }
  timings.sort((a, b) => a - b);
  console.log(
    `\npolicy matches "(a+)+$" on 50 000 hostile characters: median ${timings[10].toFixed(2)} ms, max ${timings[20].toFixed(2)} ms (target < 50 ms)`,
  );
}

main()
  .then(hostileRegex)
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
