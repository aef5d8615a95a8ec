-- gotrue-rs: the admin user list selects one (instance, audience) and orders it by creation
-- time with the id as tie-break, so a page is a short index range scan even with many users.
-- (255 + 255 + 255 utf8mb4 characters and a timestamp: 3064 bytes, within InnoDB's 3072.)
-- @if_index_missing users users_instance_aud_created_idx
CREATE INDEX users_instance_aud_created_idx ON {{prefix}}users (instance_id, aud, created_at, id);
-- gotrue-rs: the audit list orders an instance's entries newest first, ties by id.
-- @if_index_missing audit_log_entries audit_logs_instance_created_idx
CREATE INDEX audit_logs_instance_created_idx ON {{prefix}}audit_log_entries (instance_id, created_at, id);
