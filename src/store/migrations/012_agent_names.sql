-- Agent names are unique, case-insensitively, among agents that are not deleted: filters, the
-- CLI and policies name agents, and a name shared by two agents made every one of them ambiguous.
-- Agents that already share a name keep it but are flagged (all but the oldest), so the unique
-- index can be built; the service warns about them at start and in `migrate`, lists them in
-- GET /agents (nameDuplicate) and `doctor`, and a rename clears the flag.
ALTER TABLE agents ADD COLUMN name_duplicate boolean NOT NULL DEFAULT false;

UPDATE agents AS a SET name_duplicate = true
 WHERE a.status <> 'deleted'
   AND EXISTS (
     SELECT 1 FROM agents AS b
      WHERE b.status <> 'deleted' AND lower(b.name) = lower(a.name)
        AND (b.created_at, b.id) < (a.created_at, a.id));

CREATE UNIQUE INDEX agents_name_unique_idx ON agents (lower(name))
  WHERE status <> 'deleted' AND NOT name_duplicate;
