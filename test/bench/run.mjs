#!/usr/bin/env node
// npm run bench: the hot paths of the built server on real Postgres and Redis, read against two
// ceilings measured in the same run: a bare Fastify hello-world (what HTTP allows) and the limit
// row, the request's own INSERT driven straight from Node with the same driver and pool (what
// the database allows). Then the embedded default (PGlite), and hostile regex patterns.
//
// BENCH_ONLY=limit,request,… runs only the named rows (keys in ROWS below); BENCH_HOSTILE=0
// skips the hostile-pattern figures. Both are for trying one lever at a time; the figures a
// note quotes come from a whole run.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import pg from 'pg';
import { api, cpuSince, machineCpuMs, processCpuMs, processesCpuMs } from './helpers.mjs';
import { hostilePatternsOverHttp, hostilePure } from './hostile.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DB_URL =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Seconds per row per round; every row runs once per round, rounds interleaved (see main). */
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
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

/**
 * One row: autocannon for DURATION seconds. `perRound` HTTP calls make one unit of the row (2 for
 * a request → use pair), so req/s is units per second; p50/p99 are per HTTP call.
 */
function run(key, name, opts, perRound = 1, serverPid = null) {
  const cpuBefore = serverPid ? processCpuMs(serverPid) : null;
  const dbBefore = processesCpuMs('postgres');
  const machineBefore = machineCpuMs();
  return new Promise((resolve, reject) => {
    autocannon({ connections: CONNECTIONS, duration: DURATION, ...opts }, (err, result) => {
      if (err) return reject(err);
      const cpuAfter = serverPid ? processCpuMs(serverPid) : null;
      const dbAfter = processesCpuMs('postgres');
      const machineAfter = machineCpuMs();
      const units = result.requests.total / perRound;
      resolve({
        key,
        name,
        rps: result.requests.average / perRound,
        p50: result.latency.p50,
        p99: result.latency.p99,
        non2xx: result.non2xx + result.errors,
        // The server's CPU per unit (µs): what a row costs the process, whatever else ran.
        cpuUs: cpuBefore === null || cpuAfter === null ? null : ((cpuAfter - cpuBefore) * 1000) / units,
        // Postgres's processes' CPU per unit (µs): zero for the embedded default, whose database
        // runs inside the server process.
        dbUs: dbBefore && dbAfter ? (cpuSince(dbBefore, dbAfter) * 1000) / units : null,
        // The whole machine's busy CPU per unit (µs), the load generator included, and the share
        // of the cores left idle: a row with cores idle was held back by waiting, not by work.
        boxUs:
          machineBefore && machineAfter ? ((machineAfter.busy - machineBefore.busy) * 1000) / units : null,
        idlePct:
          machineBefore && machineAfter
            ? 100 *
              (1 - (machineAfter.busy - machineBefore.busy) / (machineAfter.total - machineBefore.total))
            : null,
      });
    });
  });
}

const HELLO = `
const app = require(${JSON.stringify(path.join(ROOT, 'node_modules/fastify'))})();
app.get('/', async () => ({ hello: 'world' }));
app.listen({ port: 0, host: '127.0.0.1' }).then((url) => console.log('listening ' + url));
`;

/** Rows, in the order they run; BENCH_ONLY picks some by key. */
const ROWS = ['hello', 'limit', 'request', 'verify', 'use', 'pairs', 'hot', 'embedded'];
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : null;
const wanted = (key) => !ONLY || ONLY.has(key);
const HOSTILE = process.env.BENCH_HOSTILE !== '0' && !ONLY;

const REQUEST = { action: 'bench.op', scope: { max_amount: 100 }, context: { reason: 'bench' } };
const USE = { actionDetails: { amount: 5 } };

function serverEnv(dataDir, schema, database) {
  return {
    PORT: '0',
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    ADMIN_TOKEN: ADMIN,
    AGENT_OTP_DATA_DIR: dataDir,
    ...database,
    REDIS_KEY_PREFIX: schema,
    RATE_LIMIT_PER_MIN: '100000000',
    RATE_LIMIT_PER_HOUR: '1000000000',
    TOKEN_RATE_LIMIT_PER_MIN: '100000000',
    TOKEN_RATE_LIMIT_PER_HOUR: '1000000000',
  };
}

function startServer(env) {
  return startProcess(
    // BENCH_NODE_OPTIONS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the server.
    [
      ...(process.env.BENCH_NODE_OPTIONS?.split(' ').filter(Boolean) ?? []),
      path.join(ROOT, 'dist/cli/index.js'),
      'start',
    ],
    env,
    /"url":"(http:\/\/[^"]+)","msg":"listening"/,
  );
}

