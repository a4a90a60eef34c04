-- Monitoring: failed authentications aggregated per minute (DESIGN §10: audited aggregated),
-- alert state (so an alert fires once and clears once), and the indexes the metrics read.

-- One row per minute overall (agent_id NULL) and one per minute per agent whose refused key
-- was known (a revoked or expired key). Each API instance adds what it counted.
CREATE TABLE auth_failures (
  minute    timestamptz NOT NULL,
  agent_id  text,
  count     bigint NOT NULL
);
CREATE UNIQUE INDEX auth_failures_minute_idx ON auth_failures (minute, (COALESCE(agent_id, '')));
CREATE INDEX auth_failures_agent_idx ON auth_failures (agent_id, minute) WHERE agent_id IS NOT NULL;

CREATE TABLE alert_state (
  name        text PRIMARY KEY,
  active      boolean NOT NULL,
  since       timestamptz,
  last_value  double precision,
  updated_at  timestamptz NOT NULL
);

-- Tokens finishing in a period: used up (by their last use) or expired (by their expiry time),
-- over all agents and for one.
CREATE INDEX permissions_used_idx ON permissions (last_used_at) WHERE status = 'used';
CREATE INDEX permissions_used_agent_idx ON permissions (agent_id, last_used_at) WHERE status = 'used';
CREATE INDEX permissions_expired_idx ON permissions (expires_at) WHERE status = 'expired';
CREATE INDEX permissions_expired_agent_idx ON permissions (agent_id, expires_at) WHERE status = 'expired';
-- Scope violations in a period, over all agents and for one (counted from the index alone).
CREATE INDEX audit_events_scope_violation_idx ON audit_events (occurred_at)
  WHERE type = 'use_rejected' AND details->>'code' = 'SCOPE_VIOLATION';
CREATE INDEX audit_events_scope_violation_agent_idx ON audit_events (agent_id, occurred_at)
  WHERE type = 'use_rejected' AND details->>'code' = 'SCOPE_VIOLATION';
