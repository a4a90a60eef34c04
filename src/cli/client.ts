import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The CLI is an HTTP client of the operator API; errors carry the server's code for the user. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface OperatorClientOptions {
  url: string;
  token: string;
}

export function resolveClientOptions(env: NodeJS.ProcessEnv = process.env): OperatorClientOptions {
  const url = (env.AGENT_OTP_URL || 'http://127.0.0.1:3000').replace(/\/+$/, '');
  let token = env.AGENT_OTP_ADMIN_TOKEN;
  if (!token) {
    const file = path.join(path.resolve(env.AGENT_OTP_DATA_DIR || './.agent-otp'), 'admin-token');
    if (existsSync(file)) token = readFileSync(file, 'utf8').trim();
  }
  if (!token) {
    throw new CliError(
      'No operator key: set AGENT_OTP_ADMIN_TOKEN, or run from the directory whose .agent-otp/admin-token the server wrote (or set AGENT_OTP_DATA_DIR).',
    );
  }
  return { url, token };
}

export class OperatorClient {
  constructor(private readonly options: OperatorClientOptions) {}

  async call<T>(method: string, pathname: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.options.url}${pathname}`, {
        method,
        headers: {
          authorization: `Bearer ${this.options.token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new CliError(
        `Cannot reach the Agent OTP server at ${this.options.url} (${cause}). Is it running? Set AGENT_OTP_URL.`,
      );
    }
    const text = await response.text();
    let parsed: {
      success?: boolean;
      data?: T;
      error?: { code: string; message: string; requestId?: string };
    };
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CliError(`Unexpected answer from ${this.options.url} (HTTP ${response.status})`);
    }
    if (!response.ok || parsed.success === false) {
      const error = parsed.error;
      const hint =
        error?.code === 'INVALID_API_KEY' || error?.code === 'EXPIRED_API_KEY'
          ? ' (check AGENT_OTP_ADMIN_TOKEN)'
          : '';
      throw new CliError(
        `${error?.code ?? `HTTP ${response.status}`}: ${error?.message ?? 'request failed'}${hint}`,
        error?.code,
      );
    }
    return parsed.data as T;
  }

  /** A raw response, for streamed downloads (audit export); errors become CliError as above. */
  async stream(pathname: string): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(`${this.options.url}${pathname}`, {
        headers: { authorization: `Bearer ${this.options.token}` },
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new CliError(`Cannot reach the Agent OTP server at ${this.options.url} (${cause}).`);
    }
    if (!response.ok) {
      const text = await response.text();
      let error: { code?: string; message?: string } | undefined;
      try {
        error = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
      } catch {
        error = undefined;
      }
      throw new CliError(
        `${error?.code ?? `HTTP ${response.status}`}: ${error?.message ?? 'request failed'}`,
        error?.code,
      );
    }
    return response;
  }
}
