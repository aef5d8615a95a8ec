-- gotrue-rs: refresh tokens grouped into sessions (see the MySQL migration of the same
-- version): the session's id and start time on every token of the chain, and the current
-- token's secret sealed under a key derived from JWT_SECRET.
-- @if_column_missing refresh_tokens session_id
ALTER TABLE {{prefix}}refresh_tokens ADD COLUMN session_id TEXT;
-- @if_column_missing refresh_tokens session_started_at
ALTER TABLE {{prefix}}refresh_tokens ADD COLUMN session_started_at TEXT;
-- @if_column_missing refresh_tokens sealed_token
ALTER TABLE {{prefix}}refresh_tokens ADD COLUMN sealed_token TEXT;
CREATE INDEX IF NOT EXISTS {{prefix}}refresh_tokens_session_id_idx ON {{prefix}}refresh_tokens (session_id);
