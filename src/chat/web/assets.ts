import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

const require = createRequire(import.meta.url);

/** Our own browser files (src/chat/web/assets, copied into dist by src/build.mjs). */
const OWN_ASSETS = new URL('./assets/', import.meta.url);

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/**
 * GET /assets/<name>: the pages' scripts and stylesheet, read once at start. `webauthn.js` is
 * @simplewebauthn/browser's bundle (the passkey ceremony in the browser), served by us: no CDN.
 * Only the files listed here exist; any other name is a 404.
 */
export function registerWebAssets(
  app: FastifyInstance,
  ownFiles: readonly string[] = ['web.css', 'web.js'],
): void {
  const files = new Map<string, { body: Buffer; type: string }>();
  files.set('webauthn.js', {
    // The package exports only its modules; its browser bundle sits beside them.
    body: readFileSync(
      path.join(
        path.dirname(require.resolve('@simplewebauthn/browser')),
        '..',
        'dist',
        'bundle',
        'index.umd.min.js',
      ),
    ),
    type: TYPES['.js'] as string,
  });
  for (const name of ownFiles) {
    const ext = name.slice(name.lastIndexOf('.'));
    files.set(name, {
      body: readFileSync(new URL(name, OWN_ASSETS)),
      type: TYPES[ext] ?? 'application/octet-stream',
    });
  }
  app.get<{ Params: { name: string } }>('/assets/:name', async (request, reply) => {
    const file = files.get(request.params.name);
    if (!file) return reply.status(404).header('content-type', 'text/plain; charset=utf-8').send('not found');
    return reply
      .header('content-type', file.type)
      .header('cache-control', 'public, max-age=300')
      .header('x-content-type-options', 'nosniff')
      .send(file.body);
  });
}
