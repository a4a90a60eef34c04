-- Foundation: operators, agents and their keys, and the append-only audit trail.

CREATE TABLE operator_keys (
  id            text PRIMARY KEY,
  name          text NOT NULL,
  key_hash      text NOT NULL UNIQUE,
  key_prefix    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz,
  revoked_at    timestamptz
);

CREATE TABLE agents (
  id                   text PRIMARY KEY,
  name                 text NOT NULL,
  description          text,
  metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
  environment          text NOT NULL CHECK (environment IN ('live', 'test')),
  status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked', 'deleted')),
  rate_limit_per_min   integer,
  rate_limit_per_hour  integer,
  webhook_url          text,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  revoked_at           timestamptz
);
CREATE INDEX agents_created_idx ON agents (created_at, id);

CREATE TABLE api_keys (
  id            text PRIMARY KEY,
  agent_id      text NOT NULL REFERENCES agents (id),
  key_hash      text NOT NULL UNIQUE,
  key_prefix    text NOT NULL,
  environment   text NOT NULL CHECK (environment IN ('live', 'test')),
  created_at    timestamptz NOT NULL DEFAULT now(),
  -- Set when a rotation gives the old key a grace period.
  expires_at    timestamptz,
  revoked_at    timestamptz,
  last_used_at  timestamptz
);
CREATE INDEX api_keys_agent_idx ON api_keys (agent_id);

-- Rows are written inside the business transaction with no chain fields; the sealer links
-- them (chain_index, prev_hash, hash) in order, so the hot path takes no global lock.
CREATE TABLE audit_events (
  seq           bigserial PRIMARY KEY,
  id            text NOT NULL UNIQUE,
  occurred_at   timestamptz NOT NULL,
  type          text NOT NULL,
  permission_id text,
  agent_id      text,
  actor_type    text NOT NULL,
  actor         jsonb NOT NULL,
  details       jsonb NOT NULL,
  ip            text,
  user_agent    text,
  details_hash  text NOT NULL,
  chain_index   bigint UNIQUE,
  prev_hash     text,
  hash          text,
  redacted_at   timestamptz
);
CREATE INDEX audit_events_unsealed_idx ON audit_events (seq) WHERE chain_index IS NULL;
CREATE INDEX audit_events_time_idx ON audit_events (occurred_at, seq);
CREATE INDEX audit_events_agent_idx ON audit_events (agent_id, occurred_at);
CREATE INDEX audit_events_permission_idx ON audit_events (permission_id);

-- Where the chain starts once retention has purged its oldest rows.
CREATE TABLE audit_checkpoints (
  chain_index  bigint PRIMARY KEY,
  hash         text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  purged_count bigint NOT NULL
);
