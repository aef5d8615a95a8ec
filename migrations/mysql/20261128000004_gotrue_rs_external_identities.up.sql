-- gotrue-rs: external login. One row per provider account linked to a user (a returning
-- user is found by provider and provider id before any email matching), the OAuth states
-- already used (single use across server instances sharing this database), and the
-- authorization codes of the PKCE flow (digests only). The Go server ignores all three.
CREATE TABLE IF NOT EXISTS {{prefix}}identities (
  id varchar(36) NOT NULL,
  instance_id varchar(36) NOT NULL,
  user_id varchar(255) NOT NULL,
  provider varchar(64) NOT NULL,
  provider_id varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  email varchar(255) NULL DEFAULT NULL,
  email_verified tinyint(1) NOT NULL DEFAULT 0,
  profile text,
  created_at timestamp NULL DEFAULT NULL,
  updated_at timestamp NULL DEFAULT NULL,
  last_sign_in_at timestamp NULL DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY identities_instance_provider_id_idx (instance_id, provider, provider_id),
  KEY identities_instance_user_id_idx (instance_id, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS {{prefix}}oauth_states (
  id varchar(64) NOT NULL,
  instance_id varchar(36) NOT NULL,
  expires_at timestamp NULL DEFAULT NULL,
  PRIMARY KEY (id),
  KEY oauth_states_expires_at_idx (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS {{prefix}}oauth_codes (
  code_digest varchar(80) NOT NULL,
  instance_id varchar(36) NOT NULL,
  user_id varchar(255) NOT NULL,
  code_challenge varchar(128) NOT NULL,
  created_at timestamp NULL DEFAULT NULL,
  expires_at timestamp NULL DEFAULT NULL,
  PRIMARY KEY (code_digest),
  KEY oauth_codes_expires_at_idx (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
