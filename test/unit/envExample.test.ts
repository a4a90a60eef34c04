import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config.js';

/**
 * .env.example and the README's configuration table describe the same variables as the config
 * schema, in the same groups and order, with the schema's defaults: a variable added, renamed,
 * regrouped or re-defaulted in one place and not the others fails here.
 */

const root = new URL('../../', import.meta.url);
const SCHEMA = Object.keys(configSchema.shape);
/** The CLI's own variables: in .env.example (a CLI reads .env too), not in the service's schema. */
const CLI_GROUP = 'CLI';
const CLI_VARIABLES = ['AGENT_OTP_URL', 'AGENT_OTP_ADMIN_TOKEN'];

/** The schema's default for a variable, as it is written in the environment; undefined when unset. */
function schemaDefault(name: string): string | undefined {
  const field = configSchema.shape[name as keyof typeof configSchema.shape];
  const parsed = field.safeParse(undefined);
  return parsed.success && parsed.data !== undefined ? String(parsed.data) : undefined;
}

/** "Slack approvals (on when …)" → "Slack approvals". */
const groupName = (text: string) => text.replace(/\s*\(.*$/, '').trim();

interface EnvVariable {
  name: string;
  group: string;
  /** False for a commented-out line (unset by default). */
  set: boolean;
  value: string;
  /** The comment explaining it (shared by a run of variables). */
  explanation: string;
}

function parseEnvExample(): EnvVariable[] {
  const lines = readFileSync(new URL('.env.example', root), 'utf8').split('\n');
  const out: EnvVariable[] = [];
  let group = '';
  let explanation = '';
  let previousWasVariable = false;
  for (const line of lines) {
    const header = /^# --- (.+?) -*$/.exec(line);
    const variable = /^(# )?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (header) {
      group = groupName(header[1] ?? '');
      explanation = '';
    } else if (variable) {
      out.push({
        name: variable[2] ?? '',
        group,
        set: !variable[1],
        value: (variable[3] ?? '').trim(),
        explanation,
      });
    } else if (line.startsWith('#')) {
      // A comment after a variable starts the next variable's explanation.
      explanation = previousWasVariable ? line : `${explanation} ${line}`.trim();
    } else {
      explanation = '';
    }
    previousWasVariable = Boolean(variable);
  }
  return out;
}

interface ReadmeRow {
  names: string[];
  group: string;
  defaults: string;
  explanation: string;
}

function parseReadmeTable(): ReadmeRow[] {
  const readme = readFileSync(new URL('README.md', root), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Configuration\n'));
  const table = section.slice(section.indexOf('| Variable |')).split('\n\n')[0] ?? '';
  const rows: ReadmeRow[] = [];
  let group = '';
  for (const line of table.split('\n').slice(2)) {
    const cells = line.split(/(?<!\\)\|/).slice(1, -1);
    const [first = '', defaults = '', explanation = ''] = cells.map((c) => c.trim());
    const heading = /^\*\*(.+)\*\*$/.exec(first);
    if (heading) {
      group = groupName(heading[1] ?? '');
      continue;
    }
    rows.push({
      names: [...first.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1] ?? ''),
      group,
      defaults,
      explanation,
    });
  }
  return rows;
}

const env = parseEnvExample();
const serviceEnv = env.filter((v) => v.group !== CLI_GROUP);
const readme = parseReadmeTable();
const readmeNames = readme.flatMap((r) => r.names);

const groupsInOrder = (items: { group: string }[]) =>
  items.map((i) => i.group).filter((g, i, all) => g !== all[i - 1]);

describe('.env.example and the README configuration table', () => {
  it('.env.example has every variable of the config schema, and no other (but the CLI group)', () => {
    expect(serviceEnv.map((v) => v.name).sort()).toEqual([...SCHEMA].sort());
    expect(env.filter((v) => v.group === CLI_GROUP).map((v) => v.name)).toEqual(CLI_VARIABLES);
  });

  it('the README table has every variable of the config schema, and no other', () => {
    expect([...readmeNames].sort()).toEqual([...SCHEMA].sort());
  });

  it('both have the same groups, and the same variables in the same order', () => {
    expect(groupsInOrder(serviceEnv)).toEqual(groupsInOrder(readme));
    expect(new Set(groupsInOrder(readme)).size).toBe(groupsInOrder(readme).length);
    expect(serviceEnv.map((v) => `${v.group}: ${v.name}`)).toEqual(
      readme.flatMap((r) => r.names.map((n) => `${r.group}: ${n}`)),
    );
  });

  it('.env.example explains every variable in a comment above it', () => {
    for (const v of env) expect(v.explanation, v.name).toMatch(/^# .{10,}/);
  });

  it('.env.example sets exactly the variables with a default, to that default', () => {
    for (const v of serviceEnv) {
      const expected = schemaDefault(v.name);
      if (v.set) expect(v.value, v.name).toBe(expected);
      else expect(expected, `${v.name} has a default: set it to ${expected}`).toBeUndefined();
    }
  });

  it('the README gives each variable its default and says what it does', () => {
    for (const row of readme) {
      expect(row.explanation.length, row.names.join()).toBeGreaterThan(10);
      for (const name of row.names) {
        const expected = schemaDefault(name);
        if (expected !== undefined) expect(row.defaults, name).toContain(`\`${expected}\``);
        else expect(row.defaults.length, name).toBeGreaterThan(0);
      }
    }
  });
});
