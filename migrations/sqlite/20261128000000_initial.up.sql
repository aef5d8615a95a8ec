-- The embedded schema: upstream's tables and columns (SCHEMA.md 2) in SQLite types, plus
-- gotrue-rs's email_key and token indexes. Timestamps are RFC 3339 text in UTC.
CREATE TABLE IF NOT EXISTS {{prefix}}users (
  instance_id TEXT,
  id TEXT NOT NULL PRIMARY KEY,
  aud TEXT,
  role TEXT,
  email TEXT,
  email_key TEXT,
  encrypted_password TEXT,
  confirmed_at TEXT,
  invited_at TEXT,
  confirmation_token TEXT,
  confirmation_sent_at TEXT,
  recovery_token TEXT,
  recovery_sent_at TEXT,
  email_change_token TEXT,
  email_change TEXT,
  email_change_sent_at TEXT,
  last_sign_in_at TEXT,
  raw_app_meta_data TEXT,
  raw_user_meta_data TEXT,
  is_super_admin INTEGER,
  created_at TEXT,
  updated_at TEXT
);
CREATE INDEX IF NOT EXISTS {{prefix}}users_instance_id_email_idx ON {{prefix}}users (instance_id, email);
CREATE INDEX IF NOT EXISTS {{prefix}}users_instance_id_idx ON {{prefix}}users (instance_id);
CREATE UNIQUE INDEX IF NOT EXISTS {{prefix}}users_instance_aud_email_key_idx ON {{prefix}}users (instance_id, aud, email_key);
CREATE INDEX IF NOT EXISTS {{prefix}}users_confirmation_token_idx ON {{prefix}}users (confirmation_token);
CREATE INDEX IF NOT EXISTS {{prefix}}users_recovery_token_idx ON {{prefix}}users (recovery_token);
CREATE TABLE IF NOT EXISTS {{prefix}}instances (
  id TEXT NOT NULL PRIMARY KEY,
  uuid TEXT,
  raw_base_config TEXT,
  created_at TEXT,
  updated_at TEXT
);
CREATE TABLE IF NOT EXISTS {{prefix}}refresh_tokens (
  instance_id TEXT,
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  token TEXT,
  user_id TEXT,
  revoked INTEGER,
  created_at TEXT,
  updated_at TEXT
);
CREATE INDEX IF NOT EXISTS {{prefix}}refresh_tokens_instance_id_idx ON {{prefix}}refresh_tokens (instance_id);
CREATE INDEX IF NOT EXISTS {{prefix}}refresh_tokens_instance_id_user_id_idx ON {{prefix}}refresh_tokens (instance_id, user_id);
CREATE INDEX IF NOT EXISTS {{prefix}}refresh_tokens_token_idx ON {{prefix}}refresh_tokens (token);
CREATE TABLE IF NOT EXISTS {{prefix}}audit_log_entries (
  instance_id TEXT,
  id TEXT NOT NULL PRIMARY KEY,
  payload TEXT,
  created_at TEXT
);
CREATE INDEX IF NOT EXISTS {{prefix}}audit_logs_instance_id_idx ON {{prefix}}audit_log_entries (instance_id);
