/**
 * The WebAuthn relying party this server is, from PUBLIC_URL: its id (the host name passkeys are
 * bound to) and the origin browsers must report. Browsers offer passkeys only in a secure
 * context, so PUBLIC_URL must be HTTPS — except on loopback, which browsers treat as secure (tests
 * and a laptop). Without a usable PUBLIC_URL nobody can enrol or sign in on the web.
 */
export interface RelyingParty {
  id: string;
  origin: string;
  /** The base of links we hand out (PUBLIC_URL without a trailing slash). */
  baseUrl: string;
  /** Cookies are Secure except over plain http on loopback (where a browser would drop them). */
  secureCookies: boolean;
}

export type RelyingPartyResult =
  | { rp: RelyingParty; problem?: undefined }
  | { rp?: undefined; problem: string };

const LOOPBACK = /^(localhost|.+\.localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK.test(hostname);
}

export function relyingParty(publicUrl: string | undefined): RelyingPartyResult {
  if (!publicUrl) return { problem: 'PUBLIC_URL is not set: passkeys are bound to it' };
  let url: URL;
  try {
    url = new URL(publicUrl);
  } catch {
    return { problem: 'PUBLIC_URL is not a URL' };
  }
  const loopback = isLoopbackHost(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    return {
      problem: `PUBLIC_URL ${url.origin} is not HTTPS: browsers offer passkeys only over HTTPS (or on loopback)`,
    };
  }
  return {
    rp: {
      id: url.hostname.replace(/^\[|\]$/g, ''),
      origin: url.origin,
      baseUrl: publicUrl.replace(/\/+$/, ''),
      secureCookies: url.protocol === 'https:',
    },
  };
}
