import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { CLI, runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const DB_URL = process.env.TEST_DATABASE_URL;
const ADMIN = `uk_${randomBytes(24).toString('hex')}`;

const POLICIES = {
  policies: [
    {
      name: 'mail-needs-human',
      priority: 5,
      conditions: { action: { equals: 'email.*' } },
      action: 'require_approval',
    },
    {
      name: 'wires-need-two',
      priority: 6,
      conditions: { action: 'wire.transfer' },
      action: 'require_approval',
      approval: { quorum: 2 },
    },
    {
      name: 'payments-auto',
      priority: 10,
      conditions: { action: { equals: 'payment.*' } },
      action: 'auto_approve',
    },
  ],
};

interface PermissionView {
  id: string;
  status: string;
  approvals: { count: number; required: number; votes: { approver: string; decision: string; at: string }[] };
  tokenState: string;
  token?: string;
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The CLI on a real terminal (util-linux `script` gives it a pty): prints what it shows, waits
 * for the "[y/N]" prompt, then types `answer`.
 */
function runCliOnTty(
  args: string[],
  env: NodeJS.ProcessEnv,
  answer: string,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const command = [process.execPath, CLI, ...args].map(sq).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      env: { PATH: process.env.PATH, TERM: 'dumb', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    let answered = false;
    const onData = (d: Buffer) => {
      output += d.toString();
      if (!answered && output.includes('[y/N]')) {
        answered = true;
        child.stdin.write(`${answer}\r`);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => resolve({ code: code ?? 1, output }));
  });
}

/**
 * The operator's CLI against the built server: every command that used to need curl, the
 * confirmation rules (a terminal asks, a script must say --yes) and shell completion.
 */
describe.runIf(DB_URL)('the operator CLI', () => {
  let server: ServerProcess;
  let operator: Api;
  let mailer: Api;
  let mailerId: string;
  let cli: (args: string[]) => ReturnType<typeof runCli>;
  let cliEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    server = await startServer({
      database: 'postgres',
      env: {
        ADMIN_TOKEN: ADMIN,
        RATE_LIMIT_PER_MIN: '100000',
        RATE_LIMIT_PER_HOUR: '1000000',
        TOKEN_RATE_LIMIT_PER_MIN: '100000',
        TOKEN_RATE_LIMIT_PER_HOUR: '1000000',
        // The webhook receiver of the webhook:list test listens on 127.0.0.1.
        WEBHOOK_ALLOW_PRIVATE: 'true',
      },
    });
    operator = apiClient(server.url, ADMIN);
    cliEnv = { AGENT_OTP_URL: server.url, AGENT_OTP_ADMIN_TOKEN: ADMIN };
    cli = (args) => runCli(args, cliEnv);
    expect((await operator('PUT', '/api/v1/policies', POLICIES)).status).toBe(200);
    const created = await operator<{ id: string; apiKey: string }>('POST', '/api/v1/agents', {
      name: 'mailer',
    });
    mailerId = created.body.data.id;
    mailer = apiClient(server.url, created.body.data.apiKey);
  });

  afterAll(async () => {
    await server?.stop();
  });

  async function pendingMail(scope: Record<string, unknown> = { max_emails: 5 }): Promise<string> {
    const res = await mailer<{ id: string }>('POST', '/api/v1/permissions/request', {
      action: 'email.send',
      resource: 'mailbox:support',
      scope,
      context: { user_id: 'ada@example.com' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body.data.id;
  }

  const statusOf = async (id: string) =>
    (await operator<{ status: string }>('GET', `/api/v1/permissions/${id}`)).body.data.status;

  it('permission:list shows who asked for what, with scope, in a table', async () => {
    const id = await pendingMail({ max_emails: 5, allowed_recipients: ['a@example.com'] });
    const listed = await cli(['permission:list', '--status', 'pending']);
    expect(listed.code, listed.stderr).toBe(0);
    const [header, ...rows] = listed.stdout.trim().split('\n');
    expect(header?.split(/\s+/)).toEqual([
      'ID',
      'AGENT',
      'FOR',
      'ACTION',
      'RESOURCE',
      'SCOPE',
      'STATUS',
      'AGE',
    ]);
    const row = rows.find((r) => r.startsWith(id));
    expect(row).toMatch(
      /mailer\s+ada@example\.com\s+email\.send\s+mailbox:support\s+Max emails 5; Allowed recip/,
    );
    expect(row).toMatch(/pending\s+\d+s$/);
    const byName = await cli(['permission:list', '--agent', 'mailer', '--json']);
    expect((JSON.parse(byName.stdout) as { id: string }[]).map((p) => p.id)).toContain(id);
    const unknown = await cli(['permission:list', '--agent', 'nobody']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('UNKNOWN_AGENT');
  });

  it('approve without a terminal and without --yes decides nothing: CONFIRMATION_REQUIRED', async () => {
    const id = await pendingMail();
    const refused = await cli(['approve', id]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('CONFIRMATION_REQUIRED');
    // The request was shown first, so the operator sees what they were about to approve.
    expect(refused.stdout).toContain('email.send');
    expect(refused.stdout).toContain('Max emails: 5');
    expect(await statusOf(id)).toBe('pending');
    const deny = await cli(['deny', id, '--json']);
    expect(deny.stderr).toContain('CONFIRMATION_REQUIRED');
    expect(await statusOf(id)).toBe('pending');

    const denied = await cli(['deny', id, '--yes', '--reason', 'not today']);
    expect(denied.code, denied.stderr).toBe(0);
    expect(await statusOf(id)).toBe('denied');
  });

  it('approve on a terminal shows the request and asks: n decides nothing, y approves', async () => {
    const id = await pendingMail();
    const no = await runCliOnTty(['approve', id], cliEnv, 'n');
    expect(no.output).toContain(`Approve ${id}? [y/N]`);
    expect(no.output).toContain('mailer');
    expect(no.output).toContain('nothing was decided');
    expect(no.code).not.toBe(0);
    expect(await statusOf(id)).toBe('pending');

    const yes = await runCliOnTty(['approve', id, '--scope', '{"max_emails": 2}'], cliEnv, 'y');
    expect(yes.code, yes.output).toBe(0);
    expect(yes.output).toContain('your scope changes: {"max_emails":2}');
    expect(await statusOf(id)).toBe('approved');
  });

  it('permission:get shows approvals so far, the policy and the token state, never a token', async () => {
    const wire = await mailer<{ id: string }>('POST', '/api/v1/permissions/request', {
      action: 'wire.transfer',
      scope: { max_amount: 500 },
    });
    const wireId = wire.body.data.id;
    expect((await cli(['approve', wireId, '--yes'])).code).toBe(0);
    const half = await cli(['permission:get', wireId, '--json']);
    expect(half.code, half.stderr).toBe(0);
    const view = JSON.parse(half.stdout) as PermissionView;
    expect(view).toMatchObject({
      status: 'pending',
      tokenState: 'none',
      approvals: { count: 1, required: 2 },
    });
    // The approver is named by the operator key's name (the bootstrap key here).
    expect(view.approvals.votes).toEqual([
      { approver: 'bootstrap', decision: 'approve', at: expect.any(String) },
    ]);
    const human = await cli(['permission:get', wireId]);
    expect(human.stdout).toMatch(/approvals\s+1 of 2: approve by bootstrap at/);
    expect(human.stdout).toMatch(/policy\s+wires-need-two \(pol_/);
    expect(human.stdout).toContain('Max amount: 500');

    // An approved mail: not collected yet, collected (unused), spent (exhausted).
    const id = await pendingMail({ max_uses: 1 });
    expect((await cli(['approve', id, '--yes'])).code).toBe(0);
    const get = async () =>
      JSON.parse((await cli(['permission:get', id, '--json'])).stdout) as PermissionView;
    expect((await get()).tokenState).toBe('none');
    const collected = await mailer<{ token: string }>('GET', `/api/v1/permissions/${id}`);
    const token = collected.body.data.token;
    expect(token).toMatch(/^otp_v1_/);
    // Who voted is the operator's business: an agent's read does not carry it.
    expect(collected.body.data).not.toHaveProperty('approvals');
    expect(collected.body.data).not.toHaveProperty('tokenState');
    const unused = await get();
    expect(unused).toMatchObject({ tokenState: 'unused', status: 'approved' });
    expect(unused.token).toBeUndefined();
    const text = await cli(['permission:get', id]);
    expect(text.stdout).toMatch(/token\s+issued, not used yet \(1 of 1 uses left\)/);
    expect(text.stdout).toMatch(/onBehalfOf\s+ada@example\.com/);
    expect(text.stdout).not.toContain(token);
    expect((await mailer('POST', `/api/v1/permissions/${id}/use`, { token, actionDetails: {} })).status).toBe(
      200,
    );
    expect((await get()).tokenState).toBe('exhausted');
  });

  it('permission:revoke stops a token at once and withdraws a pending request', async () => {
    const auto = await mailer<{ id: string; token: string }>('POST', '/api/v1/permissions/request', {
      action: 'payment.refund',
    });
    expect(auto.status).toBe(201);
    const revoked = await cli(['permission:revoke', auto.body.data.id, '--reason', 'wrong customer']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain('its token no longer works');
    const use = await mailer<unknown>('POST', `/api/v1/permissions/${auto.body.data.id}/use`, {
      token: auto.body.data.token,
    });
    expect(use.body.error.code).toBe('TOKEN_REVOKED');
    const view = JSON.parse(
      (await cli(['permission:get', auto.body.data.id, '--json'])).stdout,
    ) as PermissionView;
    expect(view.tokenState).toBe('revoked');

    const pending = await pendingMail();
    expect((await cli(['permission:revoke', pending])).code).toBe(0);
    expect(await statusOf(pending)).toBe('revoked');
    const settled = await pendingMail();
    expect((await cli(['deny', settled, '--yes'])).code).toBe(0);
    const late = await cli(['permission:revoke', settled]);
    expect(late.code).not.toBe(0);
    expect(late.stderr).toContain('CONFLICT');
  });

  it('agent:update changes description, webhook URL and rate limits, by name; bad input sends nothing', async () => {
    const updated = await cli([
      'agent:update',
      'mailer',
      '--description',
      'sends support mail',
      '--rate-limit-per-min',
      '7',
      '--token-rate-limit-per-hour',
      '900',
      '--json',
    ]);
    expect(updated.code, updated.stderr).toBe(0);
    const agent = async () =>
      (await operator<Record<string, unknown>>('GET', `/api/v1/agents/${mailerId}`)).body.data;
    expect(await agent()).toMatchObject({
      description: 'sends support mail',
      rateLimitPerMin: 7,
      tokenRateLimitPerHour: 900,
      rateLimitPerHour: null,
    });
    const bad = await cli(['agent:update', mailerId, '--rate-limit-per-min', '0']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--rate-limit-per-min must be a whole number');
    const nothing = await cli(['agent:update', mailerId]);
    expect(nothing.stderr).toContain('Nothing to change');
    const ftp = await cli(['agent:update', mailerId, '--webhook-url', 'ftp://example.com/hook']);
    expect(ftp.code).not.toBe(0);
    expect(ftp.stderr).toContain('VALIDATION_ERROR');

    const cleared = await cli(['agent:update', mailerId, '--clear-rate-limits', '--clear-description']);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toMatch(/rateLimitPerMin\s+\(server default\)/);
    expect(await agent()).toMatchObject({
      description: null,
      rateLimitPerMin: null,
      tokenRateLimitPerHour: null,
    });
  });

  it('policy:disable, policy:enable and policy:delete by name; delete asks first', async () => {
    const test = async () =>
      JSON.parse(
        (await cli(['policy:test', '--action', 'payment.x', '--agent', 'mailer', '--json'])).stdout,
      ) as {
        policy: { name: string } | null;
      };
    expect((await test()).policy?.name).toBe('payments-auto');
    const disabled = await cli(['policy:disable', 'payments-auto']);
    expect(disabled.code, disabled.stderr).toBe(0);
    expect((await test()).policy).toBeNull();
    expect((await cli(['policy:enable', 'payments-auto'])).code).toBe(0);
    expect((await test()).policy?.name).toBe('payments-auto');

    const refused = await cli(['policy:delete', 'payments-auto']);
    expect(refused.stderr).toContain('CONFIRMATION_REQUIRED');
    expect((await test()).policy?.name).toBe('payments-auto');
    const deleted = await cli(['policy:delete', 'payments-auto', '--yes']);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect((await test()).policy).toBeNull();
    const gone = await cli(['policy:delete', 'payments-auto', '--yes']);
    expect(gone.stderr).toContain('NOT_FOUND');
    // Put it back for the tests that follow.
    expect((await operator('PUT', '/api/v1/policies', POLICIES)).status).toBe(200);
  });

  it('webhook:list puts dead letters first; webhook:replay sends one again', async () => {
    const arrivals: string[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => {
        body += c.toString();
      });
      req.on('end', () => {
        arrivals.push(body);
        res.end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    try {
      expect((await cli(['agent:update', 'mailer', '--webhook-url', hookUrl])).code).toBe(0);
      const delivered = async (permissionId: string) => {
        for (let i = 0; i < 100; i++) {
          const page = await operator<{ deliveries: { id: string; permissionId: string }[] }>(
            'GET',
            '/api/v1/webhooks/deliveries?status=delivered',
          );
          const found = page.body.data.deliveries.find((d) => d.permissionId === permissionId);
          if (found) return found.id;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`no delivered webhook for ${permissionId}`);
      };
      const first = await mailer<{ id: string }>('POST', '/api/v1/permissions/request', {
        action: 'payment.hook',
      });
      const deadId = await delivered(first.body.data.id);
      // A delivery whose retry window ran out (24 h of 503s), without waiting for it.
      const db = new pg.Client({ connectionString: DB_URL });
      await db.connect();
      try {
        await db.query(`SET search_path TO ${server.schema}`);
        await db.query(
          "UPDATE webhook_deliveries SET status = 'dead', last_status = 503, last_error = 'HTTP 503' WHERE id = $1",
          [deadId],
        );
      } finally {
        await db.end();
      }
      const later = await mailer<{ id: string }>('POST', '/api/v1/permissions/request', {
        action: 'payment.later',
      });
      await delivered(later.body.data.id);
      expect(arrivals).toHaveLength(2);

      const listed = await cli(['webhook:list']);
      expect(listed.code, listed.stderr).toBe(0);
      const lines = listed.stdout.trim().split('\n');
      expect(lines[0]?.split(/\s+/)).toEqual([
        'ID',
        'STATUS',
        'EVENT',
        'AGENT',
        'PERMISSION',
        'ATTEMPTS',
        'LAST',
        'URL',
        'AGE',
      ]);
      // The dead one first, although the other is newer.
      expect(lines[1]).toMatch(
        new RegExp(
          `^${deadId}\\s+dead\\s+permission\\.approved\\s+mailer\\s+${first.body.data.id}\\s+1\\s+503\\s`,
        ),
      );
      expect(lines[2]).toMatch(new RegExp(`\\sdelivered\\s.*${later.body.data.id}`));
      const json = JSON.parse((await cli(['webhook:list', '--agent', 'mailer', '--json'])).stdout) as {
        id: string;
      }[];
      expect(json.map((d) => d.id).slice(0, 1)).toEqual([deadId]);

      const replayed = await cli(['webhook:replay', deadId]);
      expect(replayed.code, replayed.stderr).toBe(0);
      expect(replayed.stdout).toContain(`Queued ${deadId}`);
      await delivered(first.body.data.id);
      expect(arrivals).toHaveLength(3);
      expect(arrivals[2]).toBe(arrivals[0]);
      const again = await cli(['webhook:replay', 'msg_doesnotexist']);
      expect(again.code).not.toBe(0);
      expect(again.stderr).toContain('NOT_FOUND');
      const badStatus = await cli(['webhook:list', '--status', 'lost']);
      expect(badStatus.code).not.toBe(0);
    } finally {
      await cli(['agent:update', 'mailer', '--clear-webhook-url']);
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });

  it('audit:redact shows what it would change and asks; --dry-run only prints', async () => {
    const subject = `grace-${randomBytes(3).toString('hex')}@example.com`;
    const res = await mailer<{ id: string }>('POST', '/api/v1/permissions/request', {
      action: 'email.send',
      context: { user_id: subject },
    });
    const id = res.body.data.id;
    const context = async () =>
      (await operator<{ context: Record<string, unknown> }>('GET', `/api/v1/permissions/${id}`)).body.data
        .context;

    const dry = await cli(['audit:redact', '--subject', subject, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('Would redact');
    expect(dry.stdout).toContain('Dry run: nothing was changed.');
    const refused = await cli(['audit:redact', '--subject', subject]);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toContain('Would redact');
    expect(refused.stderr).toContain('CONFIRMATION_REQUIRED');
    expect((await context()).user_id).toBe(subject);

    const declined = await runCliOnTty(['audit:redact', '--subject', subject], cliEnv, 'n');
    expect(declined.output).toContain('Redact all of this?');
    expect(declined.code).not.toBe(0);
    expect((await context()).user_id).toBe(subject);

    const done = await cli(['audit:redact', '--subject', subject, '--yes']);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/^Redacted: /);
    expect((await context()).user_id).toBe('[redacted]');
  });

  it('agent:rotate-key names the expiry as the JSON does', async () => {
    const rotated = await cli(['agent:rotate-key', '--id', mailerId, '--grace-period', '60']);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(/previousKeysExpireAt\s+20\d\d-/);
  });

  it('completion bash|zsh covers every command, generated from the program', async () => {
    const help = await runCli(['--help'], {});
    const commands = [...help.stdout.matchAll(/^ {2}([a-z][a-z:-]*)/gm)].map((m) => m[1] as string);
    expect(commands).toEqual(expect.arrayContaining(['permission:get', 'webhook:replay', 'completion']));
    const bash = await runCli(['completion', 'bash'], {});
    const zsh = await runCli(['completion', 'zsh'], {});
    expect(zsh.stdout).toContain('#compdef agent-otp');
    for (const c of commands.filter((c) => c !== 'help')) {
      expect(bash.stdout).toContain(`    ${c})`);
      expect(zsh.stdout).toContain(`    ${c})`);
    }
    const script = path.join(tmpdir(), `aotp-completion-${randomBytes(4).toString('hex')}.bash`);
    writeFileSync(script, bash.stdout);
    const complete = (line: string) =>
      new Promise<string>((resolve) => {
        const child = spawn(
          'bash',
          [
            '-c',
            `source ${sq(script)}; COMP_WORDBREAKS=$' \\t\\n"\\'><=;|&(:'; COMP_LINE=${sq(line)}; COMP_POINT=\${#COMP_LINE}; _agent_otp_complete; echo "\${COMPREPLY[*]}"`,
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
        });
        child.once('exit', () => resolve(out.trim()));
      });
    // bash splits at ':', so what it inserts is the part after the colon.
    expect(await complete('agent-otp permission:g')).toBe('get');
    expect((await complete('agent-otp webhook')).split(' ')).toEqual(['webhook:list', 'webhook:replay']);
    expect((await complete('agent-otp approve perm_x --')).split(' ')).toEqual(
      expect.arrayContaining(['--yes', '--scope', '--reason', '--json']),
    );
    expect(await complete('agent-otp completion ')).toBe('bash zsh');
    const bad = await runCli(['completion', 'fish'], {});
    expect(bad.code).not.toBe(0);
  });
});
