-- Approver accounts (issue 15): a stored person and the channel identities that are theirs, so
-- operators link identities without a restart, and the web approval page has someone to sign in.
-- A name is unique case-insensitively: it is the person quorum counts (`person:<name>`), and two
-- names differing only in case would read as one person to a human and as two to the rules.
CREATE TABLE approvers (
  id         text PRIMARY KEY,
  name       text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  email      text,
  status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX approvers_name_unique_idx ON approvers (lower(name));

-- An identity (`slack:U123`, `discord:…`, `operator:opk_…`) belongs to at most one approver:
-- the primary key is what refuses a second one, even between concurrent requests.
CREATE TABLE approver_identities (
  identity    text PRIMARY KEY,
  approver_id text NOT NULL REFERENCES approvers (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL
);
CREATE INDEX approver_identities_approver_idx ON approver_identities (approver_id);
