-- Alert webhooks: monitoring alerts (alert.triggered, alert.cleared) are delivered through the
-- same table as permission events, so they share retries, dead letters, replay and the
-- reconciler. An alert belongs to no permission and no agent: it goes to the operator's
-- ALERT_WEBHOOK_URL, signed with ALERT_WEBHOOK_SECRET. The check keeps the two kinds apart, so
-- an alert row can never be listed under an agent nor a permission event lose its owner.

ALTER TABLE webhook_deliveries ALTER COLUMN permission_id DROP NOT NULL;
ALTER TABLE webhook_deliveries ALTER COLUMN agent_id DROP NOT NULL;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_owner_check CHECK (
  (event_type LIKE 'permission.%' AND permission_id IS NOT NULL AND agent_id IS NOT NULL)
  OR (event_type LIKE 'alert.%' AND permission_id IS NULL AND agent_id IS NULL)
);
