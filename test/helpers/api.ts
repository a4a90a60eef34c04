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
