-- Chat approval messages: where each request was posted, so every later state edits it.

CREATE TABLE chat_messages (
  permission_id  text NOT NULL REFERENCES permissions (id),
  platform       text NOT NULL CHECK (platform IN ('slack', 'discord')),
  channel        text NOT NULL,
  -- Slack: the message ts; Discord: the message id.
  message_ref    text NOT NULL,
  permalink      text,
  -- The state last rendered on the message, so repeated updates are no-ops.
  rendered_state text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (permission_id, platform, channel)
);

-- Set when every notification for a pending request was posted; the reconciler looks for
-- pending requests without it.
ALTER TABLE permissions ADD COLUMN notified_at timestamptz;
-- The first posted message's permalink: the request's approvalUrl (absent until posted).
ALTER TABLE permissions ADD COLUMN approval_url text;
CREATE INDEX permissions_unnotified_idx ON permissions (created_at) WHERE status = 'pending' AND notified_at IS NULL;
