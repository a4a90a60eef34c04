import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as sdk from '../../src/sdk/index.js';

const SDK_DIR = fileURLToPath(new URL('../../src/sdk/', import.meta.url));
const files = readdirSync(SDK_DIR).filter((f) => f.endsWith('.ts'));

/** Strips comments, so doc comments may mention Buffer or process without failing the check. */
const code = (file: string) =>
  readFileSync(path.join(SDK_DIR, file), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');

describe('the SDK runs wherever fetch and Web Crypto exist', () => {
  it.each(files)('%s imports nothing from outside src/sdk', (file) => {
    const specifiers = [
      ...code(file).matchAll(/\bfrom\s+['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]/g),
    ].map((m) => m[1] ?? m[2]);
    for (const specifier of specifiers) expect(specifier, file).toMatch(/^\.\/[\w.-]+\.js$/);
  });

  it.each(files)('%s uses no Node-only globals', (file) => {
    expect(code(file)).not.toMatch(/\b(Buffer|process|require|__dirname|setImmediate)\b|node:/);
  });

  it('exports every error class as a subclass of AgentOTPError, instanceof-safe and named', () => {
    const classes = Object.entries(sdk).filter(
      ([name, value]) => typeof value === 'function' && /Error$/.test(name) && name !== 'isAgentOTPError',
    ) as [string, new (message?: string) => Error][];
    expect(classes.length).toBeGreaterThanOrEqual(19);
    for (const [name, ErrorClass] of classes) {
      const err = new ErrorClass('x');
      expect(err, name).toBeInstanceOf(Error);
      expect(err, name).toBeInstanceOf(sdk.AgentOTPError);
      expect(err, name).toBeInstanceOf(ErrorClass);
      expect(sdk.isAgentOTPError(err)).toBe(true);
      expect(typeof (err as sdk.AgentOTPError).code, name).toBe('string');
      if (name !== 'TokenConsumedError') expect(err.name).toBe(name);
    }
    // The 0.1 SDK's constructor form still works.
    expect(new sdk.AgentOTPError('m', 'CUSTOM', { a: 1 })).toMatchObject({
      code: 'CUSTOM',
      details: { a: 1 },
    });
  });
});
