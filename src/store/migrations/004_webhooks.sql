-- Signed webhooks: per-agent signing secrets (encrypted, several live while one rolls over) and
-- one row per delivery, the record the queue works from and the reconciler repairs from.

CREATE TABLE webhook_secrets (
  id          text PRIMARY KEY,
  agent_id    text NOT NULL REFERENCES agents (id),
  -- AES-256-GCM under SECRETS_ENCRYPTION_KEY: the secret keys an HMAC, so it cannot be hashed.
  secret_enc  text NOT NULL,
  created_at  timestamptz NOT NULL,
  -- Set when a key rotation gives the secret a grace period (deliveries are signed with both).
  expires_at  timestamptz
);
CREATE INDEX webhook_secrets_agent_idx ON webhook_secrets (agent_id, created_at DESC);

CREATE TABLE webhook_deliveries (
  id               text PRIMARY KEY,
  permission_id    text NOT NULL REFERENCES permissions (id),
  agent_id         text NOT NULL REFERENCES agents (id),
  url              text NOT NULL,
  event_type       text NOT NULL,
  -- Status only: never the token or its hash.
  payload          jsonb NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
  attempts         integer NOT NULL DEFAULT 0,
  last_error       text,
  last_status      integer,
  created_at       timestamptz NOT NULL,
  -- Retries stop a fixed window after this; a replay starts a new window.
  first_attempt_at timestamptz,
  next_attempt_at  timestamptz NOT NULL,
  delivered_at     timestamptz
);
CREATE INDEX webhook_deliveries_list_idx ON webhook_deliveries (created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_status_idx ON webhook_deliveries (status, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_agent_idx ON webhook_deliveries (agent_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
