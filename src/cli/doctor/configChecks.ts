import { approvalGuidance } from '../../chat/guidance.js';
import type { Config } from '../../config.js';
import { relyingParty } from '../../core/relyingParty.js';
import type { CheckResult } from './result.js';

/** Bits of entropy per character (Shannon), and the share of the most frequent character. */
function entropyStats(text: string): { bitsPerChar: number; topShare: number; distinct: number } {
  const counts = new Map<string, number>();
  for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  let top = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    bits -= p * Math.log2(p);
    top = Math.max(top, n);
  }
  return { bitsPerChar: bits, topShare: top / Math.max(1, text.length), distinct: counts.size };
}

/** True when a secret looks guessable: few distinct characters, one dominating, or low entropy. */
export function lowEntropy(secret: string): boolean {
  const s = entropyStats(secret);
  return s.distinct < 10 || s.topShare > 0.25 || s.bitsPerChar < 3;
}

export function checkAdminToken(token: string | undefined): CheckResult {
  if (!token) {
    return {
      check: 'ADMIN_TOKEN',
      status: 'pass',
      detail: 'not set: the server generates a random operator key in its data dir',
    };
  }
  const body = token.replace(/^uk_/, '');
  if (token.length < 40) {
    return {
      check: 'ADMIN_TOKEN',
      status: 'fail',
      detail: `only ${token.length} characters (use 40 or more)`,
    };
  }
  if (lowEntropy(body)) {
    return {
      check: 'ADMIN_TOKEN',
      status: 'fail',
      detail:
        'low entropy (repeated or few distinct characters): generate one with `openssl rand -base64 32`',
    };
  }
  return { check: 'ADMIN_TOKEN', status: 'pass', detail: `${token.length} characters` };
}

function checkSecrets(config: Config): CheckResult[] {
  const out: CheckResult[] = [];
  if (config.SLACK_SIGNING_SECRET && lowEntropy(config.SLACK_SIGNING_SECRET)) {
    out.push({ check: 'SLACK_SIGNING_SECRET', status: 'warn', detail: 'looks low-entropy (a placeholder?)' });
  }
  if (config.SECRETS_ENCRYPTION_KEY) {
    const bytes = Buffer.from(config.SECRETS_ENCRYPTION_KEY.trim(), 'base64');
    if (new Set(bytes).size < 16) {
      out.push({ check: 'SECRETS_ENCRYPTION_KEY', status: 'fail', detail: 'low entropy: not a random key' });
    } else out.push({ check: 'SECRETS_ENCRYPTION_KEY', status: 'pass', detail: '32 random-looking bytes' });
  }
  return out;
}

function checkPublicUrl(config: Config): CheckResult {
  if (!config.PUBLIC_URL)
    return { check: 'PUBLIC_URL', status: 'warn', detail: 'not set (links in chat and webhooks)' };
  if (new URL(config.PUBLIC_URL).protocol !== 'https:') {
    return { check: 'PUBLIC_URL', status: 'warn', detail: `${config.PUBLIC_URL} is not HTTPS` };
  }
  return { check: 'PUBLIC_URL', status: 'pass', detail: config.PUBLIC_URL };
}

/** Web approval signs approvers in with passkeys, which browsers bind to PUBLIC_URL's host. */
export function checkPasskeys(config: Config): CheckResult {
  const { rp, problem } = relyingParty(config.PUBLIC_URL);
  if (!rp) return { check: 'passkeys', status: 'warn', detail: `web sign-in is off: ${problem}` };
  if (/^[\d.]+$|:/.test(rp.id)) {
    return {
      check: 'passkeys',
      status: 'warn',
      detail: `browsers refuse an IP address (${rp.id}) as a passkey's site: use a host name (localhost on this machine)`,
    };
  }
  return { check: 'passkeys', status: 'pass', detail: `relying party ${rp.id}, origin ${rp.origin}` };
}

/** Alerts carry operational details, and their signature is only as good as the channel's secrecy. */
function checkAlertWebhook(config: Config): CheckResult[] {
  if (!config.ALERT_WEBHOOK_URL) return [];
  const url = new URL(config.ALERT_WEBHOOK_URL);
  // The host only: a URL may carry credentials or a token in its path or query.
  return url.protocol === 'https:'
    ? [{ check: 'ALERT_WEBHOOK_URL', status: 'pass', detail: `HTTPS to ${url.host}` }]
    : [
        {
          check: 'ALERT_WEBHOOK_URL',
          status: 'warn',
          detail: `not HTTPS (${url.host}): alerts travel in clear`,
        },
      ];
}

/** Who decides the requests that need a human; the same sentence the server logs at start. */
function checkApprovers(config: Config): CheckResult {
  const guidance = approvalGuidance(config);
  if (guidance) return { check: 'approvers', status: 'warn', detail: guidance };
  const n =
    (config.SLACK_APPROVERS?.length ?? 0) +
    (config.DISCORD_APPROVERS?.length ?? 0) +
    (config.DISCORD_APPROVER_ROLES?.length ?? 0);
  return n > 0
    ? { check: 'approvers', status: 'pass', detail: `${n} approver ids/roles configured` }
    : {
        check: 'approvers',
        status: 'pass',
        detail: `DEFAULT_POLICY_ACTION=${config.DEFAULT_POLICY_ACTION}: no request waits for a human unless a policy asks`,
      };
}

/** Checks that read only the configuration: no network, no files beyond what it names. */
export function configChecks(config: Config): CheckResult[] {
  return [
    checkAdminToken(config.ADMIN_TOKEN),
    ...checkSecrets(config),
    checkPublicUrl(config),
    checkPasskeys(config),
    ...checkAlertWebhook(config),
    checkApprovers(config),
  ];
}
