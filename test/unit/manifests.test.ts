import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { KNOWN_VARIABLES, SECRET_VARIABLES } from '../../src/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const K8S = path.join(ROOT, 'manifests/k8s');
const COMPOSE = path.join(ROOT, 'manifests/docker/compose.yaml');
/** Read by Node or the CLI rather than the config schema. */
const RUNTIME_VARIABLES = ['NODE_OPTIONS', 'AGENT_OTP_DATA_DIR', 'AGENT_OTP_URL', 'AGENT_OTP_ADMIN_TOKEN'];
/** The name the Deployments give the image, the tag manifests/docker builds, and the compose image. */
const IMAGE = 'agent-otp';

interface Container {
  image?: string;
  args?: string[];
  env?: { name: string }[];
  readinessProbe?: { httpGet: { path: string } };
  livenessProbe?: { httpGet: { path: string } };
}

interface Manifest {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: {
    replicas?: number;
    template?: { spec: { containers: Container[] } };
  };
}

interface Kustomization {
  resources: string[];
  images: { name: string; newName?: string; newTag?: string }[];
}

/**
 * What `kubectl apply -k manifests/k8s` applies. kubectl is required: without it the test fails
 * saying so, rather than passing on manifests nobody rendered.
 */
function rendered(): Manifest[] {
  const result = spawnSync('kubectl', ['kustomize', K8S], { encoding: 'utf8' });
  if (result.error) {
    throw new Error(`cannot run \`kubectl kustomize ${K8S}\` (${result.error.message}): install kubectl`);
  }
  expect(result.status, result.stderr).toBe(0);
  return parseAllDocuments(result.stdout).map((d) => {
    expect(d.errors).toEqual([]);
    return d.toJS() as Manifest;
  });
}

const kustomization = () =>
  parse(readFileSync(path.join(K8S, 'kustomization.yaml'), 'utf8')) as Kustomization;

describe('deployment manifests', () => {
  const all = rendered();
  const known = new Set([...KNOWN_VARIABLES, ...RUNTIME_VARIABLES]);

  it('name only variables the config schema knows, as rendered by kustomize', () => {
    const names: { object: string; name: string }[] = [];
    for (const doc of all) {
      const object = `${doc.kind}/${doc.metadata.name}`;
      for (const name of Object.keys(doc.data ?? {})) names.push({ object, name });
      for (const name of Object.keys(doc.stringData ?? {})) names.push({ object, name });
      for (const c of doc.spec?.template?.spec.containers ?? []) {
        for (const e of c.env ?? []) names.push({ object, name: e.name });
      }
    }
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !known.has(n.name))).toEqual([]);
    // Commented-out keys must be known too (they are meant to be uncommented).
    for (const file of readdirSync(K8S)) {
      for (const m of readFileSync(path.join(K8S, file), 'utf8').matchAll(/^\s*#\s*([A-Z][A-Z0-9_]+):/gm)) {
        expect(known.has(m[1] ?? ''), `${file}: ${m[1]}`).toBe(true);
      }
    }
  });

  it('apply every manifest in the directory, each Deployment on the one image set in kustomization.yaml', () => {
    const { resources, images } = kustomization();
    const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...resources].sort()).toEqual(files.sort());
    expect(images.map((i) => i.name)).toEqual([IMAGE]);
    const [image] = images;
    expect(image?.newName).toMatch(/\/agent-otp$/);
    const containers = all.flatMap((d) => d.spec?.template?.spec.containers ?? []);
    expect(containers).toHaveLength(3);
    for (const c of containers) expect(c.image).toBe(`${image?.newName}:${image?.newTag}`);
    // The source files name the image as the transformer matches it, so no other name slips in.
    for (const file of ['api.yaml', 'worker.yaml', 'bot.yaml']) {
      expect(readFileSync(path.join(K8S, file), 'utf8')).toContain(`image: ${IMAGE}\n`);
    }
  });

  it('run the api (3 replicas, probes), worker and bot, with the supporting objects', () => {
    const byKind = (kind: string) => all.filter((m) => m.kind === kind);
    const deployments = Object.fromEntries(byKind('Deployment').map((d) => [d.metadata.name, d]));
    const api = deployments['agent-otp-api'];
    expect(api?.spec?.replicas).toBe(3);
    const container = api?.spec?.template?.spec.containers[0];
    expect(container?.args).toEqual(['api']);
    expect(container?.readinessProbe?.httpGet.path).toBe('/readyz');
    expect(container?.livenessProbe?.httpGet.path).toBe('/healthz');
    expect(deployments['agent-otp-worker']?.spec?.replicas).toBe(1);
    expect(deployments['agent-otp-worker']?.spec?.template?.spec.containers[0]?.args).toEqual(['worker']);
    expect(deployments['agent-otp-bot']?.spec?.replicas).toBe(1);
    for (const kind of [
      'Service',
      'ConfigMap',
      'Secret',
      'PodDisruptionBudget',
      'NetworkPolicy',
      'HorizontalPodAutoscaler',
    ]) {
      expect(byKind(kind), kind).toHaveLength(1);
    }
  });

  it('ship a Grafana dashboard over the agent_otp_* metrics', () => {
    const dashboard = JSON.parse(
      readFileSync(path.join(ROOT, 'manifests/grafana-dashboard.json'), 'utf8'),
    ) as {
      panels: { targets: { expr: string }[] }[];
    };
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)).join('\n');
    for (const metric of [
      'permissions_total',
      'token_uses_total',
      'decisions_total',
      'approval_duration_seconds',
      'http_request_duration_seconds',
      'failed_auth_total',
      'queue_depth',
      'audit_write_failures_total',
    ]) {
      expect(exprs).toContain(`agent_otp_${metric}`);
    }
  });
});

