import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyWebhook, WebhookVerificationError } from '../../src/sdk/index.js';
import { type Api, apiClient } from '../helpers/api.js';
import { type ServerProcess, startServer } from '../helpers/serverProcess.js';

const databases = process.env.TEST_DATABASE_URL ? (['pglite', 'postgres'] as const) : (['pglite'] as const);

interface Arrival {
  at: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A receiver on 127.0.0.1 that answers 503 to the first `failures` requests, then 200. */
async function startReceiver(failures: number) {
  const arrivals: Arrival[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      arrivals.push({ at: Date.now(), headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = arrivals.length <= failures ? 503 : 200;
      res.end();
      for (const w of waiters.filter((w) => arrivals.length >= w.count)) w.resolve();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hooks/agent-otp`,
    arrivals,
    /** Resolves once `count` requests have arrived (or rejects after timeoutMs). */
    until(count: number, timeoutMs = 20_000): Promise<void> {
      if (arrivals.length >= count) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the receiver got ${arrivals.length} of ${count} requests`)),
          timeoutMs,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each(databases)('signed webhooks from the built server on %s', (database) => {
  let server: ServerProcess;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let operator: Api;

  beforeAll(async () => {
    receiver = await startReceiver(3);
    server = await startServer({
      database,
      env: {
        WEBHOOK_ALLOW_PRIVATE: 'true',
        DEFAULT_POLICY_ACTION: 'auto_approve',
        RECONCILE_INTERVAL_MS: '60000',
      },
    });
    operator = apiClient(server.url, readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim());
  });

  afterAll(async () => {
    await server?.stop();
    await receiver?.close();
  });

  it('retries a failing receiver after about 1 s, 2 s and 4 s, then delivers a payload the SDK verifies', async () => {
    const created = await operator<{ id: string; apiKey: string; webhookSecret: string }>(
      'POST',
      '/api/v1/agents',
      {
        name: 'webhook-e2e',
      },
    );
    expect(created.status).toBe(201);
    const { id: agentId, apiKey, webhookSecret } = created.body.data;
    expect(webhookSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    // The secret is shown once: reading the agent does not return it.
    const read = await operator('GET', `/api/v1/agents/${agentId}`);
    expect(JSON.stringify(read.body)).not.toContain(webhookSecret.slice(6));

    const agent = apiClient(server.url, apiKey);
    const requested = await agent<{ id: string; token: string; status: string }>(
      'POST',
      '/api/v1/permissions/request',
      {
        action: 'email.send',
        resource: 'mailbox:ops',
        scope: { max_recipients: 3 },
        webhookUrl: receiver.url,
      },
    );
    expect(requested.status).toBe(201);
    const { id: permissionId, token } = requested.body.data;

    await receiver.until(4);
    const [a1, a2, a3, a4] = receiver.arrivals as [Arrival, Arrival, Arrival, Arrival];
    const gaps = [a2.at - a1.at, a3.at - a2.at, a4.at - a3.at];
    // About 1 s, 2 s, 4 s: the exponential backoff of the webhook queue.
    expect(gaps[0]).toBeGreaterThanOrEqual(900);
    expect(gaps[0]).toBeLessThan(1900);
    expect(gaps[1]).toBeGreaterThanOrEqual(1800);
    expect(gaps[1]).toBeLessThan(2900);
    expect(gaps[2]).toBeGreaterThanOrEqual(3600);
    expect(gaps[2]).toBeLessThan(4900);

    // One delivery: the same id and bytes on every attempt, signed afresh each time.
    const deliveryId = a1.headers['webhook-id'] as string;
    expect(deliveryId).toMatch(/^msg_[A-Za-z0-9]{22}$/);
    for (const attempt of [a2, a3, a4]) {
      expect(attempt.headers['webhook-id']).toBe(deliveryId);
      expect(attempt.body).toBe(a1.body);
    }
    expect(a4.headers['content-type']).toBe('application/json');

    const event = await verifyWebhook<{ type: string; data: Record<string, unknown> }>(
      a4.body,
      a4.headers,
      webhookSecret,
    );
    expect(event).toMatchObject({
      type: 'permission.approved',
      data: {
        id: permissionId,
        agentId,
        status: 'approved',
        action: 'email.send',
        resource: 'mailbox:ops',
        scope: { max_recipients: 3 },
        usesRemaining: 1,
      },
    });
    expect(a4.body).not.toContain(token);
    expect(a4.body).not.toMatch(/token/i);

    // A tampered body, a tampered id, or another secret: refused.
    await expect(
      verifyWebhook(a4.body.replace('approved', 'denied'), a4.headers, webhookSecret),
    ).rejects.toBeInstanceOf(WebhookVerificationError);
    await expect(
      verifyWebhook(a4.body, { ...a4.headers, 'webhook-id': 'msg_forged' }, webhookSecret),
    ).rejects.toBeInstanceOf(WebhookVerificationError);

    // The operator's view: delivered after 4 attempts.
    const listed = await operator<{ deliveries: Record<string, unknown>[] }>(
      'GET',
      `/api/v1/webhooks/deliveries?agent_id=${agentId}&status=delivered`,
    );
    expect(listed.status).toBe(200);
    expect(listed.body.data.deliveries).toEqual([
      expect.objectContaining({
        id: deliveryId,
        permissionId,
        status: 'delivered',
        attempts: 4,
        lastStatus: 200,
        eventType: 'permission.approved',
      }),
    ]);

    // Replay: the same delivery again, under the same webhook-id.
    const replayed = await operator<{ status: string; attempts: number }>(
      'POST',
      `/api/v1/webhooks/deliveries/${deliveryId}/replay`,
    );
    expect(replayed.status).toBe(200);
    expect(replayed.body.data).toMatchObject({ status: 'pending', attempts: 0 });
    await receiver.until(5);
    expect(receiver.arrivals[4]?.headers['webhook-id']).toBe(deliveryId);
    await expect(
      verifyWebhook(receiver.arrivals[4]?.body as string, receiver.arrivals[4]?.headers ?? {}, webhookSecret),
    ).resolves.toBeTruthy();

    // Using the token sends permission.used.
    const used = await agent('POST', `/api/v1/permissions/${permissionId}/use`, { token });
    expect(used.status).toBe(200);
    await receiver.until(6);
    const usedEvent = await verifyWebhook<{ type: string; data: { status: string } }>(
      receiver.arrivals[5]?.body as string,
      receiver.arrivals[5]?.headers ?? {},
      webhookSecret,
    );
    expect(usedEvent).toMatchObject({ type: 'permission.used', data: { status: 'used' } });

    // Neither the webhook secret nor the token ever reached the logs.
    const log = await server.logsSoFar();
    expect(log).not.toContain(webhookSecret.slice(6));
    expect(log).not.toContain(token);
  });

  it('issues a new webhook secret with a key rotation and signs with both during the grace period', async () => {
    const created = await operator<{ id: string; apiKey: string; webhookSecret: string }>(
      'POST',
      '/api/v1/agents',
      {
        name: 'webhook-rotation',
      },
    );
    const { id, webhookSecret: oldSecret } = created.body.data;
    const rotated = await operator<{ apiKey: string; webhookSecret: string }>(
      'POST',
      `/api/v1/agents/${id}/rotate-key`,
      { gracePeriod: 600 },
    );
    expect(rotated.status).toBe(200);
    const newSecret = rotated.body.data.webhookSecret;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(oldSecret);

    const patched = await operator('PATCH', `/api/v1/agents/${id}`, { webhookUrl: receiver.url });
    expect(patched.status).toBe(200);
    const before = receiver.arrivals.length;
    const agent = apiClient(server.url, rotated.body.data.apiKey);
    const requested = await agent('POST', '/api/v1/permissions/request', { action: 'file.read' });
    expect(requested.status).toBe(201);
    await receiver.until(before + 1);
    const got = receiver.arrivals[before] as Arrival;
    expect((got.headers['webhook-signature'] as string).split(' ')).toHaveLength(2);
    await expect(verifyWebhook(got.body, got.headers, newSecret)).resolves.toMatchObject({
      type: 'permission.approved',
    });
    await expect(verifyWebhook(got.body, got.headers, oldSecret)).resolves.toMatchObject({
      type: 'permission.approved',
    });
    expect(await server.logsSoFar()).not.toContain(newSecret.slice(6));
  });
});

describe('webhook targets without WEBHOOK_ALLOW_PRIVATE', () => {
  let server: ServerProcess;
  let operator: Api;

  beforeAll(async () => {
    server = await startServer({ env: { DEFAULT_POLICY_ACTION: 'auto_approve' } });
    operator = apiClient(server.url, readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim());
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('refuses a request or an agent whose webhookUrl is a private or loopback address (400)', async () => {
    const created = await operator<{ id: string; apiKey: string }>('POST', '/api/v1/agents', {
      name: 'private',
    });
    const agent = apiClient(server.url, created.body.data.apiKey);
    for (const webhookUrl of [
      'http://127.0.0.1:8080/hook',
      'http://localhost:8080/hook',
      'http://[::1]/hook',
    ]) {
      const res = await agent('POST', '/api/v1/permissions/request', { action: 'file.read', webhookUrl });
      expect(res.status, webhookUrl).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_ERROR');
      expect(res.body.error.message).toContain('webhookUrl');
    }
    const patched = await operator('PATCH', `/api/v1/agents/${created.body.data.id}`, {
      webhookUrl: 'http://10.1.2.3/hook',
    });
    expect(patched.status).toBe(400);
    expect(patched.body.error.code).toBe('VALIDATION_ERROR');

    // Nothing was stored for them.
    const listed = await operator<{ deliveries: unknown[] }>('GET', '/api/v1/webhooks/deliveries');
    expect(listed.body.data.deliveries).toEqual([]);
    const bad = await operator('GET', '/api/v1/webhooks/deliveries?status=lost');
    expect(bad.status).toBe(400);
    const unknown = await operator('POST', '/api/v1/webhooks/deliveries/msg_0000000000000000000000/replay');
    expect(unknown.status).toBe(404);
  });
});
