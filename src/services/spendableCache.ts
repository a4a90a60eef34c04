import type { Permission } from '../core/permission.js';

const TTL_MS = 5000;
const MAX_ENTRIES = 10_000;

/**
 * Approved permissions this instance wrote or read a moment ago, so that `use` and `verify` can
 * skip their read (an agent asks, then checks or spends at once: the read was half of the
 * statements on those paths).
 *
 * Safe because the database stays the judge. For use, the spend statement re-checks everything
 * that can change (status, expiry, uses left, totals, token, agent) and a refused spend is
 * explained from a fresh read. For verify, the event is written only while the row still has
 * the copy's status, uses left and token (AuditService.recordWhile), else the answer is decided
 * again from a read. What is checked from the copy never changes once a permission is approved
 * and has a token: its agent, token hash, expiry and scope. Kept only for scopes without
 * max_total_ caps, whose check also reads the running totals, which do change. Entries live 5 s
 * (the auth cache's bound), and this instance forgets one as soon as it changes it.
 */
export class SpendableCache {
  private readonly entries = new Map<string, { permission: Permission; until: number }>();

  static cacheable(permission: Permission): boolean {
    return (
      permission.status === 'approved' &&
      permission.tokenHash !== null &&
      !Object.keys(permission.scope).some((key) => key.startsWith('max_total_'))
    );
  }

  /** The copy of this agent's permission, if one is held and fresh; null otherwise. */
  get(agentId: string, id: string, now: number): Permission | null {
    const entry = this.entries.get(id);
    if (!entry) return null;
    if (entry.until <= now) {
      this.entries.delete(id);
      return null;
    }
    return entry.permission.agentId === agentId ? entry.permission : null;
  }

  /** Keeps the permission if it may be kept (see cacheable), else forgets any copy. */
  remember(permission: Permission, now: number): void {
    if (!SpendableCache.cacheable(permission)) {
      this.entries.delete(permission.id);
      return;
    }
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(permission.id, { permission, until: now + TTL_MS });
  }

  forget(id: string): void {
    this.entries.delete(id);
  }
}
