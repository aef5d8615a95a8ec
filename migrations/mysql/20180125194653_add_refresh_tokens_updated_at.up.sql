-- @if_column_missing refresh_tokens updated_at
ALTER TABLE {{prefix}}refresh_tokens ADD COLUMN updated_at timestamp NULL DEFAULT NULL AFTER created_at;
UPDATE {{prefix}}refresh_tokens SET updated_at = created_at WHERE updated_at IS NULL;
