-- The fingerprint of the request an idempotencyKey was first used with (SHA-256 of its canonical
-- JSON), so the same key with another body is refused instead of answered with the first grant.
-- Rows from before this migration keep NULL and are compared field by field.
ALTER TABLE permissions ADD COLUMN request_hash text;
