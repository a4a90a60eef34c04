import { randomBytes } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { addVirtualAuthenticator, launchBrowser, newPage, settleAll } from '../helpers/browser.js';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';
import { freePort } from '../setup/redis.js';

const ADMIN = `uk_${randomBytes(24).toString('hex')}`;

interface Wire {
  id: string;
  status: string;
  approvalUrl?: string;
  scope: Record<string, unknown>;
  reason?: string | null;
}

/**
 * Issue 15's acceptance for deciding on the web, in Chromium with a virtual authenticator,
 * against the built server: alice enrols a passkey and, signed in, approves, denies with a
 * reason and approves with a narrowed cap on the approval page (a widening refused with the chat
 * modal's message); the agent's long-poll ends promptly after the click; the inbox lists what
 * waits. Screenshots of the page and the inbox at phone and desktop width go to test-results/.
 */
describe('deciding on the approval page, in Chromium', () => {
  let server: ServerProcess;
  let publicUrl: string;
  let browser: Browser;
  let page: Page;
  let operator: Api;
  let agent: Api;

  beforeAll(async () => {
    const port = await freePort();
    publicUrl = `http://localhost:${port}`;
    await settleAll([
      startServer({ env: { ADMIN_TOKEN: ADMIN, PORT: String(port), PUBLIC_URL: publicUrl } }).then((s) => {
        server = s;
      }),
      launchBrowser().then((b) => {
        browser = b;
      }),
    ]);
    operator = apiClient(server.url, ADMIN);
    const put = await operator('PUT', '/api/v1/policies', {
      policies: [
        {
          name: 'payments need alice',
          conditions: { action: 'payment.send' },
          action: 'require_approval',
          approval: { approvers: ['web:alice'] },
        },
      ],
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'billing-bot' });
    agent = apiClient(server.url, created.body.data.apiKey);

    const invited = await runCli(['approver:invite', '--name', 'alice'], {
      AGENT_OTP_URL: server.url,
      AGENT_OTP_ADMIN_TOKEN: ADMIN,
    });
    expect(invited.code, invited.stderr).toBe(0);
    const link = /(http:\/\/\S+\/enrol\/[A-Za-z0-9_-]{43})$/m.exec(invited.stdout)?.[1] as string;
    ({ page } = await newPage(browser, { width: 390, height: 844 }));
    await addVirtualAuthenticator(page);
    await page.goto(link);
    await page.click('#create-passkey');
    await page.waitForURL(`${publicUrl}/account`);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function request(): Promise<Wire> {
    const res = await agent<Wire>('POST', '/api/v1/permissions/request', {
      action: 'payment.send',
      resource: 'acct:ops',
      scope: { max_amount: 100, allowed_recipients: ['acme', 'globex'] },
      context: { reason: 'Invoice INV-7 for ACME' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.data.approvalUrl).toBe(`${publicUrl}/approve/${res.body.data.id}`);
    return res.body.data;
  }

  it('approve: the agent’s long-poll ends promptly after the click', async () => {
    const p = await request();
    await page.goto(p.approvalUrl as string);
    expect(await page.textContent('h1')).toContain('payment.send');
    expect(await page.textContent('main')).toContain('Invoice INV-7 for ACME');
    await page.screenshot({ path: 'test-results/web-approve-phone.png', fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.screenshot({ path: 'test-results/web-approve-desktop.png', fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });

    const waiting = agent<Wire>('GET', `/api/v1/permissions/${p.id}?wait=30`).then((res) => ({
      res,
      at: performance.now(),
    }));
    await new Promise((r) => setTimeout(r, 300));
    const clickedAt = performance.now();
    await page.click('button[data-decision="approve"]');
    const { res, at } = await waiting;
    const ms = Math.round(at - clickedAt);
    console.log(`long-poll answered ${ms} ms after the Approve click`);
    expect(res.body.data.status).toBe('approved');
    expect(ms).toBeLessThan(1000);
    await expect.poll(() => page.textContent('#outcome')).toBe('Approved.');
    await expect.poll(() => page.getAttribute('#status', 'data-status')).toBe('approved');
  });

  it('deny with a reason', async () => {
    const p = await request();
    await page.goto(p.approvalUrl as string);
    await page.fill('#reason', 'Not this vendor');
    await page.click('button[data-decision="deny"]');
    await expect.poll(() => page.textContent('#outcome')).toBe('Denied.');
    const read = await agent<Wire>('GET', `/api/v1/permissions/${p.id}`);
    expect(read.body.data.status).toBe('denied');
  });

  it('approve with changes: a widening is refused with the modal message; a narrowed cap is granted', async () => {
    const p = await request();
    await page.goto(p.approvalUrl as string);
    await page.click('#changes summary');
    await page.fill('input[data-cap="max_amount"]', '500');
    await page.click('button[data-decision="approve_with_changes"]');
    await expect.poll(() => page.textContent('#error-max_amount')).toBe('Can only be lowered (granted: 100)');
    await page.fill('input[data-cap="max_amount"]', '40');
    await page.uncheck('fieldset[data-list="allowed_recipients"] input[value="globex"]');
    await page.click('button[data-decision="approve_with_changes"]');
    await expect.poll(() => page.textContent('#outcome')).toBe('Approved.');
    const read = await operator<Wire>('GET', `/api/v1/permissions/${p.id}`);
    expect(read.body.data.scope).toMatchObject({ max_amount: 40, allowed_recipients: ['acme'] });
  });

  it('the inbox lists what waits; the page follows a decision made elsewhere', async () => {
    const p = await request();
    await page.goto(`${publicUrl}/inbox`);
    expect(await page.locator(`#pending a[href="/approve/${p.id}"]`).count()).toBe(1);
    await page.screenshot({ path: 'test-results/web-inbox-phone.png', fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.screenshot({ path: 'test-results/web-inbox-desktop.png', fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });

    await page.goto(p.approvalUrl as string);
    const denied = await operator('POST', `/api/v1/permissions/${p.id}/decide`, {
      approved: false,
      reason: 'ops',
    });
    expect(denied.status).toBe(200);
    // Polled every 2 s: the page shows the decision without a reload.
    await expect.poll(() => page.getAttribute('#status', 'data-status'), { timeout: 5000 }).toBe('denied');
    expect(await page.isHidden('#decide')).toBe(true);
  });
});
