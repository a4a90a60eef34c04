import { randomBytes } from 'node:crypto';
import { type RandomBytes, randomBase62 } from '../core/ids.js';
import { newWebhookSecret } from '../core/webhook.js';
import type { Queryable } from '../store/db.js';
import {
  activeWebhookSecrets,
  insertWebhookSecret,
  retireWebhookSecrets,
} from '../store/webhookRepository.js';
import type { SecretBox } from './secretBox.js';

/**
 * Per-agent webhook signing secrets: issued with the agent and with every key rotation, shown
 * once, stored encrypted. During a rotation's grace period the old secret stays active, so
 * deliveries carry a signature under each and receivers can roll over.
 */
export class WebhookSecrets {
  constructor(
    private readonly box: SecretBox,
    private readonly random: RandomBytes = randomBytes,
  ) {}

  /** Creates a secret for the agent inside the caller's transaction; returns it (once). */
  async issue(tx: Queryable, agentId: string, now: Date): Promise<string> {
    const id = `whs_${randomBase62(22, this.random)}`;
    const secret = newWebhookSecret(this.random);
    await insertWebhookSecret(tx, {
      id,
      agentId,
      secretEnc: this.box.seal(secret, associatedData(agentId, id)),
      createdAt: now,
      expiresAt: null,
    });
    return secret;
  }

  /** The agent's current secrets stop being used at `at` (the end of a grace period, or now). */
  retire(tx: Queryable, agentId: string, at: Date, now: Date): Promise<void> {
    return retireWebhookSecrets(tx, agentId, at, now);
  }

  /** The secrets to sign with now, newest first. Throws SecretBoxError on a wrong key. */
  async active(db: Queryable, agentId: string, now: Date): Promise<string[]> {
    const stored = await activeWebhookSecrets(db, agentId, now);
    return stored.map((s) => this.box.open(s.secretEnc, associatedData(agentId, s.id)));
  }
}

const associatedData = (agentId: string, secretId: string) => `webhook-secret:${agentId}:${secretId}`;
