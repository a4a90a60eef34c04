-- Audit forwarding to a SIEM: how far (in chain order) events have been delivered.
CREATE TABLE audit_forward_cursor (
  id           text PRIMARY KEY,
  chain_index  bigint NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
