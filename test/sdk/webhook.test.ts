import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { newWebhookSecret, signWebhook } from '../../src/core/webhook.js';
import {
  AgentOTPError,
  ValidationError,
  verifyWebhook,
  WebhookVerificationError,
} from '../../src/sdk/index.js';

const key = randomBytes(32);
const secret = `whsec_${key.toString('base64')}`;
const NOW = 1_760_000_000_000;
const ts = String(NOW / 1000);
const body = JSON.stringify({
  type: 'permission.approved',
  data: { id: 'perm_1', status: 'approved', note: 'é ✓' },
});

/** What the server sends, computed independently with node:crypto. */
function sign(id: string, timestamp: string, payload: string | Buffer, withKey: Buffer = key): string {
  const mac = createHmac('sha256', withKey);
  mac.update(`${id}.${timestamp}.`);
  mac.update(payload);
  return `v1,${mac.digest('base64')}`;
}

function headers(signature: string, timestamp = ts, id = 'msg_1') {
  return { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature };
}

async function refusal(promise: Promise<unknown>): Promise<WebhookVerificationError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WebhookVerificationError);
  expect(err).toBeInstanceOf(AgentOTPError);
  expect(err).toMatchObject({ code: 'WEBHOOK_INVALID' });
  return err as WebhookVerificationError;
}

