import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describeRefusal, unchangedText } from '../../core/approval/refusals.js';
import { approverName } from '../../core/permissionView.js';
import type { DecisionResult } from '../../services/approvals/service.js';
import type { WebRequestView } from '../../services/approvals/web.js';
import type { WebSession } from '../../services/webSessions.js';
import { type actorName, stateInWords, stateLine } from '../card.js';
import { modificationsFromForm, type NarrowingInput, narrowingForm } from '../narrowing.js';
import type { WebChannelDeps } from './channel.js';
import { html, raw, sendPage } from './page.js';

/** Longest id or filter value read from a URL: anything longer names nothing of ours. */
const PARAM_MAX = 200;

const loginLink = (next: string) => `/login?next=${encodeURIComponent(next)}`;

/**
 * The approval page (GET /approve/:id), its decisions (POST /approve/:id/decision) and the inbox
 * (GET /inbox). A GET never changes anything — mail scanners and link previews open these URLs —
 * and every decision is a POST with the session's CSRF token, decided by ApprovalService.decideAs
 * with a `web` decider: the same rules as a chat click. Live updates: the page scripts poll the
 * `/state` JSON every 2 s (see approve.js for why polling).
 */
export function registerApprovalPages(app: FastifyInstance, deps: WebChannelDeps): void {
  app.get<{ Params: { id: string } }>('/approve/:id', async (request, reply) => {
    const id = request.params.id.slice(0, PARAM_MAX);
    const session = await deps.sessions.current(request);
    const view = await deps.requests.request(session?.approverId ?? null, id);
    if (!view) {
      return sendPage(reply, 404, {
        title: 'Request not found',
        body: html`<h1>Request not found</h1><p>No such request: <code>${id}</code>.</p>`,
      });
    }
    if (!session) return sendPage(reply, 200, signedOutPage(view));
    if (view.refusal && view.refusal.reason !== 'closed') {
      return sendPage(reply, 403, {
        title: 'Not yours to decide',
        csrfToken: session.csrfToken,
        body: html`<h1>Permission request <code>${view.permission.id}</code></h1>
${raw(statusLine(view))}
<p class="error">${describeRefusal(view.refusal)}</p>
<p><a href="/inbox">Your inbox</a></p>`,
      });
    }
    return sendPage(reply, 200, {
      title: `${view.card.action} for ${view.card.agentName}`,
      csrfToken: session.csrfToken,
      scripts: ['web.js', 'approve.js'],
      body: requestPage(view, session),
    });
  });

  app.get<{ Params: { id: string } }>('/approve/:id/state', async (request, reply) => {
    const session = await deps.sessions.current(request);
    if (!session) return json(reply, 401, { message: 'Sign in to see this request.' });
    const view = await deps.requests.request(session.approverId, request.params.id.slice(0, PARAM_MAX));
    if (!view) return json(reply, 404, { message: 'This request no longer exists.' });
    return json(reply, 200, stateOf(view));
  });

  app.post<{ Params: { id: string } }>('/approve/:id/decision', async (request, reply) => {
    const id = request.params.id.slice(0, PARAM_MAX);
    const body = (request.body ?? {}) as Record<string, unknown>;
    const decision = body.decision;
    const attempted = decision === 'deny' ? 'deny' : 'approve';
    const checked = await deps.sessions.forPost(request);
    if ('refused' in checked) {
      // A CSRF refusal is audited by the session store (web.csrf_refused); a POST without any
      // session is audited here, against the request it tried to decide.
      if (checked.refused === 'signed_out') {
        await deps.requests.auditRefusedPost(id, attempted, {
          ip: request.ip,
          userAgent: request.headers['user-agent'] ?? null,
        });
      }
      const message =
        checked.refused === 'csrf'
          ? 'This page is out of date or was not sent by us: reload it and try again.'
          : 'Your session has ended: sign in again.';
      return json(reply, 403, { outcome: 'refused', message });
    }
    const { session } = checked;
    const decider = {
      kind: 'web',
      approverId: session.approverId,
      credentialId: session.credentialId,
      verifiedAt: session.verifiedAt,
    } as const;
    if (decision !== 'approve' && decision !== 'deny' && decision !== 'approve_with_changes') {
      return json(reply, 400, {
        outcome: 'invalid',
        message: 'decision: expected approve, deny or approve_with_changes',
      });
    }
    const form = await deps.approvals.changesForm(id);
    if (form.kind === 'closed') {
      // Still through decideAs: the refusal is worded, and audited when the approver may not decide.
      return answer(
        reply,
        await deps.approvals.decideAs(decider, { permissionId: id, approved: decision !== 'deny' }),
        id,
      );
    }
    // The reason is checked as the chat modals check it; changes only for "approve with changes".
    const input: NarrowingInput = {
      caps: decision === 'approve_with_changes' ? stringRecord(body.caps) : {},
      lists: decision === 'approve_with_changes' ? listRecord(body.lists) : {},
      reason: typeof body.reason === 'string' ? body.reason : null,
    };
    const checkedForm = modificationsFromForm(form.card.scope, input);
    if (!checkedForm.ok) return json(reply, 422, { outcome: 'invalid', errors: checkedForm.errors });
    const result = await deps.approvals.decideAs(decider, {
      permissionId: id,
      approved: decision !== 'deny',
      ...(checkedForm.reason ? { reason: checkedForm.reason } : {}),
      ...(decision === 'approve_with_changes' ? { scopeModifications: checkedForm.scopeModifications } : {}),
    });
    return answer(reply, result, id);
  });

  app.get<{ Querystring: { agent?: string; action?: string } }>('/inbox', async (request, reply) => {
    const session = await deps.sessions.current(request);
    if (!session) {
      return sendPage(reply, 200, {
        title: 'Inbox',
        body: html`<h1>Inbox</h1><p><a class="button" href="${loginLink('/inbox')}">Sign in with a passkey</a> to see the requests you may decide.</p>`,
      });
    }
    const filter = filterOf(request);
    const inbox = await deps.requests.inbox(session.approverId, filter);
    return sendPage(reply, 200, {
      title: 'Inbox',
      csrfToken: session.csrfToken,
      scripts: ['web.js', 'inbox.js'],
      body: inboxPage(session, filter, inbox),
    });
  });

  app.get<{ Querystring: { agent?: string; action?: string } }>('/inbox/state', async (request, reply) => {
    const session = await deps.sessions.current(request);
    if (!session) return json(reply, 401, { message: 'Sign in to see your inbox.' });
    const inbox = await deps.requests.inbox(session.approverId, filterOf(request));
    return json(reply, 200, {
      pending: inbox.pending.map((v) => `${v.permission.id}:${v.permission.approvals.length}`),
      recent: inbox.recent.map((v) => `${v.permission.id}:${v.permission.status}`),
    });
  });
}

