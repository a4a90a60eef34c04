-- Signing in on the web with passkeys (issue 15): enrolment invitations, the passkeys themselves,
-- sessions, and WebAuthn challenges. Secrets handed to a browser (the invitation token, the
-- session cookie) are stored only as SHA-256 hashes: a copy of this database signs nobody in.

-- A one-time enrolment link for an approver (valid 24 h, single use).
CREATE TABLE approver_invitations (
  token_hash  text PRIMARY KEY,
  approver_id text NOT NULL REFERENCES approvers (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL,
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz
);
CREATE INDEX approver_invitations_approver_idx ON approver_invitations (approver_id);

-- A WebAuthn credential (public key only). The counter is the authenticator's signature count,
-- checked to rise at every sign-in (0 for authenticators that do not count).
CREATE TABLE passkeys (
  credential_id text PRIMARY KEY,
  approver_id   text NOT NULL REFERENCES approvers (id) ON DELETE CASCADE,
  public_key    text NOT NULL,
  counter       bigint NOT NULL DEFAULT 0,
  transports    text[] NOT NULL DEFAULT '{}',
  name          text NOT NULL,
  created_at    timestamptz NOT NULL,
  last_used_at  timestamptz
);
CREATE INDEX passkeys_approver_idx ON passkeys (approver_id);

-- A signed-in browser: bound to the approver and the passkey that signed it in; removing either
-- ends it.
CREATE TABLE web_sessions (
  id_hash       text PRIMARY KEY,
  approver_id   text NOT NULL REFERENCES approvers (id) ON DELETE CASCADE,
  credential_id text NOT NULL REFERENCES passkeys (credential_id) ON DELETE CASCADE,
  csrf_token    text NOT NULL,
  verified_at   timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  created_at    timestamptz NOT NULL
);
CREATE INDEX web_sessions_approver_idx ON web_sessions (approver_id);
CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);

-- A challenge handed to a browser for one ceremony: deleted when used, so it is single use on
-- every instance. Registration challenges name whom they enrol (an invitation, or a signed-in
-- approver adding a passkey).
CREATE TABLE webauthn_challenges (
  challenge       text PRIMARY KEY,
  purpose         text NOT NULL CHECK (purpose IN ('register', 'authenticate')),
  approver_id     text REFERENCES approvers (id) ON DELETE CASCADE,
  invitation_hash text,
  expires_at      timestamptz NOT NULL
);
CREATE INDEX webauthn_challenges_expires_idx ON webauthn_challenges (expires_at);
