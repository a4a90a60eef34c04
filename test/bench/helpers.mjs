// Helpers shared by the bench's modules.
import { readFileSync } from 'node:fs';

/** One JSON API call of the bench's setup; throws on anything but a success envelope. */
export async function api(base, key, method, route, body) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!json.success) throw new Error(`${method} ${route}: ${JSON.stringify(json.error)}`);
  return json.data;
}

/** CPU milliseconds a process has used so far (Linux /proc; null elsewhere). */
export function processCpuMs(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, 100 ticks/s
  } catch {
    return null;
  }
}
