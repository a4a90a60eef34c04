import type { Command } from 'commander';
import { CliError, type OperatorClient } from '../client.js';
import { keyValues, table } from '../format.js';
import { confirm } from '../prompt.js';

interface ApproverDto {
  id: string;
  name: string;
  email: string | null;
  status: 'active' | 'disabled';
  identities: string[];
  createdAt: string;
  updatedAt: string;
}

interface PasskeyDto {
  credentialId: string;
  name: string;
  transports: string[];
  createdAt: string;
  lastUsedAt: string | null;
}

/** Commander's way to take a flag several times: `--slack U1 --slack U2`. */
const collect = (value: string, previous: string[]) => [...previous, value];

/** `U123` given to --slack is `slack:U123`; an identity already prefixed is kept as written. */
const prefixed = (channel: string, values: string[]) =>
  values.map((v) => (v.startsWith(`${channel}:`) ? v : `${channel}:${v}`));

const path = (ref: string) => `/api/v1/approvers/${encodeURIComponent(ref)}`;

const describe = (a: ApproverDto) => `${a.name} (${a.id}${a.status === 'disabled' ? ', disabled' : ''})`;

function show(a: ApproverDto): string {
  return keyValues({
    id: a.id,
    name: a.name,
    email: a.email,
    status: a.status,
    identities: a.identities.length ? a.identities.join(' ') : '(none)',
    createdAt: a.createdAt,
    updatedAt: a.updatedAt,
  });
}

