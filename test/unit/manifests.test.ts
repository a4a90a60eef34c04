import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { KNOWN_VARIABLES } from '../../src/config.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const K8S = path.join(ROOT, 'manifests/k8s');
/** Read by Node or the CLI rather than the config schema. */
const RUNTIME_VARIABLES = ['NODE_OPTIONS', 'AGENT_OTP_DATA_DIR', 'AGENT_OTP_URL', 'AGENT_OTP_ADMIN_TOKEN'];

interface Manifest {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: {
    replicas?: number;
    template?: {
      spec: {
        containers: {
          args?: string[];
          env?: { name: string }[];
          readinessProbe?: { httpGet: { path: string } };
          livenessProbe?: { httpGet: { path: string } };
        }[];
      };
    };
  };
}

function manifests(): { file: string; doc: Manifest }[] {
  return readdirSync(K8S)
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((file) =>
      parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8')).map((d) => {
        expect(d.errors, file).toEqual([]);
        return { file, doc: d.toJS() as Manifest };
      }),
    )
    .filter((m) => m.doc !== null);
}

describe('deployment manifests', () => {
  const all = manifests();
  const known = new Set([...KNOWN_VARIABLES, ...RUNTIME_VARIABLES]);

  it('name only variables the config schema knows', () => {
    const names: { file: string; name: string }[] = [];
    for (const { file, doc } of all) {
      for (const name of Object.keys(doc.data ?? {})) names.push({ file, name });
      for (const name of Object.keys(doc.stringData ?? {})) names.push({ file, name });
      for (const c of doc.spec?.template?.spec.containers ?? []) {
        for (const e of c.env ?? []) names.push({ file, name: e.name });
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

  it('run the api (3 replicas, probes), worker and bot, with the supporting objects', () => {
    const byKind = (kind: string) => all.filter((m) => m.doc.kind === kind).map((m) => m.doc);
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
