import type { FastifyReply } from 'fastify';

/**
 * The web channel's pages (the approval page, the inbox, enrolment and sign-in): server-rendered
 * HTML with small scripts of our own, served by the API server. Nothing comes from elsewhere: the
 * Content-Security-Policy allows only our own scripts, styles and connections, no inline code, no
 * framing, and forms that post only to us. Chosen over a bundled front end because every page is
 * a few fields and buttons: there is nothing a framework would pay for, and no build step.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

export interface PageOptions {
  title: string;
  /** The page's body, already escaped (build it with `html`/`escapeHtml`). */
  body: string;
  /** Our scripts to load (names under /assets/, e.g. `webauthn.js`), in order, deferred. */
  scripts?: string[];
  /** The signed-in session's CSRF token, for the page's POSTs (web.js sends it as X-CSRF-Token). */
  csrfToken?: string;
}

/** A whole page: readable on a phone (viewport), our stylesheet, our scripts. */
export function renderPage({ title, body, scripts = [], csrfToken }: PageOptions): string {
  const tags = scripts.map((s) => `<script defer src="/assets/${escapeHtml(s)}"></script>`).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
${csrfToken ? `<meta name="csrf-token" content="${escapeHtml(csrfToken)}">\n` : ''}<title>${escapeHtml(title)} · Agent OTP</title>
<link rel="stylesheet" href="/assets/web.css">
${tags}
</head>
<body>
<header><a class="brand" href="/inbox">Agent OTP</a></header>
<main>
${body}
</main>
</body></html>
`;
}

/**
 * Sends a page with the headers every page has: never cached (it shows live state and, signed
 * in, an approver's data), never framed, never indexed, nothing sniffed or leaked in a referrer.
 */
export function sendPage(reply: FastifyReply, status: number, page: PageOptions): FastifyReply {
  return reply
    .status(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('x-robots-tag', 'noindex')
    .send(renderPage(page));
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A template tag that escapes every interpolated value (pass `raw()` for markup built here). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): string {
  return strings.reduce((out, s, i) => {
    if (i === 0) return s;
    const value = values[i - 1];
    const text = value instanceof Raw ? value.markup : escapeHtml(String(value ?? ''));
    return out + text + s;
  }, '');
}

class Raw {
  constructor(readonly markup: string) {}
}

/** Markup that `html` inserts as it is: only for strings built with `html` or `escapeHtml`. */
export const raw = (markup: string): Raw => new Raw(markup);
