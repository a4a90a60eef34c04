-- Approval channels are plug-ins (DESIGN §13): a posted message names its channel by the
-- channel's registered name, so the closed list of two platforms gives way to a name shape.
-- Existing rows (slack and discord) satisfy it.
ALTER TABLE chat_messages DROP CONSTRAINT IF EXISTS chat_messages_platform_check;
ALTER TABLE chat_messages
  ADD CONSTRAINT chat_messages_channel_name CHECK (platform ~ '^[a-z][a-z0-9-]{0,31}$');
