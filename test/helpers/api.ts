import { request } from 'node:http';
/** A small fetch wrapper for e2e tests: the envelope unpacked, the status kept. */
export interface ApiResponse<T = Record<string, unknown>> {
  status: number;
  body: {
    success: boolean;
    data: T;
    error: { code: string; message: string; details?: unknown; requestId: string };
  };
  headers: Headers;
}

export function apiClient(baseUrl: string, key?: string) {
  return async function call<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<ApiResponse<T>> {
    const res = await fetch(`${baseUrl}${path}`, {
      method,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as ApiResponse<T>['body'], headers: res.headers };
  };
}

export type Api = ReturnType<typeof apiClient>;

/**
 * POSTs a body with node:http and returns the response even when the server answers (413)
 * before the upload finished and closes the connection: fetch reports that as EPIPE, while a
 * real client reading the response sees the status and the error body.
 */
export function postLargeBody(url: string, key: string, body: string): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
    });
    let answered = false;
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0, headers }));
      });
    });
    req.on('error', (err) => {
      if (!answered) setTimeout(() => !answered && reject(err), 1000);
    });
    req.end(body);
  });
}
