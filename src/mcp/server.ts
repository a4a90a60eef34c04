/**
 * `agent-otp mcp`: an MCP server on stdio that lets a model ask Agent OTP for permissions. It is
 * a client of the HTTP API through the SDK (no server internals), configured by
 * `AGENT_OTP_URL` (default http://127.0.0.1:3000) and `AGENT_OTP_API_KEY` (an agent key).
 *
 * stdout carries protocol messages and nothing else: logs go to stderr as JSON lines (ids,
 * statuses and error codes — never a token or the key), and stray console output is redirected
 * there too, so a dependency printing something cannot corrupt the stream.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { AgentOTPClient, DEFAULT_BASE_URL } from '../sdk/client.js';
import { redactSecrets } from '../sdk/errors.js';
import { SDK_VERSION } from '../sdk/version.js';
import { type McpLog, registerAgentOtpTools, type ToolOptions } from './tools.js';

const INSTRUCTIONS =
  'Agent OTP grants one-time, scoped, short-lived permissions. Before any sensitive action (email, payments, ' +
  'file writes, deletes), call request_permission with the minimum scope and a clear context.reason; act only ' +
  'if it is approved and only within the granted scope; then call use_token. Never log, store or repeat tokens.';

/** Thrown for a configuration the server cannot start with; the CLI prints it and exits 1. */
export class McpConfigError extends Error {}

export interface McpServerConfig {
  baseUrl: string;
  apiKey: string;
}

export function mcpConfigFromEnv(env: NodeJS.ProcessEnv = process.env): McpServerConfig {
  const apiKey = env.AGENT_OTP_API_KEY?.trim();
  if (!apiKey) {
    throw new McpConfigError(
      'AGENT_OTP_API_KEY is not set: the MCP server needs an agent key (ak_live_… or ak_test_…, from `agent-otp agent:create`). ' +
        'Set it in the MCP client configuration\'s "env".',
    );
  }
  return { baseUrl: env.AGENT_OTP_URL?.trim() || DEFAULT_BASE_URL, apiKey };
}

/** The MCP server with its three tools, not yet connected to a transport. */
export function createAgentOtpMcpServer(otp: AgentOTPClient, options: ToolOptions = {}): McpServer {
  const server = new McpServer(
    { name: 'agent-otp', title: 'Agent OTP', version: SDK_VERSION },
    { instructions: INSTRUCTIONS, capabilities: { tools: {} } },
  );
  registerAgentOtpTools(server, otp, options);
  return server;
}

/** A JSON line on stderr, scrubbed of anything shaped like a credential. */
export const stderrLog: McpLog = (msg, fields = {}) => {
  const line = JSON.stringify({ time: new Date().toISOString(), name: 'agent-otp-mcp', msg, ...fields });
  process.stderr.write(`${redactSecrets(line)}\n`);
};

/**
 * Runs the server on stdin/stdout until the client closes the stream (or SIGTERM/SIGINT), then
 * exits. Configuration errors are thrown before anything is written.
 */
export async function runMcpServer(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = mcpConfigFromEnv(env);
  let otp: AgentOTPClient;
  try {
    otp = new AgentOTPClient({ apiKey: config.apiKey, baseUrl: config.baseUrl });
  } catch (err) {
    // e.g. plain http:// to a non-loopback host: the SDK refuses to send the key in clear.
    throw new McpConfigError(`AGENT_OTP_URL / AGENT_OTP_API_KEY: ${(err as Error).message}`);
  }

  // Only protocol messages on stdout.
  const toStderr = (...args: unknown[]) => console.error(...args);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;

  const server = createAgentOtpMcpServer(otp, { log: stderrLog });
  const transport = new StdioServerTransport();
  let closing = false;
  const shutdown = (why: string) => {
    if (closing) return;
    closing = true;
    stderrLog('shutting down', { why });
    server
      .close()
      .catch(() => undefined)
      .finally(() => process.exit(0));
  };
  transport.onerror = (err) => stderrLog('transport error', { error: redactSecrets(err.message) });
  process.stdin.once('end', () => shutdown('stdin closed'));
  process.stdin.once('close', () => shutdown('stdin closed'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
  await server.connect(transport);
  stderrLog('MCP server ready on stdio', { url: otp.baseUrl });
}
