import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { CliError } from './errors.js';

/**
 * Which server the operator CLI talks to, and with which key. The CLI reads the same variables
 * (and the same `.env`) as the server, so `PORT=3701` in `.env` moves both; every choice carries
 * where it came from, so "Cannot reach …" can say why that address was tried.
 */

/** Names of the variables the working directory's `.env` filled in (for messages). */
export const dotEnvNames = new Set<string>();

/** A `.env` in the working directory fills in variables the environment does not set. */
export function loadDotEnv(file = '.env', env: NodeJS.ProcessEnv = process.env): void {
  if (!existsSync(file)) return;
  for (const [name, value] of Object.entries(parseEnv(readFileSync(file, 'utf8')))) {
    if (env[name] === undefined) {
      env[name] = value;
      dotEnvNames.add(name);
    }
  }
}

export interface TargetFlags {
  url?: string;
  token?: string;
}

export interface CliTarget {
  url: string;
  /** e.g. "--url", "AGENT_OTP_URL", "PORT in .env", "the default". */
  urlSource: string;
  token?: string;
  tokenSource?: string;
}

export const DEFAULT_URL = 'http://127.0.0.1:3000';

/** "PORT in .env", "PORT and HOST in .env", "PORT in .env and HOST": where variables were set. */
export function describeNames(names: readonly string[], fromDotEnv: ReadonlySet<string>): string {
  const and = (list: string[]) =>
    list.length > 1 ? `${list.slice(0, -1).join(', ')} and ${list[list.length - 1]}` : (list[0] ?? '');
  const dot = names.filter((n) => fromDotEnv.has(n));
  const shell = names.filter((n) => !fromDotEnv.has(n));
  return [dot.length ? `${and(dot)} in .env` : '', shell.length ? and(shell) : '']
    .filter(Boolean)
    .join(' and ');
}

function checkedUrl(value: string, source: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new CliError(`${source}: "${value}" is not a URL (e.g. http://127.0.0.1:3000)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new CliError(`${source}: must be an http:// or https:// URL`);
  }
  return value.trim().replace(/\/+$/, '');
}

/** The address a server started with the same variables answers on, from the CLI's side. */
function derivedUrl(env: NodeJS.ProcessEnv, fromDotEnv: ReadonlySet<string>): CliTarget | undefined {
  const set = (name: string) => (env[name] ?? '').trim() !== '';
  const names = ['PORT', 'HOST', 'TLS_CERT_FILE'].filter(set);
  if (names.length === 0) return undefined;
  const source = describeNames(names, fromDotEnv);
  let port = 3000;
  if (set('PORT')) {
    const raw = (env.PORT as string).trim();
    port = Number(raw);
    if (!/^\d+$/.test(raw) || port < 1 || port > 65535) {
      throw new CliError(
        port === 0
          ? `PORT is 0 (${source}): the server picks a random port; pass --url or set AGENT_OTP_URL`
          : `PORT (${source}) is not a port number; pass --url or set AGENT_OTP_URL`,
      );
    }
  }
  // A server listening on every interface is reached on loopback.
  let host = set('HOST') ? (env.HOST as string).trim() : '127.0.0.1';
  if (host === '0.0.0.0') host = '127.0.0.1';
  else if (host === '::' || host === '[::]') host = '[::1]';
  else if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  // The server serves HTTPS when TLS_CERT_FILE (with TLS_KEY_FILE) is set.
  const scheme = set('TLS_CERT_FILE') ? 'https' : 'http';
  return { url: checkedUrl(`${scheme}://${host}:${port}`, source), urlSource: source };
}

function readToken(file: string, source: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new CliError(`${source}: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
  }
}

/**
 * URL: --url > AGENT_OTP_URL > PORT/HOST/TLS_CERT_FILE (the server's own) > http://127.0.0.1:3000.
 * Key: --token > AGENT_OTP_ADMIN_TOKEN > ADMIN_TOKEN > ADMIN_TOKEN_FILE > <data dir>/admin-token.
 * The token may be missing here: only the commands that call the API need it.
 */
export function resolveTarget(
  flags: TargetFlags = {},
  env: NodeJS.ProcessEnv = process.env,
  fromDotEnv: ReadonlySet<string> = dotEnvNames,
): CliTarget {
  const named = (name: string) => describeNames([name], fromDotEnv);
  let target: CliTarget;
  if (flags.url !== undefined) target = { url: checkedUrl(flags.url, '--url'), urlSource: '--url' };
  else if (env.AGENT_OTP_URL?.trim()) {
    const source = named('AGENT_OTP_URL');
    target = { url: checkedUrl(env.AGENT_OTP_URL, source), urlSource: source };
  } else target = derivedUrl(env, fromDotEnv) ?? { url: DEFAULT_URL, urlSource: 'the default' };

  if (flags.token !== undefined) return { ...target, token: flags.token.trim(), tokenSource: '--token' };
  for (const name of ['AGENT_OTP_ADMIN_TOKEN', 'ADMIN_TOKEN']) {
    const value = env[name]?.trim();
    if (value) return { ...target, token: value, tokenSource: named(name) };
  }
  if (env.ADMIN_TOKEN_FILE?.trim()) {
    const source = named('ADMIN_TOKEN_FILE');
    return { ...target, token: readToken(env.ADMIN_TOKEN_FILE.trim(), source), tokenSource: source };
  }
  // What the server writes on first start when ADMIN_TOKEN is unset.
  const file = path.join(path.resolve(env.AGENT_OTP_DATA_DIR?.trim() || './.agent-otp'), 'admin-token');
  if (existsSync(file)) return { ...target, token: readToken(file, file), tokenSource: file };
  return target;
}
