import { isIPv4, isIPv6 } from 'node:net';
import { AppError } from './errors.js';

/**
 * Which webhook targets are refused (DESIGN §9): a webhook must not become a way to reach the
 * service's own network (SSRF). Private, loopback, link-local, unique-local and other
 * non-public addresses are refused, as IPv4 and IPv6 literals (including IPv4 embedded in IPv6:
 * mapped, compatible, NAT64, 6to4) and, at delivery, as whatever a hostname resolves to.
 * Pure: the DNS resolution itself happens in the delivery service.
 */

type Range = readonly [base: number, prefixBits: number, label: string];

const ipv4 = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

const IPV4_REFUSED: readonly Range[] = [
  [ipv4(0, 0, 0, 0), 8, 'unspecified'],
  [ipv4(10, 0, 0, 0), 8, 'private'],
  [ipv4(100, 64, 0, 0), 10, 'private (shared address space)'],
  [ipv4(127, 0, 0, 0), 8, 'loopback'],
  [ipv4(169, 254, 0, 0), 16, 'link-local'],
  [ipv4(172, 16, 0, 0), 12, 'private'],
  [ipv4(192, 0, 0, 0), 24, 'reserved'],
  [ipv4(192, 168, 0, 0), 16, 'private'],
  [ipv4(198, 18, 0, 0), 15, 'reserved (benchmarking)'],
  [ipv4(224, 0, 0, 0), 4, 'multicast'],
  [ipv4(240, 0, 0, 0), 4, 'reserved'],
];

function parseIPv4(text: string): number | null {
  if (!isIPv4(text)) return null;
  const parts = text.split('.').map(Number);
  return ipv4(parts[0] ?? 0, parts[1] ?? 0, parts[2] ?? 0, parts[3] ?? 0);
}

function classifyIPv4(value: number): string | null {
  for (const [base, bits, label] of IPV4_REFUSED) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    if ((value & mask) >>> 0 === base) return label;
  }
  return null;
}

/** 16 bytes of an IPv6 address (zone id dropped), or null. */
function parseIPv6(text: string): Uint8Array | null {
  let address = text.split('%')[0] ?? '';
  if (!isIPv6(address)) return null;
  // A trailing dotted quad (::ffff:1.2.3.4) becomes the two hex groups it stands for.
  const lastColon = address.lastIndexOf(':');
  const last = address.slice(lastColon + 1);
  if (last.includes('.')) {
    const v4 = parseIPv4(last);
    if (v4 === null) return null;
    address = `${address.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const halves = address.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const left = groups(halves[0] ?? '');
  const right = halves.length === 2 ? groups(halves[1] ?? '') : [];
  const fill = halves.length === 2 ? 8 - left.length - right.length : 0;
  if (fill < 0) return null;
  const all = [...left, ...new Array<number>(fill).fill(0), ...right];
  if (all.length !== 8) return null;
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    bytes[i * 2] = (g >> 8) & 0xff;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}

const v4At = (b: Uint8Array, offset: number) =>
  ipv4(b[offset] ?? 0, b[offset + 1] ?? 0, b[offset + 2] ?? 0, b[offset + 3] ?? 0);

const zeros = (b: Uint8Array, from: number, to: number) => b.subarray(from, to).every((x) => x === 0);

function classifyIPv6(b: Uint8Array): string | null {
  const b0 = b[0] ?? 0;
  const b1 = b[1] ?? 0;
  if (zeros(b, 0, 16)) return 'unspecified';
  if (zeros(b, 0, 15) && b[15] === 1) return 'loopback';
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated): the IPv4 address decides.
  if (zeros(b, 0, 10) && ((b[10] === 0xff && b[11] === 0xff) || (b[10] === 0 && b[11] === 0))) {
    return classifyIPv4(v4At(b, 12));
  }
  // 64:ff9b::/96 (NAT64) embeds an IPv4 address; 64:ff9b:1::/48 is for local use.
  if (b0 === 0 && b1 === 0x64 && b[2] === 0xff && b[3] === 0x9b) {
    if (zeros(b, 4, 12)) return classifyIPv4(v4At(b, 12));
    if (b[4] === 0 && b[5] === 1) return 'private (local-use NAT64)';
  }
  // 2002::/16 (6to4) embeds an IPv4 address in bits 16–48.
  if (b0 === 0x20 && b1 === 0x02) return classifyIPv4(v4At(b, 2));
  if (b0 === 0x01 && b1 === 0x00 && zeros(b, 2, 8)) return 'reserved (discard-only)';
  if ((b0 & 0xfe) === 0xfc) return 'unique-local';
  if (b0 === 0xfe && (b1 & 0xc0) === 0x80) return 'link-local';
  if (b0 === 0xfe && (b1 & 0xc0) === 0xc0) return 'private (site-local)';
  if (b0 === 0xff) return 'multicast';
  return null;
}

/**
 * Why an IP address may not receive webhooks ("loopback", "private", …), or null for a public
 * address. Anything that is not an IP address is refused too: only addresses are classified.
 */
export function refusedAddressClass(address: string): string | null {
  const v4 = parseIPv4(address);
  if (v4 !== null) return classifyIPv4(v4);
  const v6 = parseIPv6(address);
  if (v6 !== null) return classifyIPv6(v6);
  return 'not an IP address';
}

/** The URL's host as DNS or an IP literal sees it: no IPv6 brackets, no trailing dot. */
export function urlHost(url: URL): string {
  let host = url.hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host;
}

export const isIpLiteral = (host: string) => isIPv4(host) || isIPv6(host.split('%')[0] ?? '');

/**
 * What can be refused without DNS: a URL that is not http(s), `localhost` (and `*.localhost`,
 * RFC 6761), and IP literals in refused ranges. Hostnames are checked again at delivery, after
 * resolving them. Returns the reason, or null.
 */
export function literalWebhookTargetProblem(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'must be a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http or https URL';
  const host = urlHost(url);
  if (host === 'localhost' || host.endsWith('.localhost')) {
    return 'must not point at localhost (set WEBHOOK_ALLOW_PRIVATE=true to allow private targets)';
  }
  if (isIpLiteral(host)) {
    const refused = refusedAddressClass(host);
    if (refused) {
      return `must not point at a ${refused} address (set WEBHOOK_ALLOW_PRIVATE=true to allow private targets)`;
    }
  }
  return null;
}

/** For requests and agent settings: a refused literal target is a 400 naming the field. */
export function assertWebhookTargetAllowed(url: string, allowPrivate: boolean, field = 'webhookUrl'): void {
  if (allowPrivate) return;
  const problem = literalWebhookTargetProblem(url);
  if (problem) {
    throw new AppError('VALIDATION_ERROR', `Invalid request: ${field}: ${problem}`, {
      issues: [{ path: field, message: problem }],
    });
  }
}
