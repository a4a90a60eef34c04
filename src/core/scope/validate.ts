/**
 * Shape checks for vocabulary values. Policies and requests are validated when they enter the
 * system, so enforcement can rely on well-formed rules (and still fails closed if one is not).
 */
import { AppError } from '../errors.js';
import { MAX_SCOPE_PATTERN_PROGRAM, patternError, patternSources, programSize } from '../regex.js';
import { MAX_INT32 } from '../storable.js';
import { isRecord } from './object.js';
import { canonicalTimeZone, parseDays, parseHours } from './time.js';
import type { Scope } from './types.js';
import { parseScopeKey } from './vocabulary.js';

const invalid = (path: string, problem: string): AppError =>
  new AppError('VALIDATION_ERROR', `Invalid scope${path ? ` key '${path}'` : ''}: ${problem}`, { path });

export const isCap = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0;

/** Uses are counted in 32-bit integer columns (max_uses, uses_remaining). */
export const isUseCount = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= MAX_INT32;

export const isStringList = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((v) => typeof v === 'string');

/**
 * Throws AppError('VALIDATION_ERROR', …, {path}) on the first malformed vocabulary value; `path`
 * is the scope key, with `[i]` for a list element. Keys outside the vocabulary are not checked.
 * Patterns must also be within the bounds of regex.ts, one by one and together (compiling them
 * is work done on the request path).
 */
export function validateScope(scope: unknown): asserts scope is Scope {
  if (!isRecord(scope)) throw invalid('', 'scope must be an object');
  let patternProgram = 0;
  for (const key of Object.keys(scope)) {
    const value = scope[key];
    const rule = parseScopeKey(key);
    switch (rule.kind) {
      case 'max_uses':
        if (!isUseCount(value)) throw invalid(key, `must be a positive integer up to ${MAX_INT32}`);
        break;
      case 'max':
      case 'max_total':
        if (!isCap(value)) throw invalid(key, 'must be a non-negative finite number');
        break;
      case 'allowed':
      case 'blocked':
        if (!Array.isArray(value)) throw invalid(key, 'must be an array of strings');
        value.forEach((v, i) => {
          if (typeof v !== 'string') throw invalid(`${key}[${i}]`, 'must be a string');
        });
        break;
      case 'pattern': {
        const sources = patternSources(value);
        if (sources === null)
          throw invalid(key, 'must be a regular expression string or a non-empty list of them');
        sources.forEach((source, i) => {
          const error = patternError(source);
          const path = Array.isArray(value) ? `${key}[${i}]` : key;
          if (error !== null) throw invalid(path, `invalid regular expression: ${error}`);
          patternProgram += programSize(source);
          if (patternProgram > MAX_SCOPE_PATTERN_PROGRAM) {
            throw invalid(
              path,
              `the scope's patterns together compile to more than ${MAX_SCOPE_PATTERN_PROGRAM} instructions`,
            );
          }
        });
        break;
      }
      case 'field_allowed':
        if (typeof value !== 'boolean') throw invalid(key, 'must be true or false');
        break;
      case 'allowed_hours':
        if (parseHours(value) === null) {
          throw invalid(key, 'must be {start, end} with hours 0–23 or "HH:MM" (end may be 24 / "24:00")');
        }
        break;
      case 'allowed_days':
        if (parseDays(value) === null) {
          throw invalid(key, 'must be a list of days: mon…sun, full names, or 0 (Sunday)…6');
        }
        break;
      case 'timezone':
        if (canonicalTimeZone(value) === null) throw invalid(key, 'must be an IANA time zone name');
        break;
      case 'unknown':
        break;
    }
  }
}
