import { isIPv4, isIPv6 } from 'node:net';
import { AppError } from './errors.js';

/**
 * Which webhook targets are refused (DESIGN §9): a webhook must not become a way to reach the
 * service's own network (SSRF). Every range of IANA's IPv4 and IPv6 Special-Purpose Address
 * Registries is refused (private, loopback, link-local, documentation, benchmarking, translation
 * and tunnelling prefixes, anycast service addresses…), and multicast, as literals (including
 * IPv4 embedded in IPv6: mapped, compatible, NAT64, 6to4, Teredo) and, at delivery, as whatever a
 * hostname resolves to. A special-purpose address is never a legitimate webhook receiver, so the
 * few the registry marks "globally reachable" (AS112, AMT, anycast relays) are refused too: the
 * one exception is NAT64 (64:ff9b::/96), the way IPv6-only clusters reach IPv4 hosts, which is
 * judged by the IPv4 address it carries.
 * Pure: the DNS resolution itself happens in the delivery service.
 * Registries as of 2026: https://www.iana.org/assignments/iana-ipv4-special-registry and
 * https://www.iana.org/assignments/iana-ipv6-special-registry.
 */

type Range = readonly [base: number, prefixBits: number, label: string];

const ipv4 = (a: number, b: number, c: number, d: number) => ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;

/** Most specific first is not needed: any match refuses, and the label names the range. */
const IPV4_REFUSED: readonly Range[] = [
  [ipv4(0, 0, 0, 0), 8, 'unspecified'], // "this network" (RFC 791)
  [ipv4(10, 0, 0, 0), 8, 'private'],
  [ipv4(100, 64, 0, 0), 10, 'private (shared address space)'],
  [ipv4(127, 0, 0, 0), 8, 'loopback'],
  [ipv4(169, 254, 0, 0), 16, 'link-local'],
  [ipv4(172, 16, 0, 0), 12, 'private'],
  // IETF protocol assignments: DS-Lite, PCP and TURN anycast, NAT64/DNS64 discovery.
  [ipv4(192, 0, 0, 0), 24, 'reserved (IETF protocol assignments)'],
  [ipv4(192, 0, 2, 0), 24, 'reserved (documentation)'],
  [ipv4(192, 31, 196, 0), 24, 'reserved (AS112)'],
  [ipv4(192, 52, 193, 0), 24, 'reserved (AMT)'],
  [ipv4(192, 88, 99, 0), 24, 'reserved (6to4 relay anycast)'],
  [ipv4(192, 168, 0, 0), 16, 'private'],
  [ipv4(192, 175, 48, 0), 24, 'reserved (AS112 direct delegation)'],
  [ipv4(198, 18, 0, 0), 15, 'reserved (benchmarking)'],
  [ipv4(198, 51, 100, 0), 24, 'reserved (documentation)'],
  [ipv4(203, 0, 113, 0), 24, 'reserved (documentation)'],
  [ipv4(224, 0, 0, 0), 4, 'multicast'],
  [ipv4(240, 0, 0, 0), 4, 'reserved'], // includes 255.255.255.255, limited broadcast
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

/** An IPv6 prefix written as its leading 16-bit groups, e.g. [0x2001, 0x0db8] with 32 bits. */
type Range6 = readonly [groups: readonly number[], prefixBits: number, label: string];

const IPV6_REFUSED: readonly Range6[] = [
  [[0x0064, 0xff9b, 0x0001], 48, 'private (local-use NAT64)'],
  [[0x0100, 0, 0, 0], 64, 'reserved (discard-only)'],
  [[0x0100, 0, 0, 1], 64, 'reserved (dummy prefix)'],
  [[0x2001, 0x0000], 32, 'reserved (Teredo)'],
  // The rest of the IETF protocol assignments: PCP/TURN/DNS-SD anycast, benchmarking, AMT,
  // AS112, ORCHID, drone remote ID.
  [[0x2001], 23, 'reserved (IETF protocol assignments)'],
  [[0x2001, 0x0db8], 32, 'reserved (documentation)'],
  [[0x2002], 16, 'reserved (6to4)'],
  [[0x2620, 0x004f, 0x8000], 48, 'reserved (AS112 direct delegation)'],
  [[0x3fff], 20, 'reserved (documentation)'],
  [[0x5f00], 16, 'reserved (SRv6 SIDs)'],
  [[0xfc00], 7, 'unique-local'],
  [[0xfe80], 10, 'link-local'],
  [[0xfec0], 10, 'private (site-local)'],
  [[0xff00], 8, 'multicast'],
];

function inRange6(b: Uint8Array, [groups, bits]: Range6): boolean {
  for (let bit = 0; bit < bits; bit += 8) {
    const group = groups[Math.floor(bit / 16)] ?? 0;
    const expected = bit % 16 === 0 ? group >> 8 : group & 0xff;
    const take = Math.min(8, bits - bit);
    const mask = (0xff << (8 - take)) & 0xff;
    if (((b[bit / 8] ?? 0) & mask) !== (expected & mask)) return false;
  }
  return true;
}

function classifyIPv6(b: Uint8Array): string | null {
  const b0 = b[0] ?? 0;
  const b1 = b[1] ?? 0;
  if (zeros(b, 0, 16)) return 'unspecified';
  if (zeros(b, 0, 15) && b[15] === 1) return 'loopback';
  // ::ffff:a.b.c.d (mapped): the IPv4 address decides, as a socket connects to it.
  if (zeros(b, 0, 10) && b[10] === 0xff && b[11] === 0xff) return classifyIPv4(v4At(b, 12));
  // ::a.b.c.d (compatible) is deprecated and routes nowhere; name a private one (clearer).
  if (zeros(b, 0, 12)) return classifyIPv4(v4At(b, 12)) ?? 'reserved (IPv4-compatible)';
  // 64:ff9b::/96 (NAT64) embeds an IPv4 address, which decides: DNS64 hands these out for
  // public IPv4 hosts, so they are the one translation prefix a real receiver may have.
  if (b0 === 0 && b1 === 0x64 && b[2] === 0xff && b[3] === 0x9b && zeros(b, 4, 12)) {
    return classifyIPv4(v4At(b, 12));
  }
  // 6to4 (2002::/16) embeds an IPv4 address in bits 16–48: name a private one (clearer); the
  // range refuses the rest.
  if (b0 === 0x20 && b1 === 0x02) return classifyIPv4(v4At(b, 2)) ?? 'reserved (6to4)';
  for (const range of IPV6_REFUSED) if (inRange6(b, range)) return range[2];
  // Outside 2000::/3 nothing is assigned for global unicast: no public receiver lives there.
  if ((b0 & 0xe0) !== 0x20) return 'reserved';
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
