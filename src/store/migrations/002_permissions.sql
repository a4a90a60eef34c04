-- The permission lifecycle: stored policies and permissions with their one-time tokens.

CREATE TABLE policies (
  id          text PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  -- The normalised (camelCase) policy definition as the engine reads it.
  definition  jsonb NOT NULL,
  position    integer NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE permissions (
  id               text PRIMARY KEY,
  agent_id         text NOT NULL REFERENCES agents (id),
  action           text NOT NULL,
  resource         text,
  requested_scope  jsonb NOT NULL,
  -- The scope in force: the request narrowed by the policy template and any approver change.
  scope            jsonb NOT NULL,
  context          jsonb NOT NULL,
  status           text NOT NULL CHECK (status IN
                     ('pending', 'approved', 'denied', 'expired', 'used', 'revoked', 'cancelled')),
  ttl_seconds      integer NOT NULL,
  policy_id        text,
  policy_name      text,
  decision_reason  text,
  decided_by       jsonb,
  decided_at       timestamptz,
  -- While pending: the approval deadline. Once approved: when the token stops working.
  expires_at       timestamptz NOT NULL,
  -- SHA-256 of the token (a client commitment, or of a server-minted token). NULL after a human
  -- approval until the agent's first read mints it: the token itself is never stored.
  token_hash       text,
  client_token     boolean NOT NULL DEFAULT false,
  max_uses         integer NOT NULL DEFAULT 1,
  uses_remaining   integer NOT NULL DEFAULT 0,
  -- Cumulative sums of actionDetails fields capped by max_total_<f>.
  totals           jsonb NOT NULL DEFAULT '{}'::jsonb,
  approval         jsonb,
  approvals        jsonb NOT NULL DEFAULT '[]'::jsonb,
  webhook_url      text,
  idempotency_key  text,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  last_used_at     timestamptz
);
CREATE UNIQUE INDEX permissions_idempotency_idx ON permissions (agent_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX permissions_list_idx ON permissions (created_at DESC, id DESC);
CREATE INDEX permissions_agent_idx ON permissions (agent_id, created_at DESC);
CREATE INDEX permissions_due_idx ON permissions (expires_at) WHERE status IN ('pending', 'approved');
