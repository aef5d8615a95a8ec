-- gotrue-rs: refresh tokens grouped into sessions. Every token of one login's chain carries
-- the session's id and start time (for the absolute lifetime); the session's current token
-- also keeps its secret sealed (ChaCha20-Poly1305, key derived from JWT_SECRET) so that a
-- concurrent refresh of the token it replaced can be answered with it. Rows without a
-- session (written by upstream) are one-token sessions until their first refresh.
-- @if_column_missing refresh_tokens session_id
ALTER TABLE {{prefix}}refresh_tokens ADD COLUMN session_id varchar(36) NULL DEFAULT NULL;
-- @if_column_missing refresh_tokens session_started_at
ALTER TABLE {{prefix}}refresh_tokens ADD COLUMN session_started_at timestamp NULL DEFAULT NULL;
-- @if_column_missing refresh_tokens sealed_token
ALTER TABLE {{prefix}}refresh_tokens ADD COLUMN sealed_token varchar(255) NULL DEFAULT NULL;
-- @if_index_missing refresh_tokens refresh_tokens_session_id_idx
CREATE INDEX refresh_tokens_session_id_idx ON {{prefix}}refresh_tokens (session_id);