async function listAll(client: OperatorClient): Promise<ApproverDto[]> {
  const all: ApproverDto[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : '?limit=200';
    const page: { approvers: ApproverDto[]; nextCursor: string | null } = await client.call(
      'GET',
      `/api/v1/approvers${query}`,
    );
    all.push(...page.approvers);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

interface IdentityFlags {
  slack: string[];
  discord: string[];
  operator: string[];
  identity: string[];
}

const identitiesOf = (opts: IdentityFlags) => [
  ...prefixed('slack', opts.slack),
  ...prefixed('discord', opts.discord),
  ...prefixed('operator', opts.operator),
  ...opts.identity,
];

/**
 * Approver accounts: one person of several channel identities. An account makes those identities
 * one vote in a quorum and one person for the self-approval ban; who may approve is still set by
 * the approver lists of each channel and policy.
 */
export function registerApproverCommands(
  program: Command,
  client: () => OperatorClient,
  print: (text: string) => void,
): void {
  program
    .command('approver:create')
    .description('Create an approver account: one person of several channel identities (one vote)')
    .requiredOption('--name <name>', 'the person (letters, digits, . _ -)')
    .option('--email <address>', 'their email address')
    .option('--slack <userId>', 'a Slack user id (U…); repeatable', collect, [])
    .option('--discord <userId>', 'a Discord user id; repeatable', collect, [])
    .option('--operator <keyId>', 'an operator key id (opk_…) they use; repeatable', collect, [])
    .option('--identity <channel:id>', 'an identity on another channel; repeatable', collect, [])
    .option('--json', 'print JSON')
    .action(async (opts: IdentityFlags & { name: string; email?: string; json?: boolean }) => {
      const created = await client().call<ApproverDto>('POST', '/api/v1/approvers', {
        name: opts.name,
        ...(opts.email === undefined ? {} : { email: opts.email }),
        identities: identitiesOf(opts),
      });
      if (opts.json) return print(JSON.stringify(created, null, 2));
      print(show(created));
    });

  program
    .command('approver:invite [approver]')
    .description(
      'Print a one-time link (valid 24 h) where an approver creates a passkey to approve on the web; with --name, create the approver first',
    )
    .option('--name <name>', 'create this approver, then invite them')
    .option('--email <address>', 'with --name: their email address')
    .option('--slack <userId>', 'with --name: a Slack user id (U…); repeatable', collect, [])
    .option('--discord <userId>', 'with --name: a Discord user id; repeatable', collect, [])
    .option('--operator <keyId>', 'with --name: an operator key id (opk_…); repeatable', collect, [])
    .option('--identity <channel:id>', 'with --name: an identity on another channel; repeatable', collect, [])
    .option('--json', 'print JSON')
    .action(
      async (
        ref: string | undefined,
        opts: IdentityFlags & { name?: string; email?: string; json?: boolean },
      ) => {
        if ((ref === undefined) === (opts.name === undefined))
          throw new CliError(
            'Name the approver to invite (approver:invite alice), or create one with --name',
          );
        const flags = [opts.email, ...identitiesOf(opts)].filter((v) => v !== undefined);
        if (ref !== undefined && flags.length)
          throw new CliError(
            '--email and the identity flags go with --name (a new approver); use approver:update',
          );
        let target = ref as string;
        if (opts.name !== undefined) {
          const created = await client().call<ApproverDto>('POST', '/api/v1/approvers', {
            name: opts.name,
            ...(opts.email === undefined ? {} : { email: opts.email }),
            identities: identitiesOf(opts),
          });
          target = created.id;
        }
        const invitation = await client().call<{
          approverId: string;
          name: string;
          url: string;
          expiresAt: string;
        }>('POST', `${path(target)}/invitations`);
        if (opts.json) return print(JSON.stringify(invitation, null, 2));
        print(
          `Send this link to ${invitation.name} (${invitation.approverId}); it works once, until ${invitation.expiresAt}:\n${invitation.url}`,
        );
      },
    );

  program
    .command('approver:passkeys <approver>')
    .description("List an approver's passkeys (by id or name)")
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { json?: boolean }) => {
      const { passkeys } = await client().call<{ passkeys: PasskeyDto[] }>('GET', `${path(ref)}/passkeys`);
      if (opts.json) return print(JSON.stringify(passkeys, null, 2));
      print(
        table(
          passkeys.map((p) => ({ ...p, lastUsedAt: p.lastUsedAt ?? 'never' })),
          ['credentialId', 'name', 'createdAt', 'lastUsedAt'],
        ),
      );
    });

  program
    .command('approver:passkey-remove <approver> <credentialId>')
    .description("Remove one of an approver's passkeys (a lost device); its web sessions end")
    .option('--json', 'print JSON')
    .action(async (ref: string, credentialId: string, opts: { json?: boolean }) => {
      const removed = await client().call<PasskeyDto>('POST', `${path(ref)}/passkeys/remove`, {
        credentialId,
      });
      if (opts.json) return print(JSON.stringify(removed, null, 2));
      print(`Removed the passkey "${removed.name}" (${removed.credentialId}).`);
    });

  program
    .command('approver:list')
    .description('List approver accounts')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const all = await listAll(client());
      if (opts.json) return print(JSON.stringify(all, null, 2));
      print(
        table(
          all.map((a) => ({ ...a, identities: a.identities.join(' ') || '(none)' })),
          ['id', 'name', 'status', 'identities', 'email'],
        ),
      );
    });

  program
    .command('approver:get <approver>')
    .description('Show one approver account (by id or name)')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { json?: boolean }) => {
      const approver = await client().call<ApproverDto>('GET', path(ref));
      if (opts.json) return print(JSON.stringify(approver, null, 2));
      print(show(approver));
    });

  program
    .command('approver:update <approver>')
    .description('Rename an approver, change their email, add or remove identities (by id or name)')
    .option('--name <name>', 'rename them')
    .option('--email <address>', 'their email address')
    .option('--clear-email', 'remove the email address')
    .option(
      '--add <channel:id>',
      'link an identity (slack:U…, discord:…, operator:opk_…); repeatable',
      collect,
      [],
    )
    .option('--remove <channel:id>', 'unlink an identity; repeatable', collect, [])
    .option('--json', 'print JSON')
    .action(
      async (
        ref: string,
        opts: {
          name?: string;
          email?: string;
          clearEmail?: boolean;
          add: string[];
          remove: string[];
          json?: boolean;
        },
      ) => {
        if (opts.email !== undefined && opts.clearEmail)
          throw new CliError('Give --email or --clear-email, not both');
        const body = {
          ...(opts.name === undefined ? {} : { name: opts.name }),
          ...(opts.email === undefined ? {} : { email: opts.email }),
          ...(opts.clearEmail ? { email: null } : {}),
          ...(opts.add.length ? { addIdentities: opts.add } : {}),
          ...(opts.remove.length ? { removeIdentities: opts.remove } : {}),
        };
        if (Object.keys(body).length === 0)
          throw new CliError('Nothing to change: pass --name, --email, --clear-email, --add or --remove');
        const updated = await client().call<ApproverDto>('PATCH', path(ref), body);
        if (opts.json) return print(JSON.stringify(updated, null, 2));
        print(show(updated));
      },
    );

  for (const verb of ['disable', 'enable'] as const) {
    program
      .command(`approver:${verb} <approver>`)
      .description(
        verb === 'disable'
          ? 'Disable an approver account (by id or name); its identities still count as one person'
          : 'Enable a disabled approver account again (by id or name)',
      )
      .option('--json', 'print JSON')
      .action(async (ref: string, opts: { json?: boolean }) => {
        const approver = await client().call<ApproverDto>('POST', `${path(ref)}/${verb}`);
        if (opts.json) return print(JSON.stringify(approver, null, 2));
        print(`${verb === 'disable' ? 'Disabled' : 'Enabled'} approver ${describe(approver)}.`);
      });
  }

  program
    .command('approver:delete <approver>')
    .description('Delete an approver account (by id or name): its identities are no longer one person')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { yes?: boolean; json?: boolean }) => {
      const approver = await client().call<ApproverDto>('GET', path(ref));
      const linked = approver.identities.length ? ` and unlink ${approver.identities.join(', ')}` : '';
      if (!(await confirm(`Delete approver ${describe(approver)}${linked}?`, { yes: opts.yes })))
        throw new CliError('Not confirmed: nothing was deleted.', 'NOT_CONFIRMED');
      const deleted = await client().call<ApproverDto>('DELETE', path(approver.id));
      if (opts.json) return print(JSON.stringify(deleted, null, 2));
      print(`Deleted approver ${describe(deleted)}.`);
    });
}
