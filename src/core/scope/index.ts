/**
 * Scope: the vocabulary of limits on a permission (DESIGN §6) — validation, enforcement of
 * actionDetails at use/verify, narrowing by policies and approvers, and display.
 * Pure: no I/O, no clock (the time of use is an argument).
 */
export { describeScope } from './describe.js';
export { checkActionDetails, checkTimeWindow, computeTotalIncrements } from './enforce.js';
export { narrowScope } from './narrow.js';
export type { CheckOptions, Scope, ScopeRow, ScopeViolation } from './types.js';
export { validateScope } from './validate.js';
export { DEFAULT_MAX_USES, parseScopeKey, type ScopeRule } from './vocabulary.js';
export { applyModifications, assertNarrowing } from './widening.js';
