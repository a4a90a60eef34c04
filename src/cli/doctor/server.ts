import { resolveTarget, type TargetFlags } from '../target.js';
import { type CheckResult, reason, TIMEOUT_MS } from './result.js';

export const NO_OPERATOR_KEY = "no operator key: set AGENT_OTP_ADMIN_TOKEN or run in the server's directory";

export interface ServerProbe {
  rows: CheckResult[];
  /** The server answered /readyz (whatever it said). */
  reachable: boolean;
  /** What /readyz said of each dependency (`ok` / `unavailable`), when it answered. */
  readiness: Record<string, string> | null;
  /** The stored policies, read with the operator key; null when they could not be read. */
  policies: Record<string, unknown>[] | null;
  url: string;
}

/** The server the CLI talks to, and its operator key when one can be found (as every command finds them). */
function target(env: NodeJS.ProcessEnv, flags: TargetFlags): { url: string; token: string | null } {
  const { url, token } = resolveTarget(flags, env);
  return { url, token: token ?? null };
}

async function getJson(url: string, token: string | null): Promise<{ status: number; body: unknown }> {
  const response = await fetch(url, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: null };
  }
}

/**
 * The running server: is it there, are its dependencies ready (/readyz), and does it accept the
 * operator key the CLI would use (GET /api/v1/policies, which the deny-policy checks then read).
 */
export async function probeServer(env: NodeJS.ProcessEnv, flags: TargetFlags = {}): Promise<ServerProbe> {
  const { url, token } = target(env, flags);
  const probe: ServerProbe = { rows: [], reachable: false, readiness: null, policies: null, url };
  try {
    const ready = await getJson(`${url}/readyz`, null);
    probe.reachable = true;
    const body = ready.body as {
      checks?: Record<string, string>;
      error?: { details?: { checks?: Record<string, string> } };
    };
    probe.readiness = body?.checks ?? body?.error?.details?.checks ?? null;
    const summary = Object.entries(probe.readiness ?? {})
      .map(([name, state]) => `${name} ${state}`)
      .join(', ');
    probe.rows.push(
      ready.status === 200
        ? { check: 'server', status: 'pass', detail: `ready at ${url} (${summary})` }
        : {
            check: 'server',
            status: 'fail',
            detail: `not ready at ${url} (HTTP ${ready.status}: ${summary || 'no details'})`,
          },
    );
  } catch (err) {
    probe.rows.push({
      check: 'server',
      status: 'fail',
      detail: `server not reachable at ${url}: ${reason(err)}`,
    });
  }

  if (!token) {
    probe.rows.push({ check: 'operator key', status: 'warn', detail: NO_OPERATOR_KEY });
    return probe;
  }
  if (!probe.reachable) {
    probe.rows.push({
      check: 'operator key',
      status: 'skip',
      detail: `found, but no server at ${url} to try it on`,
    });
    return probe;
  }
  try {
    const answer = await getJson(`${url}/api/v1/policies`, token);
    const body = answer.body as {
      data?: { policies?: Record<string, unknown>[] };
      error?: { code?: string };
    };
    if (answer.status === 200 && body?.data?.policies) {
      probe.policies = body.data.policies;
      probe.rows.push({ check: 'operator key', status: 'pass', detail: `accepted by ${url}` });
      probe.rows.push(await agentNamesRow(url, token));
    } else {
      const code = body?.error?.code ?? `HTTP ${answer.status}`;
      probe.rows.push({
        check: 'operator key',
        status: 'fail',
        detail: `rejected by ${url} (${code}): check AGENT_OTP_ADMIN_TOKEN or the data dir's admin-token`,
      });
    }
  } catch (err) {
    probe.rows.push({
      check: 'operator key',
      status: 'fail',
      detail: `${url}/api/v1/policies: ${reason(err)}`,
    });
  }
  return probe;
}

/**
 * Agents created before names were unique may still share one: policies and `--agent` name
 * agents, so such a name is ambiguous until the newer agents are renamed.
 */
async function agentNamesRow(url: string, token: string): Promise<CheckResult> {
  try {
    const answer = await getJson(`${url}/api/v1/agents/name-duplicates`, token);
    const duplicates = (
      answer.body as { data?: { duplicates?: { id: string; name: string; sharesNameWith: string[] }[] } }
    )?.data?.duplicates;
    if (answer.status !== 200 || !duplicates) {
      return {
        check: 'agent names',
        status: 'skip',
        detail: `not answered by ${url} (HTTP ${answer.status})`,
      };
    }
    if (duplicates.length === 0) return { check: 'agent names', status: 'pass', detail: 'unique' };
    const listed = duplicates
      .slice(0, 10)
      .map((d) => `${d.name} (${d.id})`)
      .join(', ');
    return {
      check: 'agent names',
      status: 'warn',
      detail: `${duplicates.length} agent(s) share a name with an older agent: ${listed}; rename them with agent-otp agent:update <id> --name …`,
    };
  } catch (err) {
    return { check: 'agent names', status: 'skip', detail: `${url}: ${reason(err)}` };
  }
}
