-- gotrue-rs: the admin user list selects one (instance, audience) and orders it by creation
-- time with the id as tie-break; the audit list orders an instance's entries newest first.
CREATE INDEX IF NOT EXISTS {{prefix}}users_instance_aud_created_idx ON {{prefix}}users (instance_id, aud, created_at, id);
CREATE INDEX IF NOT EXISTS {{prefix}}audit_logs_instance_created_idx ON {{prefix}}audit_log_entries (instance_id, created_at, id);
-- gotrue-rs: user_metadata.full_name lower-cased, written by the server beside the metadata,
-- so the admin search compares a plain column; NULL (not computed) falls back to the JSON.
-- @if_column_missing users name_key
ALTER TABLE {{prefix}}users ADD COLUMN name_key TEXT;
UPDATE {{prefix}}users SET name_key = COALESCE(lower(CASE WHEN json_valid(raw_user_meta_data) THEN json_extract(raw_user_meta_data, '$.full_name') END), '') WHERE name_key IS NULL;
