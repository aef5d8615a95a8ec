-- gotrue-rs: a normalised (trimmed, lower-cased) copy of the email for lookups and
-- uniqueness, compared byte for byte so MySQL agrees with SQLite. Filled by the server
-- (also for rows another program wrote) rather than by SQL, whose lower-casing differs.
-- @if_column_missing users email_key
ALTER TABLE {{prefix}}users ADD COLUMN email_key varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL DEFAULT NULL AFTER email;
-- @if_index_missing users users_instance_aud_email_key_idx
CREATE UNIQUE INDEX users_instance_aud_email_key_idx ON {{prefix}}users (instance_id, aud, email_key);
