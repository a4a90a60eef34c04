// A stand-in for docker.io/library/node:20-bookworm-slim, for machines that cannot reach a
// container registry: Debian bookworm (mmdebstrap minbase) plus this machine's Node 20 and npm, laid
// out as the official image lays them out (/usr/local/bin/node, /usr/local/lib/node_modules/npm, a
// `node` user 1000). The Dockerfile is then built against it unchanged. Built once and reused: the
// image carries a label naming the Node version it was made from. An image of that name without
// the label is taken to be the real one and left alone.
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const BASE_IMAGE = 'docker.io/library/node:20-bookworm-slim';
const LABEL = 'agent-otp.stand-in';

/** Ensures BASE_IMAGE exists; returns how it was obtained, for the report. */
export function ensureBaseImage({ podman, build, log }) {
  const wanted = `node-${process.version}`;
  const existing = podman(['image', 'inspect', '--format', `{{index .Labels "${LABEL}"}}`, BASE_IMAGE], {
    check: false,
  });
  if (existing.status === 0) {
    const label = existing.stdout.trim();
    if (label === '' || label === '<no value>') return 'the real image (already present)';
    if (label === wanted) return `the stand-in (${wanted}, reused)`;
  }
  if (!process.version.startsWith('v20.')) {
    throw new Error(
      `the stand-in base copies this machine's Node, which must be 20.x (is ${process.version})`,
    );
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'aotp-base-'));
  try {
    const started = Date.now();
    log('building the stand-in base: mmdebstrap --variant=minbase bookworm (~30 s)');
    run('mmdebstrap', ['--quiet', '--variant=minbase', 'bookworm', path.join(dir, 'rootfs.tar')]);
    podman(['import', path.join(dir, 'rootfs.tar'), 'localhost/aotp-bookworm-minbase:latest']);

    const ctx = path.join(dir, 'ctx');
    cpSync(npmRoot(), path.join(ctx, 'npm'), { recursive: true });
    copyFileSync(process.execPath, path.join(ctx, 'node'));
    // This machine reaches the npm registry through a TLS-inspecting proxy: its CA bundle goes in
    // the stand-in (not in the Dockerfile), as the real base image would not need it.
    const caFile = process.env.NODE_EXTRA_CA_CERTS;
    const withCa = Boolean(caFile);
    if (withCa) copyFileSync(caFile, path.join(ctx, 'extra-ca.crt'));
    writeFileSync(
      path.join(ctx, 'Containerfile'),
      [
        'FROM localhost/aotp-bookworm-minbase:latest',
        `LABEL ${LABEL}="${wanted}"`,
        `ENV NODE_VERSION=${process.version.slice(1)}`,
        'COPY node /usr/local/bin/node',
        'COPY npm /usr/local/lib/node_modules/npm',
        ...(withCa
          ? [
              'COPY extra-ca.crt /usr/local/share/aotp-stand-in/extra-ca.crt',
              'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/aotp-stand-in/extra-ca.crt',
            ]
          : []),
        'RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm' +
          ' && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx' +
          ' && groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node' +
          ' && node --version && npm --version',
        'CMD ["node"]',
        '',
      ].join('\n'),
    );
    build(['-t', BASE_IMAGE, '-f', path.join(ctx, 'Containerfile'), ctx]);
    podman(['rmi', 'localhost/aotp-bookworm-minbase:latest'], { check: false });
    return `the stand-in (${wanted}, built in ${((Date.now() - started) / 1000).toFixed(0)} s)`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} failed (exit ${r.status}):\n${r.stderr}`);
}

/** npm's package directory, next to this Node (e.g. /usr/lib/node_modules/npm). */
function npmRoot() {
  const candidates = [
    path.join(path.dirname(path.dirname(realpathSync(process.execPath))), 'lib', 'node_modules', 'npm'),
    '/usr/lib/node_modules/npm',
    '/usr/local/lib/node_modules/npm',
  ];
  for (const dir of candidates) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new Error(`npm not found next to ${process.execPath}`);
}