/** The bench policy and agent, and tokens on many permissions (client commitments, many uses each). */
async function prepare(base, permissionCount) {
  await api(base, ADMIN, 'PUT', '/api/v1/policies', {
    policies: [{ name: 'bench', conditions: { action: 'bench.*' }, action: 'auto_approve' }],
  });
  const agent = await api(base, ADMIN, 'POST', '/api/v1/agents', { name: 'bench' });
  const headers = { authorization: `Bearer ${agent.apiKey}`, 'content-type': 'application/json' };
  const tokens = [];
  for (let i = 0; i < permissionCount; i += 1) {
    const token = `otp_v1_${randomBytes(32).toString('base64url')}`;
    const p = await api(base, agent.apiKey, 'POST', '/api/v1/permissions/request', {
      action: 'bench.op',
      ttl: 3600,
      scope: { max_uses: 1000000, max_amount: 100 },
      tokenHash: createHash('sha256').update(token).digest('hex'),
    });
    tokens.push({ id: p.id, token });
  }
  return { agent, headers, tokens };
}

/** The hot paths against one running server; `prefix` names the rows ('' or 'embedded '). */
async function hotPaths(base, pid, { headers, tokens }, prefix, keys) {
  const rows = [];
  const row = (key, name, opts, perRound = 1) =>
    run(`${prefix}${key}`, `${prefix}${name}`, { url: base, ...opts }, perRound, pid);
  if (keys.has('request'))
    rows.push(
      await row('request', 'request (auto-approved)', {
        url: `${base}/api/v1/permissions/request`,
        method: 'POST',
        headers,
        body: JSON.stringify(REQUEST),
      }),
    );
  // Spread over many rows so the figure is the path, not one hot row's lock.
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
            body: JSON.stringify({ token: t.token, ...USE }),
          };
        },
      },
    ];
  };
  if (keys.has('verify')) rows.push(await row('verify', 'verify', { requests: rotating('verify') }));
  if (keys.has('use')) rows.push(await row('use', 'use (many permissions)', { requests: rotating('use') }));
  if (keys.has('pairs')) {
    // The agent's own pattern: ask, get the server-minted token, spend it once.
    const pairs = [
      {
        method: 'POST',
        path: '/api/v1/permissions/request',
        headers,
        body: JSON.stringify(REQUEST),
        onResponse: (status, body, context) => {
          const data = status === 201 ? JSON.parse(body).data : null;
          context.id = data?.id ?? 'perm_missing';
          context.token = data?.token ?? 'none';
        },
      },
      {
        method: 'POST',
        setupRequest: (req, context) => ({
          ...req,
          path: `/api/v1/permissions/${context.id}/use`,
          headers,
          body: JSON.stringify({ token: context.token, ...USE }),
        }),
      },
    ];
    rows.push(await row('pairs', 'request → use pairs', { requests: pairs }, 2));
  }
  if (keys.has('hot')) {
    const t = tokens[0];
    rows.push(
      await row('hot', 'use (one hot permission)', {
        url: `${base}/api/v1/permissions/${t.id}/use`,
        method: 'POST',
        headers,
        body: JSON.stringify({ token: t.token, ...USE }),
      }),
    );
  }
  return rows;
}

/**
 * The limit row: the request's own INSERT (permission, its two audit events), one per call, built by the
 * server's own code and run by the server's own driver wrapper and pool size, CONNECTIONS at a
 * time, with no HTTP, no Redis and no policy: what the database allows one request here.
 */
