// The image's HEALTHCHECK. One image runs every role, but only `start` and `api` serve HTTP: for
// those, GET /healthz on the container's own port; `worker` and `bot` have no port and are healthy
// while their process runs (the container stops when it exits). The role is read from PID 1's
// command line (tini -- node /app/dist/cli/index.js <role>), as the check runs as its own process.
import { readFileSync } from 'node:fs';

const args = readFileSync('/proc/1/cmdline', 'utf8').split('\0').filter(Boolean);
const cli = args.findIndex((arg) => arg.endsWith('/cli/index.js'));
const role = cli === -1 ? 'start' : (args[cli + 1] ?? 'start');
if (role !== 'start' && role !== 'api') process.exit(0);

const scheme = process.env.TLS_CERT_FILE ? 'https' : 'http';
if (scheme === 'https') process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // our own certificate, over loopback
const port = process.env.PORT || '3000';
try {
  const res = await fetch(`${scheme}://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2500) });
  process.exit(res.ok ? 0 : 1);
} catch {
  process.exit(1);
}
