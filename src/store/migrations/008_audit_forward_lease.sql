-- Audit forwarding elects its sender with a lease on the cursor row instead of an advisory lock
-- held in a transaction across the POST to the SIEM: on PGlite that transaction held the only
-- connection, so a slow SIEM stalled every request for up to the POST timeout.
ALTER TABLE audit_forward_cursor ADD COLUMN lease_owner text;
ALTER TABLE audit_forward_cursor ADD COLUMN lease_until timestamptz;
