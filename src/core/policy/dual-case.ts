import { z } from 'zod';

/** `scopeTemplate` → `scope_template`, `lessThanOrEqual` → `less_than_or_equal`. */
export const toSnakeCase = (camel: string): string => camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/**
 * A strict object schema whose keys (given in camelCase) are also accepted in snake_case, and whose
 * output always uses camelCase. The original Agent OTP documents snake_case while its SDK and
 * examples use camelCase, so policies written either way must load. Giving both spellings of one
 * key is refused rather than silently picking one, and unknown keys are refused so a typo such as
 * `lessthan` cannot turn a condition into a no-op.
 *
 * Multi-word keys must be optional: with two spellings, "required" would need a custom rule, and no
 * policy field needs one.
 */
export function dualCaseObject<S extends Record<string, z.ZodType>>(shape: S) {
  const accepted: Record<string, z.ZodType> = {};
  const pairs: Array<{ camel: string; snake: string }> = [];
  for (const [camel, schema] of Object.entries(shape)) {
    const snake = toSnakeCase(camel);
    accepted[camel] = schema;
    if (snake === camel) continue;
    if (!schema.safeParse(undefined).success) {
      throw new Error(`dualCaseObject: multi-word key "${camel}" must be optional`);
    }
    accepted[snake] = schema;
    pairs.push({ camel, snake });
  }

  return z
    .strictObject(accepted)
    .superRefine((raw, ctx) => {
      for (const { camel, snake } of pairs) {
        if (raw[camel] !== undefined && raw[snake] !== undefined) {
          ctx.addIssue({ code: 'custom', path: [snake], message: `given as both "${camel}" and "${snake}"` });
        }
      }
    })
    .transform((raw) => {
      const out: Record<string, unknown> = {};
      for (const camel of Object.keys(shape)) {
        const value = raw[camel] !== undefined ? raw[camel] : raw[toSnakeCase(camel)];
        if (value !== undefined) out[camel] = value;
      }
      return out as z.output<z.ZodObject<S>>;
    });
}