function filterOf(request: FastifyRequest<{ Querystring: { agent?: string; action?: string } }>) {
  const pick = (v: unknown) => (typeof v === 'string' && v.trim() ? v.trim().slice(0, PARAM_MAX) : undefined);
  const agentId = pick(request.query.agent);
  const action = pick(request.query.action);
  return { ...(agentId ? { agentId } : {}), ...(action ? { action } : {}) };
}

function json(reply: FastifyReply, status: number, body: unknown): FastifyReply {
  return reply.status(status).header('cache-control', 'no-store').send(body);
}

/** A decision's outcome in words (the chat notes' words), with the state the page now shows. */
function answer(reply: FastifyReply, result: DecisionResult, id: string): FastifyReply {
  switch (result.kind) {
    case 'decided': {
      const p = result.permission;
      const message =
        p.status === 'pending'
          ? `Your approval is counted (${result.approvals.count}/${result.approvals.required}).`
          : p.status === 'denied'
            ? 'Denied.'
            : 'Approved.';
      return json(reply, 200, { outcome: 'decided', status: p.status, message });
    }
    case 'unchanged':
      return json(reply, 200, {
        outcome: 'unchanged',
        status: result.permission.status,
        message: unchangedText(result.permission, result.approvals),
      });
    case 'refused': {
      const status =
        result.refusal.reason === 'not_found' ? 404 : result.refusal.reason === 'closed' ? 409 : 403;
      return json(reply, status, {
        outcome: 'refused',
        reason: result.refusal.reason,
        message: describeRefusal(result.refusal),
        // A step-up approval with an old sign-in: where to confirm the passkey again.
        ...(result.refusal.reason === 'passkey_stale' ? { login: loginLink(`/approve/${id}`) } : {}),
      });
    }
  }
}