describe('verifyWebhook (Standard Webhooks)', () => {
  it('accepts a valid delivery and returns the parsed payload', async () => {
    const payload = await verifyWebhook(body, headers(sign('msg_1', ts, body)), secret, { now: NOW });
    expect(payload).toEqual(JSON.parse(body));
  });

  it('takes the raw body as bytes and headers as a Fetch Headers object, any case', async () => {
    const raw = new TextEncoder().encode(body);
    const h = new Headers({
      'Webhook-Id': 'msg_1',
      'Webhook-Timestamp': ts,
      'Webhook-Signature': sign('msg_1', ts, body),
    });
    await expect(verifyWebhook(raw, h, secret, { now: new Date(NOW) })).resolves.toMatchObject({
      type: 'permission.approved',
    });
    const upper = {
      'Webhook-Id': 'msg_1',
      'WEBHOOK-TIMESTAMP': ts,
      'webhook-signature': [sign('msg_1', ts, body)],
    };
    await expect(verifyWebhook(raw, upper, secret, { now: NOW })).resolves.toBeTruthy();
  });

  it('checks the bytes as sent, not a re-encoding of them', async () => {
    const latin1 = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe9, 0x22, 0x7d]); // {"a":"\xe9"}
    const sig = sign('msg_1', ts, latin1);
    await expect(
      verifyWebhook(new Uint8Array(latin1), headers(sig), secret, { now: NOW }),
    ).resolves.toBeTruthy();
    await refusal(verifyWebhook(latin1.toString('latin1'), headers(sig), secret, { now: NOW }));
  });

  it('refuses a tampered body', async () => {
    const sig = sign('msg_1', ts, body);
    await refusal(verifyWebhook(body.replace('approved', 'denied'), headers(sig), secret, { now: NOW }));
    await refusal(verifyWebhook(`${body} `, headers(sig), secret, { now: NOW }));
  });

  it('refuses a changed id or timestamp (both are signed)', async () => {
    const sig = sign('msg_1', ts, body);
    await refusal(verifyWebhook(body, headers(sig, ts, 'msg_2'), secret, { now: NOW }));
    await refusal(verifyWebhook(body, headers(sig, String(NOW / 1000 + 1)), secret, { now: NOW }));
  });

  it('refuses a signature made with another secret', async () => {
    const other = randomBytes(32);
    await refusal(verifyWebhook(body, headers(sign('msg_1', ts, body, other)), secret, { now: NOW }));
  });

  it('refuses a stale or future timestamp, outside the tolerance', async () => {
    const old = String(NOW / 1000 - 301);
    const sigOld = sign('msg_1', old, body);
    const err = await refusal(verifyWebhook(body, headers(sigOld, old), secret, { now: NOW }));
    expect(err.message).toMatch(/tolerance/);
    const future = String(NOW / 1000 + 301);
    await refusal(verifyWebhook(body, headers(sign('msg_1', future, body), future), secret, { now: NOW }));
    // Within a wider tolerance the same delivery is fine.
    await expect(
      verifyWebhook(body, headers(sigOld, old), secret, { now: NOW, toleranceSeconds: 600 }),
    ).resolves.toBeTruthy();
    // A week ahead is refused; inside 5 minutes either way is accepted.
    const week = String(NOW / 1000 + 7 * 86400);
    await refusal(verifyWebhook(body, headers(sign('msg_1', week, body), week), secret, { now: NOW }));
    for (const offset of [-299, 299]) {
      const near = String(NOW / 1000 + offset);
      await expect(
        verifyWebhook(body, headers(sign('msg_1', near, body), near), secret, { now: NOW }),
      ).resolves.toBeTruthy();
    }
  });

  it('refuses a tolerance or a "now" that would switch the time check off', async () => {
    const week = String(NOW / 1000 + 7 * 86400);
    const h = headers(sign('msg_1', week, body), week);
    for (const options of [
      { now: new Date('not a date') },
      { now: Number.NaN },
      { now: NOW, toleranceSeconds: Number.NaN },
      { now: NOW, toleranceSeconds: Number.POSITIVE_INFINITY },
      { now: NOW, toleranceSeconds: -1 },
    ]) {
      await expect(verifyWebhook(body, h, secret, options), JSON.stringify(options)).rejects.toBeInstanceOf(
        ValidationError,
      );
    }
  });

  it('uses the current time by default', async () => {
    const nowTs = String(Math.floor(Date.now() / 1000));
    await expect(
      verifyWebhook(body, headers(sign('msg_1', nowTs, body), nowTs), secret),
    ).resolves.toBeTruthy();
    await refusal(verifyWebhook(body, headers(sign('msg_1', ts, body)), secret));
  });

  it('accepts any one of several signatures (secret rotation), and ignores other versions', async () => {
    const good = sign('msg_1', ts, body);
    const stale = sign('msg_1', ts, body, randomBytes(32));
    const list = `v2,${good.slice(3)} ${stale} garbage v1,!!notbase64 ${good}`;
    await expect(verifyWebhook(body, headers(list), secret, { now: NOW })).resolves.toBeTruthy();
    await refusal(verifyWebhook(body, headers(`${stale} v2,${good.slice(3)}`), secret, { now: NOW }));
  });

  it('refuses a delivery with a header missing or repeated', async () => {
    const sig = sign('msg_1', ts, body);
    await refusal(
      verifyWebhook(body, { 'webhook-id': 'msg_1', 'webhook-timestamp': ts }, secret, { now: NOW }),
    );
    await refusal(
      verifyWebhook(body, { 'webhook-signature': sig, 'webhook-timestamp': ts }, secret, { now: NOW }),
    );
    await refusal(verifyWebhook(body, headers(sig, 'yesterday'), secret, { now: NOW }));
    await refusal(
      verifyWebhook(body, { ...headers(sig), 'webhook-id': ['msg_1', 'msg_2'] }, secret, { now: NOW }),
    );
  });

  it('refuses a signed body that is not JSON', async () => {
    const text = 'not json';
    await refusal(verifyWebhook(text, headers(sign('msg_1', ts, text)), secret, { now: NOW }));
  });

  it('treats a malformed secret as a configuration error (ValidationError)', async () => {
    const sig = sign('msg_1', ts, body);
    await expect(verifyWebhook(body, headers(sig), 'whsec_%%%', { now: NOW })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await expect(verifyWebhook(body, headers(sig), '', { now: NOW })).rejects.toBeInstanceOf(ValidationError);
  });

  it('verifies what the server’s own signer (src/core/webhook.ts) produces, during a secret rotation too', async () => {
    const current = newWebhookSecret();
    const previous = newWebhookSecret();
    const signature = signWebhook([current, previous], 'msg_abc', NOW / 1000, body);
    const h = headers(signature, ts, 'msg_abc');
    await expect(verifyWebhook(body, h, current, { now: NOW })).resolves.toMatchObject({
      type: 'permission.approved',
    });
    await expect(verifyWebhook(body, h, previous, { now: NOW })).resolves.toBeTruthy();
    await refusal(verifyWebhook(body, h, newWebhookSecret(), { now: NOW }));
  });

  it('accepts the secret without its whsec_ prefix, as the reference libraries do', async () => {
    await expect(
      verifyWebhook(body, headers(sign('msg_1', ts, body)), key.toString('base64'), { now: NOW }),
    ).resolves.toBeTruthy();
  });
});
