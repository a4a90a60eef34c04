import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startFakeDiscord } from '../fakes/discordApi.js';
import { startFakeSlack } from '../fakes/slackApi.js';
import { runCli } from '../helpers/serverProcess.js';

/** A TCP port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const dir = mkdtempSync(path.join(tmpdir(), 'aotp-doctor-'));
const policies = path.join(dir, 'policies.yaml');
writeFileSync(
  policies,
  `policies:
  - name: deny destructive
    action: deny
    priority: 100
    conditions:
      action: { in: ["exec"] }
  - name: deny deletes
    action: deny
    priority: 100
    conditions:
      action: "*.delete"
`,
);

const base = (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
  HOME: process.env.HOME,
  AGENT_OTP_DATA_DIR: dir,
  AGENT_OTP_URL: 'http://127.0.0.1:9', // no server: policies come from POLICIES_FILE
  AGENT_OTP_ADMIN_TOKEN: 'uk_unused',
  ...extra,
});

describe('agent-otp doctor', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fails on a weak ADMIN_TOKEN and an unreachable Redis', async () => {
    const port = await closedPort();
    const result = await runCli(
      ['doctor'],
      base({
        ADMIN_TOKEN: `uk_${'a'.repeat(40)}`,
        REDIS_URL: `redis://127.0.0.1:${port}`,
        POLICIES_FILE: policies,
      }),
    );
    expect(result.code).not.toBe(0);
    expect(result.stdout).toMatch(/fail\s+ADMIN_TOKEN\s+low entropy/);
    expect(result.stdout).toMatch(/fail\s+redis\s+/);
    expect(result.stdout).toMatch(/warn\s+approvers/);
    expect(result.stdout).toMatch(/pass\s+deny \*\.delete/);
    expect(result.stdout).toMatch(/warn\s+deny payment\.\*/);
    expect(result.stdout).toMatch(/pass\s+deny shell\.\* \/ exec/);
  });

  it('fails on a short ADMIN_TOKEN and warns on a plain-HTTP PUBLIC_URL', async () => {
    const result = await runCli(
      ['doctor', '--json'],
      base({ ADMIN_TOKEN: 'uk_Zx8Qp2Lm9Rt4Vw7Yb1Nc3Df6Hj5Ks0P', PUBLIC_URL: 'http://otp.example.com' }),
    );
    expect(result.code).toBe(1);
    const checks = JSON.parse(result.stdout) as { check: string; status: string }[];
    expect(checks.find((c) => c.check === 'ADMIN_TOKEN')?.status).toBe('fail');
    expect(checks.find((c) => c.check === 'PUBLIC_URL')?.status).toBe('warn');
  });

  it('passes a healthy configuration', async () => {
    const result = await runCli(
      ['doctor'],
      base({
        ADMIN_TOKEN: 'uk_h7Kq2Vx9Lm4Rt8Wz1Np5Bc3Fd6Gj0Sy2Ue7Ao9Ik4',
        PUBLIC_URL: 'https://otp.example.com',
        REDIS_URL: inject('redisUrl'),
        DATABASE_URL: process.env.TEST_DATABASE_URL,
        SLACK_APPROVERS: 'U01ABCDEF',
        POLICIES_FILE: policies,
      }),
    );
    expect(result.stdout).toMatch(/pass\s+ADMIN_TOKEN/);
    expect(result.stdout).toMatch(/pass\s+redis\s+PING: PONG/);
    expect(result.stdout).toMatch(/pass\s+database/);
    expect(result.stdout).not.toMatch(/^fail/m);
    expect(result.code).toBe(0);
  });

  it('reaches Slack (auth.test) and Discord (/users/@me), and fails on a rejected token', async () => {
    const slack = await startFakeSlack();
    const discord = await startFakeDiscord();
    try {
      const env = {
        SLACK_BOT_TOKEN: slack.botToken,
        SLACK_SIGNING_SECRET: 'k3J9x2LmQ8vR4tW7yB1nC5dF6gH0',
        SLACK_API_URL: slack.apiUrl,
        DISCORD_BOT_TOKEN: discord.botToken,
        DISCORD_API_URL: discord.apiUrl,
        POLICIES_FILE: policies,
      };
      const ok = await runCli(['doctor', '--json'], base(env));
      const checks = JSON.parse(ok.stdout) as { check: string; status: string; detail: string }[];
      expect(checks.find((c) => c.check === 'slack')).toMatchObject({ status: 'pass' });
      expect(checks.find((c) => c.check === 'discord')).toMatchObject({ status: 'pass' });
      const bad = await runCli(
        ['doctor', '--json'],
        base({ ...env, SLACK_BOT_TOKEN: 'xoxb-wrong', DISCORD_BOT_TOKEN: 'wrong-token-wrong-token-wrong' }),
      );
      const badChecks = JSON.parse(bad.stdout) as { check: string; status: string }[];
      expect(badChecks.find((c) => c.check === 'slack')?.status).toBe('fail');
      expect(badChecks.find((c) => c.check === 'discord')?.status).toBe('fail');
      expect(bad.code).toBe(1);
    } finally {
      await slack.close();
      await discord.close();
    }
  }, 30_000);
});
