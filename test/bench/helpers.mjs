// Helpers shared by the bench's modules.
import { readdirSync, readFileSync } from 'node:fs';

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

/**
 * CPU milliseconds used so far by each process named `name` on this machine, by pid (Linux /proc;
 * null elsewhere): the database server's processes, say. See cpuSince.
 */
export function processesCpuMs(name) {
  try {
    const byPid = new Map();
    for (const pid of readdirSync('/proc')) {
      if (!/^[0-9]+$/.test(pid)) continue;
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== name) continue;
        byPid.set(pid, processCpuMs(pid) ?? 0);
      } catch {
        // Gone between the listing and the read.
      }
    }
    return byPid;
  } catch {
    return null;
  }
}

/**
 * The whole machine's CPU time so far, busy and in all, in ms summed over its cores (Linux
 * /proc/stat; null elsewhere): busy counts every process (the load generator, Redis, the kernel's
 * loopback TCP), not only the server and Postgres.
 */
export function machineCpuMs() {
  try {
    const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already counted in user).
    const [user, nice, system, idle, iowait, irq, softirq, steal] = ticks;
    const busy = user + nice + system + irq + softirq + steal;
    return { busy: busy * 10, total: (busy + idle + iowait) * 10 }; // 100 ticks/s
  } catch {
    return null;
  }
}

/** CPU ms those processes used since `before` (processesCpuMs); one that exited meanwhile is missed. */
export function cpuSince(before, after) {
  if (!before || !after) return null;
  let total = 0;
  for (const [pid, ms] of after) total += ms - (before.get(pid) ?? 0);
  return total;
}
