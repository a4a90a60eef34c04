/**
 * A validator for the part of JSON Schema (OpenAPI 3.0 flavour) that /openapi.json uses, strict
 * where a client would be hurt: an object's properties must be declared (a schema with
 * `properties` and no `additionalProperties` allows no others), required ones must be there.
 * Returns the problems found, each naming its path; none means the value fits.
 */
export interface Schema {
  $ref?: string;
  type?: string | string[];
  nullable?: boolean;
  enum?: unknown[];
  const?: unknown;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  minimum?: number;
  maximum?: number;
  pattern?: string;
}

/** Keywords checked here, or only descriptive: anything else in a schema is an unsupported keyword. */
const KNOWN = new Set([
  '$ref',
  'type',
  'nullable',
  'enum',
  'const',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'anyOf',
  'oneOf',
  'allOf',
  'minimum',
  'maximum',
  'pattern',
  'description',
  'format',
  'default',
  'maxLength',
  'minLength',
  'maxItems',
  'minItems',
  'exclusiveMinimum',
  'exclusiveMaximum',
]);

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function typeMatches(expected: string, actual: string): boolean {
  return expected === actual || (expected === 'number' && actual === 'integer');
}

export function validate(
  schema: Schema,
  value: unknown,
  resolve: (ref: string) => Schema,
  path = '$',
): string[] {
  const unknownKeywords = Object.keys(schema).filter((k) => !KNOWN.has(k));
  if (unknownKeywords.length > 0)
    return [`${path}: unsupported schema keywords ${unknownKeywords.join(', ')}`];
  if (schema.$ref) return validate(resolve(schema.$ref), value, resolve, path);
  if (value === null && schema.nullable) return [];
  const problems: string[] = [];
  const actual = typeOf(value);
  if (schema.type !== undefined) {
    const types = Array.isArray(schema.type) ? schema.type : [schema.type];
    if (!types.some((t) => typeMatches(t, actual))) {
      return [`${path}: expected ${types.join(' or ')}${schema.nullable ? ' or null' : ''}, got ${actual}`];
    }
  }
  if (schema.enum && !schema.enum.some((e) => e === value)) {
    problems.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  }
  if ('const' in schema && schema.const !== value)
    problems.push(`${path}: expected ${JSON.stringify(schema.const)}`);
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum)
      problems.push(`${path}: below ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum)
      problems.push(`${path}: above ${schema.maximum}`);
  }
  if (typeof value === 'string' && schema.pattern && !new RegExp(schema.pattern).test(value)) {
    problems.push(`${path}: does not match ${schema.pattern}`);
  }
  if (actual === 'array' && schema.items) {
    (value as unknown[]).forEach((item, i) => {
      problems.push(...validate(schema.items as Schema, item, resolve, `${path}[${i}]`));
    });
  }
  if (actual === 'object' && (schema.properties || schema.additionalProperties !== undefined)) {
    const object = value as Record<string, unknown>;
    for (const name of schema.required ?? []) {
      if (!(name in object)) problems.push(`${path}.${name}: required but missing`);
    }
    const declared = schema.properties ?? {};
    for (const [name, v] of Object.entries(object)) {
      const own = declared[name];
      if (own) problems.push(...validate(own, v, resolve, `${path}.${name}`));
      else if (typeof schema.additionalProperties === 'object') {
        problems.push(...validate(schema.additionalProperties, v, resolve, `${path}.${name}`));
      } else if (schema.additionalProperties !== true) {
        problems.push(`${path}.${name}: sent but not in the schema`);
      }
    }
  }
  for (const sub of schema.allOf ?? []) problems.push(...validate(sub, value, resolve, path));
  for (const [keyword, list] of [
    ['anyOf', schema.anyOf],
    ['oneOf', schema.oneOf],
  ] as const) {
    if (!list) continue;
    const fits = list.filter((sub) => validate(sub, value, resolve, path).length === 0).length;
    if (keyword === 'anyOf' ? fits === 0 : fits !== 1) {
      const detail = list.map((sub) => validate(sub, value, resolve, path).join('; ')).join(' | ');
      problems.push(`${path}: fits ${fits} of the ${keyword} alternatives (${detail})`);
    }
  }
  return problems;
}