interface ComposeService {
  image?: string;
  command?: string[];
  environment?: Record<string, string> | string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
}

describe('compose file', () => {
  const text = readFileSync(COMPOSE, 'utf8');
  // Merge keys (<<) are how the roles share their settings.
  const compose = parse(text, { merge: true }) as { services: Record<string, ComposeService> };
  const services = compose.services;
  const ours = Object.entries(services).filter(([name, s]) => s.image === IMAGE && name !== 'secrets-init');
  const envNames = (s: ComposeService) =>
    Array.isArray(s.environment)
      ? s.environment.map((e) => e.split('=')[0] ?? '')
      : Object.keys(s.environment ?? {});
  /** Set in a service, or commented out to be uncommented (`# NAME: value`). */
  const named = [
    ...new Set([
      ...ours.flatMap(([, s]) => envNames(s)),
      ...[...text.matchAll(/^\s*#\s*([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1] ?? ''),
    ]),
  ];
  const envExample = readFileSync(path.join(ROOT, '.env.example'), 'utf8');
  const inEnvExample = new Set([...envExample.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]));

  it('runs the api, worker and bot roles of the image the Dockerfile builds', () => {
    expect(Object.fromEntries(ours.map(([name, s]) => [name, s.command]))).toEqual({
      api: ['api'],
      worker: ['worker'],
      bot: ['bot'],
    });
  });

  it('names only variables of the config schema, each one .env.example documents', () => {
    expect(named.length).toBeGreaterThan(5);
    const unknown = named.filter((name) => !KNOWN_VARIABLES.includes(name));
    expect(unknown, 'not in the config schema').toEqual([]);
    // NAME_FILE is documented by NAME (.env.example explains the _FILE form once).
    const undocumented = named.filter((name) => !inEnvExample.has(name.replace(/_FILE$/, '')));
    expect(undocumented, 'not in .env.example').toEqual([]);
  });

  it('gives every secret as a file, never as a value', () => {
    // A Redis URL without a password holds no secret; anything else that can is a file.
    const byValue = named.filter((name) => (SECRET_VARIABLES as readonly string[]).includes(name));
    expect(byValue).toEqual(['REDIS_URL']);
    for (const [name, s] of ours) {
      const redisUrl = (s.environment as Record<string, string>).REDIS_URL ?? '';
      expect(new URL(redisUrl).password, name).toBe('');
    }
    for (const name of ['DATABASE_URL_FILE', 'ADMIN_TOKEN_FILE', 'SECRETS_ENCRYPTION_KEY_FILE']) {
      expect(named).toContain(name);
    }
  });

  it('starts Postgres and Redis (noeviction, append-only) first, healthy, then the API, then the rest', () => {
    const redis = (services.redis as ComposeService & { command: string[] }).command.join(' ');
    expect(redis).toContain('--maxmemory-policy noeviction');
    expect(redis).toContain('--appendonly yes');
    expect(services.postgres?.healthcheck?.test).toBeDefined();
    expect(services.redis?.healthcheck?.test).toBeDefined();
    expect(services.api?.depends_on).toEqual({
      postgres: { condition: 'service_healthy' },
      redis: { condition: 'service_healthy' },
    });
    for (const role of ['worker', 'bot']) {
      expect(services[role]?.depends_on, role).toEqual({ api: { condition: 'service_healthy' } });
    }
  });
});
