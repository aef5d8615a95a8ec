-- gotrue-rs: external login. One row per provider account linked to a user (a returning
-- user is found by provider and provider id before any email matching), the OAuth states
-- already used (single use), and the authorization codes of the PKCE flow (digests only).
CREATE TABLE IF NOT EXISTS {{prefix}}identities (
  id TEXT NOT NULL PRIMARY KEY,
  instance_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  provider TEXT NOT NULL,
  provider_id TEXT NOT NULL,
  email TEXT,
  email_verified INTEGER NOT NULL DEFAULT 0,
  profile TEXT,
  created_at TEXT,
  updated_at TEXT,
  last_sign_in_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS {{prefix}}identities_instance_provider_id_idx ON {{prefix}}identities (instance_id, provider, provider_id);
CREATE INDEX IF NOT EXISTS {{prefix}}identities_instance_user_id_idx ON {{prefix}}identities (instance_id, user_id);
CREATE TABLE IF NOT EXISTS {{prefix}}oauth_states (
  id TEXT NOT NULL PRIMARY KEY,
  instance_id TEXT NOT NULL,
  expires_at TEXT
);
CREATE INDEX IF NOT EXISTS {{prefix}}oauth_states_expires_at_idx ON {{prefix}}oauth_states (expires_at);
CREATE TABLE IF NOT EXISTS {{prefix}}oauth_codes (
  code_digest TEXT NOT NULL PRIMARY KEY,
  instance_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  created_at TEXT,
  expires_at TEXT
);
CREATE INDEX IF NOT EXISTS {{prefix}}oauth_codes_expires_at_idx ON {{prefix}}oauth_codes (expires_at);
