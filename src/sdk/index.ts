/**
 * `agent-otp/sdk`: the TypeScript client for agents. Reserved here; the client itself arrives
 * with the SDK issue. It must depend on nothing but fetch.
 */
export const SDK_VERSION = '0.1.0';
