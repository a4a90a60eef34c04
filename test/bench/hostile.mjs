// Part of npm run bench (run.mjs): the cost of hostile regex patterns, through the pure scope
// check and over HTTP, so the work limit's bound is measured where agents meet it.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RE2JS } from 're2js';
import { api, processCpuMs } from './helpers.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Hostile patterns (issue 11, defect 1): the largest accepted pattern × the largest accepted input.
// Every family below is compiled to about MAX_PATTERN_PROGRAM instructions (and smaller sizes,
// since the per-call work limit lets smaller patterns read longer values); the input is the
// longest the work limit accepts for that size, shaped to be each family's worst case. Every
// call uses a pattern source not seen before, so compiling it (a cache miss) is in the figure.

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
let seed = 7;
const random = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};
/** Random a/b ending in d, with an `a` k+1 characters before the end so a[ab]{k}[^ab] matches there. */
function ab(length, k = 0) {
  const chars = Array.from({ length }, () => (random() < 0.5 ? 'a' : 'b'));
  chars[length - 1] = 'd';
  if (length - k - 2 >= 0) chars[length - k - 2] = 'a';
  return chars.join('');
}

/** Pattern families that are each slow for RE2 in their own way, with their worst input. */
const FAMILIES = [
  // A fresh DFA state per character (the (a|b)*a(a|b){k} blow-up): re2js' costliest case.
  { name: 'dfa blow-up a[ab]{k}[^ab]', make: (k) => `a[ab]{${k}}[^ab]`, input: ab },
  // k live threads on every character.
  { name: 'counted any .{k}', make: (k) => `(?s).{${k}}[^a]`, input: (n) => 'a'.repeat(n) },
  { name: 'unicode class \\p{L}{k}', make: (k) => `\\p{L}{${k}}[^a]`, input: (n) => 'a'.repeat(n) },
  {
    name: 'case-folded (?i)[\\w\\p{Greek}]{k}',
    make: (k) => `(?i)[\\w\\p{Greek}]{${k}}x`,
    input: (n) => 'Σ'.repeat(n),
  },
];

async function hostileLimits() {
  const regex = await import(path.join(ROOT, 'dist/core/regex.js'));
  const budget = await import(path.join(ROOT, 'dist/core/budget.js'));
  return { ...regex, ...budget };
}

const sizeOf = (source) => RE2JS.compile(source).programSize();

/**
 * Nanoseconds this thread (the main thread: the event loop) has run on a CPU. process.cpuUsage
 * counts every thread of the process, GC and compiler threads included, which is not what holds
 * the event loop; Linux's schedstat is per thread and in nanoseconds.
 */
const threadCpuNs = () => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);

/** Wall and main-thread CPU milliseconds of one synchronous call. */
function timed(fn) {
  const cpuBefore = threadCpuNs();
  const started = performance.now();
  fn();
  const wall = performance.now() - started;
  return { wall, cpu: (threadCpuNs() - cpuBefore) / 1e6 };
}

/** "CPU median …, max … ms (wall median …, max …)" over runs. */
function summary(runs) {
  const cpu = runs.map((r) => r.cpu).sort((a, b) => a - b);
  const wall = runs.map((r) => r.wall).sort((a, b) => a - b);
  const mid = Math.floor(runs.length / 2);
  return `CPU median ${cpu[mid].toFixed(1)}, max ${cpu.at(-1).toFixed(1)} ms (wall median ${wall[mid].toFixed(1)}, max ${wall.at(-1).toFixed(1)} ms)`;
}

/** The family's source at about `size` instructions, and the longest value one call may check with it. */
function worstCase(limits, family, size) {
  let k = size;
  while (k > 1 && sizeOf(family.make(k)) > size) k -= 1;
  const source = family.make(k);
  const program = limits.programSize(source);
  // What the work limit charges per character: more than the size for large character classes.
  const cost = limits.patternCost(source);
  let length = Math.min(limits.MAX_MATCHED_LENGTH, Math.floor(limits.WORK_BUDGET / (50 * (cost + 100))));
  while (limits.patternWork(cost, length) > limits.WORK_BUDGET) length -= 1;
  return { source, program, length, k };
}