async function limitRow(schema, agentId) {
  const dist = (p) => import(path.join(ROOT, 'dist', p));
  const { createPostgresDb } = await dist('store/postgres.js');
  const { insertPermissions } = await dist('store/permissionRepository.js');
  const { hashDetails } = await dist('core/audit/event.js');
  const { newId } = await dist('core/ids.js');
  const { hashToken, newToken } = await dist('core/token.js');
  const db = createPostgresDb({ connectionString: DB_URL, poolSize: CONNECTIONS, schema });
  const policy = { type: 'policy', name: 'bench' };
  const event = (p, type, actor, details) => ({
    id: newId('event'),
    occurredAt: p.createdAt,
    type,
    actor,
    agentId: p.agentId,
    permissionId: p.id,
    details,
    ip: '127.0.0.1',
    userAgent: null,
    detailsHash: hashDetails(details),
  });
  const insertOne = async () => {
    const now = new Date();
    const p = {
      id: newId('permission'),
      agentId,
      action: REQUEST.action,
      resource: null,
      requestedScope: REQUEST.scope,
      scope: REQUEST.scope,
      context: REQUEST.context,
      status: 'approved',
      ttlSeconds: 300,
      policyId: null,
      policyName: 'bench',
      decisionReason: 'bench',
      decidedBy: policy,
      decidedAt: now,
      expiresAt: new Date(now.getTime() + 300_000),
      tokenHash: hashToken(newToken()),
      clientToken: false,
      maxUses: 1,
      usesRemaining: 1,
      totals: {},
      approval: null,
      approvals: [],
      webhookUrl: null,
      approvalUrl: null,
      idempotencyKey: null,
      requestHash: null,
      createdAt: now,
      updatedAt: now,
      lastUsedAt: null,
    };
    const actor = { type: 'agent', id: agentId, name: 'bench' };
    const events = [
      event(p, 'request', actor, {
        action: p.action,
        resource: null,
        requestedScope: p.scope,
        context: p.context,
        ttl: 300,
        clientToken: false,
      }),
      event(p, 'approve', policy, {
        reason: 'bench',
        scope: p.scope,
        expiresAt: p.expiresAt.toISOString(),
        maxUses: 1,
      }),
    ];
    await insertPermissions(db, [{ permission: p, events, delivery: null }]);
  };
  try {
    return await closedLoop('limit', 'limit: the request INSERT from Node', insertOne);
  } finally {
    await db.close();
  }
}

/** CONNECTIONS callers, each calling `once` back to back for DURATION seconds. */
async function closedLoop(key, name, once) {
  const latencies = [];
  let errors = 0;
  const until = performance.now() + DURATION * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        try {
          await once();
        } catch {
          errors += 1;
        }
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q) => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]);
  return { key, name, rps: latencies.length / seconds, p50: at(0.5), p99: at(0.99), non2xx: errors };
}

/** What issue 17 asks of each row, as a ratio to another row of the same run (or an absolute rate). */
const GOALS = {
  request: { of: 'limit', at: 0.6 },
  verify: { of: 'request', at: 1.5 },
  pairs: { of: 'limit', at: 0.5 },
  hot: { of: 'request', at: 0.8 },
  'embedded request': { absolute: 1000 },
};
const P99_GOAL_MS = 50;
const POSTGRES_PATHS = new Set(['request', 'verify', 'use', 'pairs', 'hot']);

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** One row per key, in first-seen order: the median of its rounds (non-2xx: the sum). */
function medians(results) {
  const byKey = new Map();
  for (const r of results) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r]);
  return [...byKey.values()].map((rounds) => ({
    key: rounds[0].key,
    name: rounds[0].name,
    rps: median(rounds.map((r) => r.rps)),
    p50: median(rounds.map((r) => r.p50)),
    p99: median(rounds.map((r) => r.p99)),
    cpuUs: rounds.every((r) => r.cpuUs != null) ? median(rounds.map((r) => r.cpuUs)) : null,
    dbUs: rounds.every((r) => r.dbUs != null) ? median(rounds.map((r) => r.dbUs)) : null,
    boxUs: rounds.every((r) => r.boxUs != null) ? median(rounds.map((r) => r.boxUs)) : null,
    idlePct: rounds.every((r) => r.idlePct != null) ? median(rounds.map((r) => r.idlePct)) : null,
    non2xx: rounds.reduce((sum, r) => sum + r.non2xx, 0),
  }));
}

