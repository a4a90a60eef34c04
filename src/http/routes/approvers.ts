import { z } from 'zod';
import type { ApproverService } from '../../services/approvers.js';
import { IDENTITIES_MAX } from '../../services/approvers.js';
import type { ApproverAccount } from '../../store/approverRepository.js';
import { decodeCursor, nextCursor, pageFields } from '../cursor.js';
import type { Router } from '../route.js';

/** An id (`apr_…`) or a name: the service tells them apart. */
const idOrName = z.object({ id: z.string().min(1).max(100) }).strict();
const identity = z.string().min(1).max(200);
const identities = z.array(identity).max(IDENTITIES_MAX);
const email = z.string().max(254);

const createBody = z
  .object({
    name: z.string().min(1).max(64),
    email: email.nullable().optional(),
    identities: identities.optional(),
  })
  .strict();

const updateBody = z
  .object({
    name: z.string().min(1).max(64).optional(),
    email: email.nullable().optional(),
    addIdentities: identities.optional(),
    removeIdentities: identities.optional(),
  })
  .strict();

const listQuery = z
  .object({
    ...pageFields,
  })
  .strict();

const approverResponse = z.object({
  id: z.string(),
  name: z.string(),
  email: z.string().nullable(),
  status: z.enum(['active', 'disabled']),
  /** `slack:U…`, `discord:…`, `operator:opk_…`: one person, one vote, across all of them. */
  identities: z.array(z.string()),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export function approverDto(a: ApproverAccount) {
  return {
    id: a.id,
    name: a.name,
    email: a.email,
    status: a.status,
    identities: a.identities,
    createdAt: a.createdAt.toISOString(),
    updatedAt: a.updatedAt.toISOString(),
  };
}

export function registerApproverRoutes(route: Router, approvers: ApproverService): void {
  route({
    method: 'POST',
    url: '/api/v1/approvers',
    auth: 'operator',
    tag: 'approvers',
    summary:
      'Create an approver account: one person of several channel identities (one vote in a quorum, one self-approval ban)',
    body: createBody,
    successStatus: 201,
    response: approverResponse,
    async handler({ body, origin }) {
      return { data: approverDto(await approvers.create(body, origin)) };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/approvers',
    auth: 'operator',
    tag: 'approvers',
    summary: 'List approver accounts, oldest first',
    query: listQuery,
    response: z.object({ approvers: z.array(approverResponse), nextCursor: z.string().nullable() }),
    async handler({ query }) {
      const page = await approvers.list({
        limit: query.limit,
        after: query.cursor ? decodeCursor(query.cursor) : undefined,
      });
      return { data: { approvers: page.map(approverDto), nextCursor: nextCursor(page, query.limit) } };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/approvers/:id',
    auth: 'operator',
    tag: 'approvers',
    summary: 'Get an approver account, by id or by name',
    params: idOrName,
    response: approverResponse,
    async handler({ params }) {
      return { data: approverDto(await approvers.get(params.id)) };
    },
  });

  route({
    method: 'PATCH',
    url: '/api/v1/approvers/:id',
    auth: 'operator',
    tag: 'approvers',
    summary: 'Rename an approver, change their email, add or remove identities (by id or name)',
    params: idOrName,
    body: updateBody,
    response: approverResponse,
    async handler({ params, body, origin }) {
      return { data: approverDto(await approvers.update(params.id, body, origin)) };
    },
  });

  for (const verb of ['disable', 'enable'] as const) {
    route({
      method: 'POST',
      url: `/api/v1/approvers/:id/${verb}`,
      auth: 'operator',
      tag: 'approvers',
      summary:
        verb === 'disable'
          ? 'Disable an approver account; its identities still count as one person'
          : 'Enable a disabled approver account again',
      params: idOrName,
      response: approverResponse,
      async handler({ params, origin }) {
        const approver =
          verb === 'disable'
            ? await approvers.disable(params.id, origin)
            : await approvers.enable(params.id, origin);
        return { data: approverDto(approver) };
      },
    });
  }

  route({
    method: 'DELETE',
    url: '/api/v1/approvers/:id',
    auth: 'operator',
    tag: 'approvers',
    summary:
      'Delete an approver account: its identities are no longer one person (the audit trail keeps its history)',
    params: idOrName,
    response: approverResponse,
    async handler({ params, origin }) {
      return { data: approverDto(await approvers.delete(params.id, origin)) };
    },
  });
}
