import { describe, expect, it } from 'vitest';
import { literalWebhookTargetProblem, refusedAddressClass } from '../../../src/core/webhookTarget.js';

describe('webhook targets', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private (shared address space)'],
    ['169.254.169.254', 'link-local'],
    ['0.0.0.0', 'unspecified'],
    ['255.255.255.255', 'reserved'],
    ['224.0.0.1', 'multicast'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::127.0.0.1', 'loopback'],
    ['64:ff9b::a00:1', 'private'],
    ['2002:c0a8:0101::1', 'private'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['fd00::1', 'unique-local'],
    ['fc12::', 'unique-local'],
    ['ff02::1', 'multicast'],
    ['example.com', 'not an IP address'],
    // Every other range of IANA's special-purpose registries (issue 11, defect 13).
    ['192.0.0.9', 'reserved (IETF protocol assignments)'],
    ['192.0.2.10', 'reserved (documentation)'],
    ['192.31.196.1', 'reserved (AS112)'],
    ['192.52.193.1', 'reserved (AMT)'],
    ['192.88.99.1', 'reserved (6to4 relay anycast)'],
    ['192.175.48.6', 'reserved (AS112 direct delegation)'],
    ['198.19.255.1', 'reserved (benchmarking)'],
    ['198.51.100.7', 'reserved (documentation)'],
    ['203.0.113.200', 'reserved (documentation)'],
    ['2001::1', 'reserved (Teredo)'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved (Teredo)'],
    ['2001:1::1', 'reserved (IETF protocol assignments)'],
    ['2001:2::5', 'reserved (IETF protocol assignments)'],
    ['2001:1ff::1', 'reserved (IETF protocol assignments)'],
    ['2001:db8::1', 'reserved (documentation)'],
    ['3fff::1', 'reserved (documentation)'],
    ['2002:808:808::1', 'reserved (6to4)'],
    ['2620:4f:8000::1', 'reserved (AS112 direct delegation)'],
    ['5f00::1', 'reserved (SRv6 SIDs)'],
    ['100::1', 'reserved (discard-only)'],
    ['100:0:0:1::1', 'reserved (dummy prefix)'],
    ['64:ff9b:1::1', 'private (local-use NAT64)'],
    ['::8.8.8.8', 'reserved (IPv4-compatible)'],
    ['::ffff:0:808:808', 'reserved'],
    ['4000::1', 'reserved'],
    ['fec0::1', 'private (site-local)'],
  ])('refuses %s (%s)', (address, label) => {
    expect(refusedAddressClass(address)).toBe(label);
  });

  it.each([
    '8.8.8.8',
    '172.32.0.1',
    '93.184.216.34',
    '2001:4860:4860::8888',
    '::ffff:8.8.8.8',
    '64:ff9b::808:808',
    '2606:4700::1111',
    '2001:200::1',
    '2a00:1450:4001:80b::200e',
    '2620:4f:8001::1',
    '198.20.0.1',
    '203.0.114.9',
  ])('accepts the public address %s', (address) => {
    expect(refusedAddressClass(address)).toBeNull();
  });

  it.each([
    'http://localhost:3000/hook',
    'http://LOCALHOST./hook',
    'http://api.localhost/hook',
    'http://127.0.0.1:8080/',
    'http://127.1/',
    'http://2130706433/',
    'http://0x7f.0.0.1/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://169.254.169.254/latest/meta-data',
    'https://[fd00::1]/',
    'http://10.0.0.5/',
    'http://[2001::1]/',
    'http://[2001:db8::1]/',
    'ftp://example.com/',
    'not a url',
  ])('refuses the literal target %s', (url) => {
    expect(literalWebhookTargetProblem(url)).not.toBeNull();
  });

  it.each(['https://hooks.example.com/agent-otp', 'http://203.0.114.9:8080/x', 'https://[2606:4700::1111]/'])(
    'accepts %s (hostnames are checked again at delivery)',
    (url) => {
      expect(literalWebhookTargetProblem(url)).toBeNull();
    },
  );
});
