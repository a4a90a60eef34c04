-- When a pending request's reminder and escalation (policy approval.remind_after /
-- escalate_after) were sent. Their delayed queue jobs live in Redis: one lost with it (an
-- outage while the request was made, a flush) leaves these unset past their time, and the
-- reconciler sends them then.
ALTER TABLE permissions ADD COLUMN reminded_at timestamptz;
ALTER TABLE permissions ADD COLUMN escalated_at timestamptz;
