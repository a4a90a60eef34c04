import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { CLI, hermeticCwd, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const ADMIN = `uk_${randomBytes(24).toString('hex')}`;
const DATABASE = process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite';

const POLICIES = {
  policies: [
    {
      name: 'payments-auto',
      priority: 10,
      conditions: { action: { equals: 'payment.*' } },
      action: 'auto_approve',
    },
    { name: 'email-needs-human', priority: 5, conditions: { action: 'email.*' }, action: 'require_approval' },
  ],
};

interface PendingList {
  permissions: { id: string; action: string; status: string }[];
}

function text(result: CallToolResult): string {
  return result.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

/**
 * `agent-otp mcp` as an MCP client sees it: the built CLI spawned over stdio by the MCP SDK's
 * client transport, talking to the built server through the agent SDK.
 */
describe(`agent-otp mcp against the built server (${DATABASE})`, () => {
  let server: ServerProcess;
  let operator: Api;
  let agentKey: string;
  let client: Client;
  let transport: StdioClientTransport;
  let stderr = '';
  const protocolErrors: Error[] = [];
  const tokensSeen: string[] = [];

  const call = (name: string, args: Record<string, unknown>) =>
    client.callTool({ name, arguments: args }) as Promise<CallToolResult>;

  /** The one pending request for this agent, as an operator sees it. */
  async function pendingId(action: string): Promise<string> {
    return vi.waitFor(
      async () => {
        const res = await operator<PendingList>('GET', `/api/v1/permissions?status=pending&action=${action}`);
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        const found = res.body.data.permissions[0];
        if (!found) throw new Error('no pending request yet');
        return found.id;
      },
      { timeout: 15_000, interval: 100 },
    );
  }

  async function decide(id: string, body: Record<string, unknown>): Promise<void> {
    const res = await operator('POST', `/api/v1/permissions/${id}/decide`, body);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }

  beforeAll(async () => {
    server = await startServer({
      database: DATABASE,
      env: {
        ADMIN_TOKEN: ADMIN,
        RATE_LIMIT_PER_MIN: '100000',
        RATE_LIMIT_PER_HOUR: '1000000',
        TOKEN_RATE_LIMIT_PER_MIN: '100000',
        TOKEN_RATE_LIMIT_PER_HOUR: '1000000',
      },
    });
    operator = apiClient(server.url, ADMIN);
    const put = await operator('PUT', '/api/v1/policies', POLICIES);
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'mcp-agent' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    agentKey = created.body.data.apiKey;

    transport = new StdioClientTransport({
      command: process.execPath,
      args: [CLI, 'mcp'],
      env: { AGENT_OTP_URL: server.url, AGENT_OTP_API_KEY: agentKey },
      cwd: hermeticCwd(),
      stderr: 'pipe',
    });
    transport.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    client = new Client({ name: 'agent-otp-e2e', version: '1.0.0' });
    client.onerror = (err) => protocolErrors.push(err);
    await client.connect(transport);
  });

  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  it('lists the three tools with input schemas and descriptions', async () => {
    const { tools } = await client.listTools();
    const byName = new Map(tools.map((t) => [t.name, t]));
    expect([...byName.keys()].sort()).toEqual(['get_permission', 'request_permission', 'use_token']);

    const request = byName.get('request_permission');
    expect(request?.inputSchema.properties).toHaveProperty('action');
    expect(request?.inputSchema.properties).toHaveProperty('scope');
    expect(request?.inputSchema.properties).toHaveProperty('timeout_seconds');
    expect(request?.inputSchema.required).toEqual(['action']);
    expect(request?.inputSchema.properties?.timeout_seconds).toMatchObject({ default: 300, maximum: 3600 });
    expect(request?.description).toMatch(/never log/i);
    expect(request?.description).toMatch(/max_<field>/);
    expect(request?.outputSchema?.properties).toHaveProperty('status');

    expect(byName.get('get_permission')?.inputSchema.required).toEqual(['id']);
    expect(byName.get('use_token')?.inputSchema.required).toEqual(['id', 'token']);
    expect(byName.get('use_token')?.inputSchema.properties).toHaveProperty('action_details');
  });

  it('auto-approved payment.refund → use_token succeeds; a scope violation names the key; a second use is TOKEN_USED', async () => {
    const requested = await call('request_permission', {
      action: 'payment.refund',
      resource: 'order:1042',
      scope: { max_amount: 50, max_uses: 1 },
      context: { reason: 'Duplicate charge on order 1042', user_id: 'u_42' },
      ttl: 120,
    });
    expect(requested.isError).toBeFalsy();
    const approved = requested.structuredContent as {
      status: string;
      id: string;
      token: string;
      scope: Record<string, unknown>;
      expiresAt: string;
    };
    expect(approved).toMatchObject({ status: 'approved', scope: { max_amount: 50 } });
    expect(approved.id).toMatch(/^perm_/);
    expect(approved.token).toMatch(/^otp_v1_[A-Za-z0-9_-]{43}$/);
    expect(Number.isNaN(Date.parse(approved.expiresAt))).toBe(false);
    expect(text(requested)).toContain(approved.token); // models that only read text can still act
    tokensSeen.push(approved.token);

    const state = await call('get_permission', { id: approved.id });
    expect(state.isError).toBeFalsy();
    expect(state.structuredContent).toMatchObject({
      id: approved.id,
      status: 'approved',
      action: 'payment.refund',
      usesRemaining: 1,
    });

    const violation = await call('use_token', {
      id: approved.id,
      token: approved.token,
      action_details: { amount: 80 },
    });
    expect(violation.isError).toBe(true);
    expect(text(violation)).toMatch(/^SCOPE_VIOLATION/);
    expect(text(violation)).toContain('max_amount');

    const used = await call('use_token', {
      id: approved.id,
      token: approved.token,
      action_details: { amount: 20 },
    });
    expect(used.isError).toBeFalsy();
    expect(used.structuredContent).toMatchObject({ success: true, usesRemaining: 0 });

    const again = await call('use_token', { id: approved.id, token: approved.token });
    expect(again.isError).toBe(true);
    expect(text(again)).toMatch(/^TOKEN_USED/);
    expect(again.structuredContent).toBeUndefined();
  });

  it('email.send waits for a human: approved through the operator API during the call', async () => {
    const progress: { message?: string }[] = [];
    const pending = client.callTool(
      {
        name: 'request_permission',
        arguments: {
          action: 'email.send',
          scope: { max_emails: 1, allowed_recipients: ['client@acme.com'] },
          context: { reason: 'Monthly invoice' },
          timeout_seconds: 30,
        },
      },
      undefined,
      { onprogress: (p) => progress.push(p), resetTimeoutOnProgress: true },
    ) as Promise<CallToolResult>;
    const id = await pendingId('email.send');
    await vi.waitFor(() => expect(progress[0]?.message).toContain(id));
    await decide(id, { approved: true, reason: 'looks right' });

    const result = await pending;
    expect(result.isError).toBeFalsy();
    const approved = result.structuredContent as { status: string; id: string; token: string };
    expect(approved).toMatchObject({ status: 'approved', id, scope: { max_emails: 1 } });
    expect(approved.token).toMatch(/^otp_v1_/);
    tokensSeen.push(approved.token);

    const used = await call('use_token', {
      id,
      token: approved.token,
      action_details: { recipient: 'client@acme.com' },
    });
    expect(used.structuredContent).toMatchObject({ success: true, usesRemaining: 0 });
  });

  it('a human denial is a normal result with the reason, not an error', async () => {
    const pending = call('request_permission', { action: 'email.send', context: { reason: 'Newsletter' } });
    const id = await pendingId('email.send');
    await decide(id, { approved: false, reason: 'not to customers today' });
    const result = await pending;
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ status: 'denied', reason: 'not to customers today' });
  });

  it('no decision within timeout_seconds → {status: "timeout", id}, still pending', async () => {
    const result = await call('request_permission', { action: 'email.send', timeout_seconds: 1 });
    expect(result.isError).toBeFalsy();
    const timeout = result.structuredContent as { status: string; id: string };
    expect(timeout.status).toBe('timeout');
    expect(timeout.id).toMatch(/^perm_/);
    const state = await call('get_permission', { id: timeout.id });
    expect(state.structuredContent).toMatchObject({ id: timeout.id, status: 'pending' });
    await decide(timeout.id, { approved: false, reason: 'cleanup' });
  });

  it('a client that cancels the call withdraws the pending request', async () => {
    const abort = new AbortController();
    const pending = client.callTool(
      { name: 'request_permission', arguments: { action: 'email.send' } },
      undefined,
      {
        signal: abort.signal,
      },
    );
    const id = await pendingId('email.send');
    abort.abort(new Error('user gave up'));
    await expect(pending).rejects.toThrow('user gave up');
    await vi.waitFor(
      async () => {
        const res = await operator<{ status: string }>('GET', `/api/v1/permissions/${id}`);
        expect(res.body.data.status).toBe('cancelled');
      },
      { timeout: 10_000, interval: 100 },
    );
  });

  it('wrote nothing but protocol messages to stdout, and no token or key to stderr', () => {
    expect(protocolErrors).toEqual([]);
    expect(stderr).toContain('MCP server ready');
    expect(stderr).not.toContain(agentKey);
    for (const token of tokensSeen) expect(stderr).not.toContain(token);
    expect(stderr).not.toMatch(/otp_v1_[A-Za-z0-9_-]{20,}/);
  });

  it('exits non-zero with a clear message when AGENT_OTP_API_KEY is missing', async () => {
    const child = spawn(process.execPath, [CLI, 'mcp'], {
      env: { PATH: process.env.PATH, AGENT_OTP_URL: server.url },
      cwd: hermeticCwd(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(err).toContain('AGENT_OTP_API_KEY');
    expect(out).toBe('');
  });
});