const stringRecord = (value: unknown): Record<string, string> =>
  value && typeof value === 'object' && !Array.isArray(value)
    ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, typeof v === 'string' ? v : String(v)]))
    : {};

const listRecord = (value: unknown): Record<string, string[]> =>
  value && typeof value === 'object' && !Array.isArray(value)
    ? (Object.fromEntries(Object.entries(value)) as Record<string, string[]>)
    : {};

const webStyle = {
  actor: (a: Parameters<typeof actorName>[0]) => (a ? approverName(a) : 'someone'),
  time: (d: Date) => d.toISOString(),
  expiry: (d: Date) => d.toISOString(),
  reason: (t: string) => t,
};

/** What the page shows of a request's state, and what the poll answers. */
function stateOf(view: WebRequestView) {
  const { card, progress, permission } = view;
  return {
    status: permission.status,
    // The chat's state line without its leading emoji: a page need not rely on an emoji font.
    text:
      stateLine(card.state, webStyle)?.replace(/^\p{Extended_Pictographic}\uFE0F?\s*/u, '') ??
      `Waiting: ${stateInWords(card.state, webStyle.actor)}`,
    approvals: { count: progress.count, required: progress.required },
    votes: progress.votes.map((v) => `${v.decision === 'approve' ? 'Approved' : 'Denied'} by ${v.approver}`),
    expiresAt: permission.expiresAt.toISOString(),
  };
}

function statusLine(view: WebRequestView): string {
  const s = stateOf(view);
  return html`<p>Status: <strong id="status" data-status="${s.status}">${s.status}</strong></p>`;
}

/** Signed out: the status and the way in, nothing of the request itself (no action, no context). */
function signedOutPage(view: WebRequestView) {
  const { permission } = view;
  return {
    title: 'Permission request',
    body: html`<h1>Permission request <code>${permission.id}</code></h1>
${raw(statusLine(view))}
${raw(
  permission.status === 'pending'
    ? html`<p>Waiting for a decision until <time datetime="${permission.expiresAt.toISOString()}">${permission.expiresAt.toISOString()}</time>.</p>`
    : '<p>This request is no longer waiting for a decision.</p>',
)}
<p><a class="button" href="${loginLink(`/approve/${permission.id}`)}">Sign in with a passkey</a> to see it and decide.</p>`,
  };
}