/** checkActionDetails itself (the pure function verify and use call), one fresh pattern per call. */
export async function hostilePure() {
  const limits = await hostileLimits();
  const { checkActionDetails } = await import(path.join(ROOT, 'dist/core/scope/index.js'));
  const { compilePolicies, evaluate, parsePolicySet } = await import(
    path.join(ROOT, 'dist/core/policy/index.js')
  );
  const lines = [
    `\nhostile patterns, pure function (checkActionDetails / evaluate): bounds ${limits.MAX_PATTERN_LENGTH} characters, ${limits.MAX_PATTERN_PROGRAM} instructions per pattern; values ≤ ${limits.MAX_MATCHED_LENGTH} characters; work limit ${limits.WORK_BUDGET} units per call`,
  ];
  const rows = [];
  for (const family of FAMILIES) {
    for (const size of [limits.MAX_PATTERN_PROGRAM, 400, 100, 30]) {
      const { source, program, length, k } = worstCase(limits, family, size);
      const runs = [];
      for (let i = 0; i < 9; i += 1) {
        const fresh = `${source}${'(?:)'.repeat(i + 1)}`; // same program, not in the cache
        const value = family.input(length, k);
        let violations = [];
        runs.push(
          timed(() => {
            violations = checkActionDetails({ s_pattern: fresh }, { s: value }, { now: new Date() });
          }),
        );
        if (violations.some((v) => v.message.includes('work limit')))
          throw new Error(`over budget: ${source}`);
      }
      rows.push(runs);
      lines.push(
        `  ${family.name.padEnd(38)} ${String(program).padStart(5)} instr × ${String(length).padStart(5)} chars: ${summary(runs)}`,
      );
    }
  }
  // Policy evaluation on a request: conditions over context values up to the body limits.
  const { source, length, k } = worstCase(limits, FAMILIES[0], limits.MAX_PATTERN_PROGRAM);
  const set = compilePolicies(
    parsePolicySet(
      Array.from({ length: 50 }, (_, i) => ({
        name: `p${i}`,
        conditions: { [`context.f${i % 5}`]: { matches: `${source}${'(?:)'.repeat(i)}` } },
        action: i % 2 ? 'deny' : 'auto_approve',
      })),
    ),
  );
  // Values as long as one such match may read: the first match spends the budget, the rest are undecidable.
  const context = Object.fromEntries([0, 1, 2, 3, 4].map((i) => [`f${i}`, ab(length, k)]));
  const evals = [];
  for (let i = 0; i < 9; i += 1)
    evals.push(timed(() => evaluate(set, { agentId: 'a', action: 'x', scope: {}, context })));
  rows.push(evals);
  lines.push(
    `  policy evaluation, 50 policies with ${limits.MAX_PATTERN_PROGRAM}-instruction matches over ${length}-char context values: ${summary(evals)}`,
  );
  const all = rows.flat();
  lines.push(
    `  worst pure call: ${Math.max(...all.map((r) => r.cpu)).toFixed(1)} ms of main-thread CPU (target < 50 ms), ${Math.max(...all.map((r) => r.wall)).toFixed(1)} ms wall (wall includes waiting for a busy CPU)`,
  );
  for (const line of lines) console.log(line);
}

/**
 * Through HTTP: the worst family at the largest accepted size and input, on 200 permissions with
 * distinct patterns (more than the 128 compiled patterns kept, so calls also compile), verify and
 * use one at a time; then /healthz latency while 16 connections send such calls.
 */
export async function hostilePatternsOverHttp(base, apiKey, pid) {
  const limits = await hostileLimits();
  const headers = { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' };
  const family = FAMILIES[0];
  const { source, program, length, k } = worstCase(limits, family, limits.MAX_PATTERN_PROGRAM);
  const grants = [];
  for (let i = 0; i < 200; i += 1) {
    const token = `otp_v1_${randomBytes(32).toString('base64url')}`;
    const p = await api(base, apiKey, 'POST', '/api/v1/permissions/request', {
      action: 'bench.op',
      ttl: 3600,
      scope: { max_uses: 1000000, s_pattern: `${source}${'(?:)'.repeat(i)}` },
      tokenHash: createHash('sha256').update(token).digest('hex'),
    });
    grants.push({ id: p.id, token });
  }
  const value = family.input(length, k);
  let n = 0;
  const call = async (kind) => {
    const g = grants[n++ % grants.length];
    const started = performance.now();
    const res = await fetch(`${base}/api/v1/permissions/${g.id}/${kind}`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ token: g.token, actionDetails: { s: value } }),
    });
    const body = await res.json();
    // The largest pattern needs more characters than one call may read, so the value does not
    // match: a full scan, the worst case. Only a refusal before matching would be a wrong figure.
    const text = JSON.stringify(body);
    if (
      text.includes('work limit') ||
      text.includes('longer than') ||
      (res.status !== 200 && res.status !== 403)
    ) {
      throw new Error(`hostile ${kind} was not matched: ${text}`);
    }
    return performance.now() - started;
  };
  const lines = [
    `\nhostile patterns over HTTP: ${family.name}, ${program} instructions × ${length} characters`,
  ];
  for (const kind of ['verify', 'use']) {
    const timings = [];
    const cpuBefore = processCpuMs(pid);
    for (let i = 0; i < 200; i += 1) timings.push(await call(kind));
    const cpuAfter = processCpuMs(pid);
    timings.sort((a, b) => a - b);
    const cpu = cpuBefore === null || cpuAfter === null ? 'n/a' : ((cpuAfter - cpuBefore) / 200).toFixed(1);
    lines.push(
      `  ${kind.padEnd(6)} one at a time: median ${percentile(timings, 0.5).toFixed(1)} ms, p99 ${percentile(timings, 0.99).toFixed(1)} ms, max ${timings.at(-1).toFixed(1)} ms per call; server CPU ${cpu} ms per call`,
    );
  }
  let bursting = true;
  const burst = Array.from({ length: 16 }, async () => {
    let calls = 0;
    while (bursting) {
      await call(calls % 2 ? 'use' : 'verify');
      calls += 1;
    }
    return calls;
  });
  const health = [];
  const until = Date.now() + 5000;
  while (Date.now() < until) {
    const started = performance.now();
    await fetch(`${base}/healthz`);
    health.push(performance.now() - started);
    await new Promise((r) => setTimeout(r, 10));
  }
  bursting = false;
  const calls = (await Promise.all(burst)).reduce((a, b) => a + b, 0);
  health.sort((a, b) => a - b);
  lines.push(
    `  /healthz during a burst (16 connections, ${calls} hostile calls in 5 s): median ${percentile(health, 0.5).toFixed(1)} ms, p99 ${percentile(health, 0.99).toFixed(1)} ms, max ${health.at(-1).toFixed(1)} ms`,
  );
  return lines;
}