function printTable(results) {
  const byKey = Object.fromEntries(results.map((r) => [r.key, r]));
  const limit = byKey.limit?.rps;
  console.log(
    `\n${CONNECTIONS} connections, ${ROUNDS} rounds of ${DURATION} s per row (medians), Postgres ${new URL(DB_URL).host}, Redis ${new URL(REDIS_URL).host}\n`,
  );
  const cells = [
    'path',
    'req/s',
    'p50 ms',
    'p99 ms',
    'CPU µs',
    'DB µs',
    'box µs',
    'idle %',
    '× limit',
    'goal',
    '',
    'non-2xx',
  ];
  const widths = [38, 9, 8, 8, 8, 8, 8, 8, 8, 36, 4, 8];
  const GOAL_CELL = 9;
  const line = (values) =>
    values
      .map((v, i) =>
        i === 0 || i === GOAL_CELL ? String(v).padEnd(widths[i]) : String(v).padStart(widths[i]),
      )
      .join(' ');
  console.log(line(cells));
  let missed = 0;
  for (const r of results) {
    const goal = GOALS[r.key];
    let goalText = '';
    let ok = true;
    if (goal?.absolute) {
      goalText = `≥ ${goal.absolute}/s`;
      ok = r.rps >= goal.absolute;
    } else if (goal && byKey[goal.of]) {
      goalText = `≥ ${goal.at} × ${goal.of} (${(r.rps / byKey[goal.of].rps).toFixed(2)})`;
      ok = r.rps >= goal.at * byKey[goal.of].rps;
    }
    if (POSTGRES_PATHS.has(r.key)) {
      goalText += goalText ? ', ' : '';
      goalText += `p99 < ${P99_GOAL_MS}`;
      ok = ok && r.p99 < P99_GOAL_MS;
    }
    if (!goalText) ok = null;
    if (ok === false) missed += 1;
    console.log(
      line([
        r.name,
        r.rps.toFixed(0),
        r.p50,
        r.p99,
        r.cpuUs ? r.cpuUs.toFixed(0) : '',
        r.dbUs && !r.key.startsWith('embedded') ? r.dbUs.toFixed(0) : '',
        r.boxUs ? r.boxUs.toFixed(0) : '',
        r.idlePct != null ? Math.max(0, r.idlePct).toFixed(0) : '',
        // The limit row is Postgres's: the embedded rows are read on their own.
        limit && r.key !== 'hello' && !r.key.startsWith('embedded') ? (r.rps / limit).toFixed(2) : '',
        goalText,
        ok === null ? '' : ok ? 'ok' : 'MISS',
        r.non2xx,
      ]),
    );
  }
  console.log(
    `\nreq/s of the pairs row counts pairs (two calls each); p50/p99 are per HTTP call; CPU µs and DB µs are the CPU time per unit of the server process and of Postgres's processes; box µs is the whole machine's (the load generator included) and idle % the share of its cores left idle. ${missed ? `${missed} goal(s) missed.` : 'Every goal met.'}`,
  );
}

async function main() {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  await sql(`CREATE SCHEMA ${schema}`);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'aotp-bench-'));
  const embeddedDir = mkdtempSync(path.join(tmpdir(), 'aotp-bench-embedded-'));
  const sep = DB_URL.includes('?') ? '&' : '?';
  const results = [];
  let server;
  let embedded;
  let hostileHttp = [];
  try {
    if (wanted('hello')) {
      const hello = await startProcess(['-e', HELLO], {}, /listening (http:\/\/\S+)/);
      try {
        results.push(await run('hello', 'hello-world (bare Fastify)', { url: `${hello.url}/` }));
      } finally {
        await stop(hello.child);
      }
    }

    server = await startServer(
      serverEnv(dataDir, schema, {
        DATABASE_URL: `${DB_URL}${sep}options=${encodeURIComponent(`-c search_path=${schema}`)}`,
        DATABASE_POOL_SIZE: String(CONNECTIONS),
        REDIS_URL,
      }),
    );
    const setup = await prepare(server.url, 1000);
    // Rows take turns, round after round, and each row's figure is its median: this machine's
    // speed drifts by ±25 % within minutes, and a ratio of two rows measured minutes apart
    // would mostly measure the drift.
    for (let round = 0; round < ROUNDS; round += 1) {
      if (wanted('limit')) results.push(await limitRow(schema, setup.agent.id));
      results.push(
        ...(await hotPaths(server.url, server.child.pid, setup, '', new Set(ROWS.filter(wanted)))),
      );
    }
    if (HOSTILE)
      hostileHttp = await hostilePatternsOverHttp(server.url, setup.agent.apiKey, server.child.pid);
    await stop(server.child);
    server = null;

    if (wanted('embedded')) {
      // npm start's default: no DATABASE_URL (PGlite in the data dir), the local Redis.
      embedded = await startServer(serverEnv(embeddedDir, `${schema}e`, {}));
      const embeddedSetup = await prepare(embedded.url, 200);
      const keys = new Set(['request', 'verify', 'use', 'pairs']);
      for (let round = 0; round < ROUNDS; round += 1)
        results.push(...(await hotPaths(embedded.url, embedded.child.pid, embeddedSetup, 'embedded ', keys)));
    }
  } finally {
    if (server) await stop(server.child);
    if (embedded) await stop(embedded.child);
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(embeddedDir, { recursive: true, force: true });
    await sql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
  }
  printTable(medians(results));
  for (const line of hostileHttp) console.log(line);
}

main()
  .then(() => (HOSTILE ? hostilePure() : undefined))
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
