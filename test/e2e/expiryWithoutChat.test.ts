import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { type ServerProcess, startServer } from '../helpers/serverProcess.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhookReceiver.js';

/**
 * A request nobody decides expires at its deadline, and its agent hears so, on a server with no
 * approval channel at all (issue 14): scheduling the expiry used to depend on Slack or Discord
 * being configured, leaving it to the reconciler's next sweep (here an hour away).
 */

const APPROVAL_TIMEOUT_SECONDS = 30;

describe('expiry with no chat channel configured', () => {
  let server: ServerProcess;
  let receiver: WebhookReceiver;
  let operator: Api;

  beforeAll(async () => {
    receiver = await startWebhookReceiver('/hooks/expiry');
    server = await startServer({
      env: {
        WEBHOOK_ALLOW_PRIVATE: 'true',
        DEFAULT_POLICY_ACTION: 'require_approval',
        APPROVAL_TIMEOUT_SECONDS: String(APPROVAL_TIMEOUT_SECONDS),
        // Only the expire job can expire the request in time: the sweep runs at start, then hourly.
        RECONCILE_INTERVAL_MS: '3600000',
      },
    });
    operator = apiClient(server.url, readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim());
  });

  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  it('expires a pending request at its deadline and tells the agent by webhook', async () => {
    expect(server.output()).toMatch(/"slack":"off".*"discord":"off"/s);
    const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'expiry-e2e' });
    expect(created.status).toBe(201);
    const agent = apiClient(server.url, created.body.data.apiKey);
    const requested = await agent<{ id: string; status: string; expiresAt: string }>(
      'POST',
      '/api/v1/permissions/request',
      { action: 'deploy.production', webhookUrl: receiver.url },
    );
    expect(requested.status).toBe(202);
    expect(requested.body.data.status).toBe('pending');
    const { id, expiresAt } = requested.body.data;

    const deadline = new Date(expiresAt).getTime();
    const expired = await waitFor(
      () => receiver.received.find((r) => r.body.includes('"permission.expired"')),
      {
        until: deadline + 8000,
      },
    );
    // Delivered after the deadline, and within seconds of it.
    expect(Date.now()).toBeGreaterThanOrEqual(deadline);
    expect(JSON.parse(expired.body)).toMatchObject({
      type: 'permission.expired',
      data: { id, status: 'expired' },
    });

    // Recorded, not only seen as expired on read: the audit trail has the system's expire event.
    const events = await operator<{ events: { type: string; actor: { type: string } }[] }>(
      'GET',
      `/api/v1/audit?permission_id=${id}`,
    );
    expect(events.body.data.events.map((e) => `${e.type}:${e.actor.type}`)).toContain('expire:system');
  }, 60_000);
});

async function waitFor<T>(probe: () => T | undefined, { until }: { until: number }): Promise<T> {
  for (;;) {
    const found = probe();
    if (found !== undefined) return found;
    if (Date.now() > until) throw new Error('not seen in time');
    await new Promise((r) => setTimeout(r, 200));
  }
}
