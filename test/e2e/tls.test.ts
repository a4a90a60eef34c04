import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, hermeticCwd, runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

/** GET over HTTPS trusting only `ca`; resolves with the status and body. */
function httpsGet(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, servername: 'localhost' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
  });
}

/** Opens a TLS connection with these options; resolves with the negotiated protocol or the error. */
function handshake(
  port: number,
  options: tls.ConnectionOptions,
): Promise<{ protocol?: string; error?: Error }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => {
      const protocol = socket.getProtocol() ?? undefined;
      socket.end();
      resolve({ protocol });
    });
    socket.on('error', (error) => resolve({ error }));
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
  });
}

// Lets this OpenSSL speak TLS 1.0/1.1 at all, so a refusal can only come from the server.
const OLD_CLIENT: tls.ConnectionOptions = {
  minVersion: 'TLSv1',
  maxVersion: 'TLSv1.1',
  ciphers: 'DEFAULT@SECLEVEL=0',
};

describe('the built server over TLS', () => {
  let dir: string;
  let cert: Buffer;
  let server: ServerProcess;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'aotp-tls-'));
    const keyFile = path.join(dir, 'key.pem');
    const certFile = path.join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-days',
        '1',
        '-keyout',
        keyFile,
        '-out',
        certFile,
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(certFile);
    server = await startServer({
      // Postgres when there is one: it starts much faster than PGlite, and TLS is the subject here.
      database: process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite',
      env: { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile },
    });
  });

  afterAll(async () => {
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('listens on https:// and answers /healthz to a client trusting its certificate', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await httpsGet(`${server.url}/healthz`, cert);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ status: 'ok' });
  });

  it('is found by the CLI from the same PORT and TLS_CERT_FILE, over https', async () => {
    const env = {
      PORT: new URL(server.url).port,
      TLS_CERT_FILE: path.join(dir, 'cert.pem'),
      TLS_KEY_FILE: path.join(dir, 'key.pem'),
      AGENT_OTP_DATA_DIR: server.dataDir,
    };
    const trusted = await runCli(['agent:list', '--json'], {
      ...env,
      NODE_EXTRA_CA_CERTS: env.TLS_CERT_FILE,
    });
    expect(trusted.stderr).toBe('');
    expect(trusted.code).toBe(0);
    const untrusted = await runCli(['agent:list'], env);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stderr).toContain(`at https://127.0.0.1:${env.PORT} (from PORT and TLS_CERT_FILE)`);
    expect(untrusted.stderr).toContain('NODE_EXTRA_CA_CERTS');
  });

  it('does not answer plain HTTP on the same port', async () => {
    const res = await fetch(server.url.replace('https:', 'http:') + '/healthz').catch((err: Error) => err);
    if (res instanceof Response) expect(res.status).not.toBe(200);
    else expect(res).toBeInstanceOf(Error);
  });

  it('negotiates TLS 1.2 or newer', async () => {
    const port = Number(new URL(server.url).port);
    const result = await handshake(port, {});
    expect(result.error).toBeUndefined();
    expect(['TLSv1.2', 'TLSv1.3']).toContain(result.protocol);
    expect((await handshake(port, { maxVersion: 'TLSv1.2' })).protocol).toBe('TLSv1.2');
  });

  it('refuses a client that speaks at most TLS 1.1', async () => {
    // Control: the same client does complete a TLS 1.1 handshake with a server that allows it.
    const permissive = tls.createServer({
      cert,
      key: readFileSync(path.join(dir, 'key.pem')),
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    await new Promise<void>((resolve) => permissive.listen(0, '127.0.0.1', resolve));
    try {
      const control = await handshake((permissive.address() as { port: number }).port, OLD_CLIENT);
      expect(control.protocol).toBe('TLSv1.1');
    } finally {
      permissive.close();
    }

    const result = await handshake(Number(new URL(server.url).port), OLD_CLIENT);
    expect(result.protocol).toBeUndefined();
    expect(result.error).toBeInstanceOf(Error);
  });
});

describe('starting with a bad configuration', () => {
  it('exits non-zero with a message naming the variable', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'aotp-badconfig-'));
    try {
      const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'start'], {
          env: { PATH: process.env.PATH, PORT: 'notanumber', AGENT_OTP_DATA_DIR: dataDir },
          cwd: hermeticCwd(),
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (d: Buffer) => {
          output += d.toString();
        });
        child.stderr.on('data', (d: Buffer) => {
          output += d.toString();
        });
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', (code) => {
          clearTimeout(timer);
          resolve({ code, output });
        });
      });
      expect(result.code).not.toBe(0);
      expect(result.code).not.toBeNull();
      expect(result.output).toContain('PORT');
      expect(result.output).not.toContain('listening');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
