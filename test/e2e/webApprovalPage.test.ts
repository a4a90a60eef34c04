import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTENT_SECURITY_POLICY } from '../../src/chat/web/page.js';
import { type Api, apiClient } from '../helpers/api.js';
import { type ServerProcess, startServer } from '../helpers/serverProcess.js';

/**
 * The web channel as the built server runs it (before passkey sign-in is wired in, everyone is
 * signed out): a pending request's approvalUrl is the approval page, which shows its status and
 * the sign-in link under the strict CSP, serves its scripts, and refuses (and audits) a decision
 * POSTed without a session. Signed-in flows are covered by test/integration/webPages.test.ts.
 */
describe('web approval page on the built server', () => {
  let server: ServerProcess;
  let operator: Api;

  beforeAll(async () => {
    server = await startServer({ env: { DEFAULT_POLICY_ACTION: 'require_approval' } });
    operator = apiClient(server.url, readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim());
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('serves the page at approvalUrl, its scripts, and refuses a decision without a session', async () => {
    expect(server.output()).toMatch(/"web":"http"/);
    const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'web-e2e' });
    const agent = apiClient(server.url, created.body.data.apiKey);
    const requested = await agent<{ id: string; approvalUrl: string }>(
      'POST',
      '/api/v1/permissions/request',
      {
        action: 'deploy.production',
      },
    );
    expect(requested.status).toBe(202);
    const { id, approvalUrl } = requested.body.data;
    expect(approvalUrl).toBe(`${server.url}/approve/${id}`);

    const page = await fetch(approvalUrl);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    const html = await page.text();
    expect(html).toContain('data-status="pending"');
    expect(html).toContain(`/login?next=${encodeURIComponent(`/approve/${id}`)}`);
    expect(html).not.toContain('deploy.production');
    for (const asset of ['approve.js', 'inbox.js', 'web.js', 'web.css']) {
      expect((await fetch(`${server.url}/assets/${asset}`)).status).toBe(200);
    }

    const post = await fetch(`${server.url}/approve/${id}/decision`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ decision: 'approve' }),
    });
    expect(post.status).toBe(403);
    const read = await operator<{ status: string }>('GET', `/api/v1/permissions/${id}`);
    expect(read.body.data.status).toBe('pending');
    const audit = await operator<{ events: { type: string; actor: { platform?: string } }[] }>(
      'GET',
      `/api/v1/audit?permission_id=${id}&event_type=unauthorized_approver`,
    );
    expect(audit.body.data.events.map((e) => [e.type, e.actor.platform])).toEqual([
      ['unauthorized_approver', 'web'],
    ]);
  });
});
