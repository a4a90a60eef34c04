import type { Logger } from '../logger.js';
import { listNameDuplicates } from '../store/agentRepository.js';
import type { Queryable } from '../store/db.js';

/**
 * Agents created before names were unique may still share a name (migration 012 flagged all
 * but the oldest): such a name designates no agent in filters, so operators are told at every
 * start and by `migrate` until they rename them.
 */
export async function reportNameDuplicates(db: Queryable, logger: Logger): Promise<void> {
  const duplicates = await listNameDuplicates(db);
  if (!duplicates.length) return;
  logger.warn(
    { duplicates },
    'agents share a name (created before names were unique): rename them (PATCH /api/v1/agents/:id)',
  );
}

/** The same, as lines a person reads (the `migrate` command prints them). */
export async function nameDuplicateLines(db: Queryable): Promise<string[]> {
  const duplicates = await listNameDuplicates(db);
  return duplicates.map(
    (d) =>
      `Warning: agent ${d.id} is named "${d.name}" like ${d.sharesNameWith.join(', ')} (created before names were unique); rename it.`,
  );
}
