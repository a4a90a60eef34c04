import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from '../helpers/api.js';
import { type ServerProcess, startServer } from '../helpers/serverProcess.js';

describe('audit forwarding from the built server (worker role)', () => {
  let server: ServerProcess;
  let receiver: Server;
  const requests: { status: number; body: string }[] = [];

  beforeAll(async () => {
    // A SIEM stand-in that refuses the first two deliveries.
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const status = requests.length < 2 ? 500 : 204;
        requests.push({ status, body: Buffer.concat(chunks).toString('utf8') });
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const port = (receiver.address() as AddressInfo).port;
    server = await startServer({
      env: { AUDIT_FORWARD_URL: `http://127.0.0.1:${port}/siem`, AUDIT_FORWARD_INTERVAL_MS: '200' },
    });
  });
  afterAll(async () => {
    await server?.stop();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  });

  it('delivers sealed events as JSON lines after retrying refused attempts', async () => {
    const operator = apiClient(
      server.url,
      readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim(),
    );
    await operator('POST', '/api/v1/agents', { name: 'forwarded-agent' });
    const deadline = Date.now() + 20_000;
    const delivered = () =>
      requests
        .filter((r) => r.status === 204)
        .flatMap((r) => r.body.trimEnd().split('\n'))
        .map((l) => JSON.parse(l) as { type: string; chainIndex: number });
    while (!delivered().some((e) => e.type === 'agent.created') && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(requests.filter((r) => r.status === 500).length).toBe(2);
    const events = delivered();
    expect(events.map((e) => e.type)).toContain('agent.created');
    const indexes = events.map((e) => e.chainIndex);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(indexes[0]).toBe(1);
  }, 40_000);
});
