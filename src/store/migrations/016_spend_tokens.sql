-- The use path's compare-and-swap for a group of uses in one statement (spendTokens in
-- permissionRepository.ts): concurrent uses, of one hot permission or of many, are spent by one
-- statement and one commit instead of one each, and each still checks everything against the
-- row as the uses before it in the group left it. Item i spends one use of permission ids[i]
-- if the agent, the token hash, the status, the expiry, the uses left and every max_total_<f>
-- cap allow it at nows[i]; the rows it changed come back with their item's number. The caller
-- passes the items ordered by permission id, so every group takes its row locks in one order
-- and two groups can never wait for each other.
CREATE FUNCTION spend_tokens(
  ids text[],
  agent_ids text[],
  token_hashes text[],
  nows timestamptz[],
  increments jsonb[]
) RETURNS TABLE (ord integer, spent permissions)
LANGUAGE plpgsql AS $$
DECLARE
  changed permissions;
BEGIN
  FOR i IN 1 .. coalesce(array_length(ids, 1), 0) LOOP
    UPDATE permissions p SET
      uses_remaining = p.uses_remaining - 1,
      status = CASE WHEN p.uses_remaining = 1 THEN 'used' ELSE p.status END,
      totals = p.totals || COALESCE((
        SELECT jsonb_object_agg(inc.key, COALESCE((p.totals ->> inc.key)::numeric, 0) + inc.value::numeric)
          FROM jsonb_each_text(increments[i]) inc), '{}'::jsonb),
      last_used_at = nows[i],
      updated_at = nows[i]
    WHERE p.id = ids[i] AND p.agent_id = agent_ids[i] AND p.token_hash = token_hashes[i]
      AND p.status = 'approved' AND p.expires_at > nows[i] AND p.uses_remaining > 0
      -- A scalar subquery, not NOT EXISTS: Postgres plans NOT EXISTS as an anti-join that is not
      -- re-evaluated against the newest row version when a concurrent use updated the row
      -- first, which let concurrent uses overspend a max_total cap.
      AND NOT COALESCE((
        SELECT bool_or(COALESCE((p.totals ->> inc.key)::numeric, 0) + inc.value::numeric
                       > (p.scope ->> ('max_total_' || inc.key))::numeric)
          FROM jsonb_each_text(increments[i]) inc), false)
    RETURNING p.* INTO changed;
    IF FOUND THEN
      ord := i;
      spent := changed;
      RETURN NEXT;
    END IF;
  END LOOP;
END
$$;
