import { z } from 'zod';
import { credentialId } from '../../chat/web/auth.js';
import type { WebAuthService } from '../../services/webAuth.js';
import type { Passkey } from '../../store/webAuthRepository.js';
import type { Router } from '../route.js';

const idOrName = z.object({ id: z.string().min(1).max(100) }).strict();

const passkeyResponse = z.object({
  credentialId: z.string(),
  name: z.string(),
  transports: z.array(z.string()),
  createdAt: z.string(),
  lastUsedAt: z.string().nullable(),
});

const passkeyDto = (p: Passkey) => ({
  credentialId: p.credentialId,
  name: p.name,
  transports: p.transports,
  createdAt: p.createdAt.toISOString(),
  lastUsedAt: p.lastUsedAt?.toISOString() ?? null,
});

/** Operators' side of web sign-in: invitations, and an approver's passkeys. */
export function registerApproverWebAuthRoutes(route: Router, webAuth: WebAuthService): void {
  route({
    method: 'POST',
    url: '/api/v1/approvers/:id/invitations',
    auth: 'operator',
    tag: 'approvers',
    summary:
      'Invite an approver to enrol a passkey: a one-time link, valid 24 hours, shown only in this answer (needs PUBLIC_URL)',
    params: idOrName,
    successStatus: 201,
    response: z.object({
      approverId: z.string(),
      name: z.string(),
      url: z.string(),
      expiresAt: z.string(),
    }),
    async handler({ params, origin }) {
      const { approver, url, expiresAt } = await webAuth.invite(params.id, origin);
      return {
        data: { approverId: approver.id, name: approver.name, url, expiresAt: expiresAt.toISOString() },
      };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/approvers/:id/passkeys',
    auth: 'operator',
    tag: 'approvers',
    summary: "List an approver's passkeys (public keys are not shown)",
    params: idOrName,
    response: z.object({ passkeys: z.array(passkeyResponse) }),
    async handler({ params }) {
      const { passkeys } = await webAuth.passkeysOf(params.id);
      return { data: { passkeys: passkeys.map(passkeyDto) } };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/approvers/:id/passkeys/remove',
    auth: 'operator',
    tag: 'approvers',
    summary:
      "Remove one of an approver's passkeys (a lost device); its web sessions end. Credential ids can be long, so it is named in the body",
    params: idOrName,
    body: z.object({ credentialId }).strict(),
    response: passkeyResponse,
    async handler({ params, body, origin }) {
      return {
        data: passkeyDto(await webAuth.removePasskey(params.id, body.credentialId, origin, 'operator')),
      };
    },
  });
}