function requestPage(view: WebRequestView, session: WebSession): string {
  const { card, permission } = view;
  const s = stateOf(view);
  const rows: [string, string][] = [
    ['Agent', card.agentName],
    ['Action', card.action],
    ...(card.resource ? ([['Resource', card.resource]] as [string, string][]) : []),
    ...card.scopeRows.map((r) => [r.label, r.value] as [string, string]),
    ...card.context.map((c) => [c.key === 'reason' ? 'Reason' : c.key, c.value] as [string, string]),
    ['Policy', card.policyName ?? '(default: approval needed)'],
  ];
  const table = rows.map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`).join('');
  const votes = s.votes.length
    ? s.votes.map((v) => html`<li>${v}</li>`).join('')
    : '<li class="muted">none yet</li>';
  const pending = permission.status === 'pending';
  return html`<h1>${card.action} <span class="muted">for ${card.agentName}</span></h1>
<p>Status: <strong id="status" data-status="${s.status}">${s.text}</strong></p>
<p id="deadline" data-expires="${s.expiresAt}" class="muted">${pending ? 'Decide before ' : 'Until '}<time datetime="${s.expiresAt}">${s.expiresAt}</time> <span id="time-left"></span></p>
<table>${raw(table)}</table>
<h2>Votes <span id="progress">${s.approvals.count}/${s.approvals.required}</span></h2>
<ul id="votes">${raw(votes)}</ul>
${raw(
  permission.approval?.passkey === true && pending
    ? '<p class="notice">This request needs a passkey confirmation: approving asks you to sign in with your passkey again when your sign-in is more than 5 minutes old.</p>'
    : '',
)}
<section id="decide" data-id="${permission.id}"${raw(pending ? '' : ' hidden')}>
<label for="reason">Reason (optional; shown to the agent)</label>
<textarea id="reason" rows="2" maxlength="2000"></textarea>
<p id="error-reason" class="error"></p>
<div class="actions">
<button type="button" class="approve" data-decision="approve">Approve</button>
<button type="button" class="deny" data-decision="deny">Deny</button>
</div>
${raw(changesForm(view))}
</section>
<p id="outcome" class="muted" role="status"></p>
<p class="muted">Signed in as ${session.approverName}. <a href="/inbox">Inbox</a></p>`;
}

/** "Approve with changes": the chat modals' inputs — lower a cap, untick list entries. */
function changesForm(view: WebRequestView): string {
  const form = narrowingForm(view.card.scope);
  if (form.caps.length === 0 && form.lists.length === 0) return '';
  const caps = form.caps
    .map(
      (c) => html`<label for="cap-${c.key}">${c.label} (at most ${c.current})</label>
<input id="cap-${c.key}" data-cap="${c.key}" inputmode="decimal" value="${c.current}">
<p id="error-${c.key}" class="error"></p>`,
    )
    .join('');
  const lists = form.lists
    .map(
      (l) => html`<fieldset data-list="${l.key}"><legend>${l.label}</legend>
${raw(l.values.map((v) => html`<label><input type="checkbox" checked value="${v}"> ${v}</label>`).join(''))}
<p id="error-${l.key}" class="error"></p></fieldset>`,
    )
    .join('');
  return html`<details id="changes"><summary>Approve with changes…</summary>
${raw(caps)}${raw(lists)}
<p id="error-_form" class="error"></p>
<div class="actions"><button type="button" class="primary" data-decision="approve_with_changes">Approve with these changes</button></div>
</details>`;
}

function inboxPage(
  session: WebSession,
  filter: { agentId?: string; action?: string },
  inbox: { pending: WebRequestView[]; recent: WebRequestView[] },
): string {
  const item = (v: WebRequestView) => {
    const s = stateOf(v);
    return html`<li><a href="/approve/${v.permission.id}"><strong>${v.card.action}</strong></a> · ${v.card.agentName}${raw(
      v.card.resource ? html` · <code>${v.card.resource}</code>` : '',
    )}<br><span class="muted">${s.text} · ${v.permission.createdAt.toISOString()}</span></li>`;
  };
  const pending = inbox.pending.length
    ? inbox.pending.map(item).join('')
    : '<li class="muted">Nothing waiting for you.</li>';
  const recent = inbox.recent.length
    ? inbox.recent.map(item).join('')
    : '<li class="muted">No decisions yet.</li>';
  return html`<h1>Inbox</h1>
<form method="get" action="/inbox" class="filters">
<label for="f-agent">Agent id</label><input id="f-agent" name="agent" value="${filter.agentId ?? ''}">
<label for="f-action">Action</label><input id="f-action" name="action" value="${filter.action ?? ''}">
<div class="actions"><button type="submit">Filter</button> <a class="button" href="/inbox">Clear</a></div>
</form>
<h2>Waiting for you</h2>
<ul class="requests" id="pending">${raw(pending)}</ul>
<h2>Recent decisions</h2>
<ul class="requests" id="recent">${raw(recent)}</ul>
<p class="muted">Signed in as ${session.approverName}.</p>`;
}
