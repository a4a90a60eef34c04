/**
 * Maximum sizes of what is stored and not already bounded where it is declared (the HTTP
 * schemas in src/http/routes hold the others). Every one is listed in README "Limits". Lengths
 * count characters (UTF-16 code units); "as JSON" is the length of the value serialised.
 */

/** Policy definitions (API and POLICIES_FILE alike). */
export const POLICY_LIMITS = {
  id: 64,
  name: 200,
  description: 2000,
  agent: 200,
  reason: 2000,
  conditionsJson: 32_768,
  scopeTemplateJson: 32_768,
  /** Entries of approval.channels, approval.approvers, approval.escalate_to, and each entry's length. */
  approvalListEntries: 50,
  approvalEntry: 200,
  quorum: 100,
  /** remind_after, escalate_after: no longer than the longest approval timeout (7 days). */
  approvalDelaySeconds: 7 * 86400,
} as const;

/** A decision's or revocation's reason (operator API, Slack and Discord forms). */
export const REASON_MAX_CHARS = 2000;

/**
 * Request metadata kept in audit rows: longer values are cut, not refused (a client's
 * User-Agent is not its caller's choice, and Node already caps the headers at 16 KiB).
 */
export const USER_AGENT_MAX_CHARS = 512;
export const IP_MAX_CHARS = 100;

/** JSON.stringify(value).length ≤ max, without throwing on a value JSON cannot represent. */
export function jsonLengthAtMost(value: unknown, max: number): boolean {
  try {
    return (JSON.stringify(value) ?? '').length <= max;
  } catch {
    return false;
  }
}
