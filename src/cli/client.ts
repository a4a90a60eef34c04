import { CliError } from './errors.js';
import { resolveTarget, type TargetFlags } from './target.js';

export { CliError };

export interface OperatorClientOptions {
  url: string;
  token: string;
  /** Where the URL and the key came from ("PORT in .env", "--token"…), for error messages. */
  urlSource?: string;
  tokenSource?: string;
}

/** The server and key for the operator commands: see resolveTarget for the precedence. */
export function resolveClientOptions(
  env: NodeJS.ProcessEnv = process.env,
  flags: TargetFlags = {},
): OperatorClientOptions {
  const target = resolveTarget(flags, env);
  if (!target.token) {
    throw new CliError(
      'No operator key: pass --token, set AGENT_OTP_ADMIN_TOKEN (or ADMIN_TOKEN, as the server does), or run from the directory whose .agent-otp/admin-token the server wrote (or set AGENT_OTP_DATA_DIR).',
    );
  }
  return { ...target, token: target.token };
}

export class OperatorClient {
  constructor(private readonly options: OperatorClientOptions) {}

  /** "Cannot reach … at <url> (from PORT in .env) (ECONNREFUSED)": the address and why it was chosen. */
  private unreachable(err: unknown): CliError {
    const source = this.options.urlSource;
    const why = !source ? '' : source === 'the default' ? ' (the default)' : ` (from ${source})`;
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    const hint = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(cause)
      ? ' Trust its certificate with NODE_EXTRA_CA_CERTS=/path/to/cert.pem.'
      : ' Is it running? Pass --url or set AGENT_OTP_URL.';
    return new CliError(`Cannot reach the Agent OTP server at ${this.options.url}${why} (${cause}).${hint}`);
  }

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
      throw this.unreachable(err);
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
          ? ` (check ${this.options.tokenSource ?? 'AGENT_OTP_ADMIN_TOKEN'})`
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
      throw this.unreachable(err);
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
