-- Per-agent limits on token calls (verify and use together), beside the request limits: an
-- agent's own override of TOKEN_RATE_LIMIT_PER_MIN / TOKEN_RATE_LIMIT_PER_HOUR; NULL = default.
ALTER TABLE agents ADD COLUMN token_rate_limit_per_min integer;
ALTER TABLE agents ADD COLUMN token_rate_limit_per_hour integer;
