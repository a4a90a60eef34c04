import { AppError } from '../errors.js';

/** One problem in a policy set; `path` reads like `policies[2].conditions.scope.amount.less_than`. */
export interface PolicyIssue {
  path: string;
  message: string;
}

/** The one shape of every policy error: message names the first path, details list them all. */
export function invalidPolicy(issues: readonly PolicyIssue[]): AppError {
  const first = issues[0] ?? { path: '', message: 'invalid policy set' };
  const where = first.path === '' ? 'Invalid policy set' : `Invalid policy at ${first.path}`;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return new AppError('INVALID_POLICY', `${where}: ${first.message}${more}`, {
    path: first.path,
    issues: [...issues],
  });
}

export const invalidPolicyAt = (path: string, message: string): AppError =>
  invalidPolicy([{ path, message }]);
