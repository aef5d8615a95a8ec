-- gotrue-rs: the admin user list selects one (instance, audience) and orders it by creation
-- time with the id as tie-break; the audit list orders an instance's entries newest first.
CREATE INDEX IF NOT EXISTS {{prefix}}users_instance_aud_created_idx ON {{prefix}}users (instance_id, aud, created_at, id);
CREATE INDEX IF NOT EXISTS {{prefix}}audit_logs_instance_created_idx ON {{prefix}}audit_log_entries (instance_id, created_at, id);
