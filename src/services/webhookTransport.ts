import { lookup as dnsLookup } from 'node:dns/promises';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { isIpLiteral, refusedAddressClass, urlHost } from '../core/webhookTarget.js';

/**
 * The network edge of webhook delivery. A hostname is resolved once, every address it resolves
 * to is checked, and the connection goes to the checked address (the HTTP client's own lookup is
 * replaced), so a DNS answer that changes between the check and the connect (rebinding) cannot
 * reach a private address. Redirects are not followed.
 */

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a hostname to all its addresses; injectable for tests. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) => {
  const answers = await dnsLookup(hostname, { all: true, verbatim: true });
  return answers.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export type TargetCheck =
  | { ok: true; url: URL; address: ResolvedAddress }
  | { ok: false; permanent: boolean; reason: string };

/** Resolves the target and refuses non-public addresses unless allowPrivate. */
export async function resolveTarget(
  raw: string,
  allowPrivate: boolean,
  resolve: Resolver,
): Promise<TargetCheck> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return { ok: false, permanent: true, reason: 'the webhook URL is not a URL' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, permanent: true, reason: 'the webhook URL is not http or https' };
  }
  const host = urlHost(url);
  let addresses: ResolvedAddress[];
  if (isIpLiteral(host)) {
    addresses = [{ address: host, family: host.includes(':') ? 6 : 4 }];
  } else {
    try {
      addresses = await resolve(host);
    } catch (err) {
      // A DNS failure may be passing: retried.
      return {
        ok: false,
        permanent: false,
        reason: `cannot resolve ${host}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      };
    }
  }
  const first = addresses[0];
  if (!first) return { ok: false, permanent: false, reason: `${host} resolved to no address` };
  if (!allowPrivate) {
    // One refused address refuses the host: which one a client would pick is not ours to guess.
    for (const a of addresses) {
      const refused = refusedAddressClass(a.address);
      if (refused) {
        return {
          ok: false,
          permanent: true,
          reason: `${host} resolves to a ${refused} address (${a.address}); private targets need WEBHOOK_ALLOW_PRIVATE=true`,
        };
      }
    }
  }
  return { ok: true, url, address: first };
}

export interface PostResult {
  status: number;
  /** The start of the response body, for the delivery's last error. */
  bodySnippet: string;
}

const SNIPPET_BYTES = 512;

/**
 * POSTs the body to the checked address. Resolves with the status of any HTTP answer; rejects
 * on connection errors and on the timeout, which covers the whole exchange.
 */
export function postToAddress(
  url: URL,
  address: ResolvedAddress,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Promise<PostResult> {
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if (options.all) callback(null, [{ address: address.address, family: address.family }]);
    else callback(null, address.address, address.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, result?: PostResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      if (err) reject(err);
      else resolve(result as PostResult);
    };
    const req = client.request(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      // No pooled connections: each delivery connects to the address it just checked.
      agent: false,
      lookup: pinned,
    });
    const timer = setTimeout(
      () => finish(new Error(`timed out after ${Math.round(timeoutMs / 1000)} s`)),
      timeoutMs,
    );
    req.on('error', (err: NodeJS.ErrnoException) => finish(new Error(err.code ?? err.message)));
    req.on('response', (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () =>
        finish(null, {
          status: res.statusCode ?? 0,
          bodySnippet: Buffer.concat(chunks).toString('utf8').slice(0, SNIPPET_BYTES),
        });
      res.on('data', (chunk: Buffer) => {
        if (size < SNIPPET_BYTES) chunks.push(chunk.subarray(0, SNIPPET_BYTES - size));
        size += chunk.length;
        if (size >= SNIPPET_BYTES) done();
      });
      res.on('end', done);
      res.on('error', done);
    });
    req.end(body);
  });
}
