-- Uniqueness claims owned by rows with text keys (DocumentStore's
-- "collection/id"), next to the bigint IDs of Store's users. A claim's
-- owner is the pair (owner, owner_key): users keep (id, ''), documents use
-- (0, 'collection/id'), so existing claims keep working unchanged.

-- +goose Up
ALTER TABLE unique_claims ADD COLUMN owner_key text NOT NULL DEFAULT '';
CREATE INDEX unique_claims_owner_key ON unique_claims (owner_key) WHERE owner_key <> '';

-- +goose Down
DROP INDEX unique_claims_owner_key;
ALTER TABLE unique_claims DROP COLUMN owner_key;
