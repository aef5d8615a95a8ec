-- gotrue-rs: opt-in secure email change (GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED), named as
-- Supabase names them. email_change_token_current holds the digest of the token mailed to the
-- current address; email_change_confirm_status is 1 once one of the two links was followed.
-- The Go server ignores both columns.
-- @if_column_missing users email_change_token_current
ALTER TABLE {{prefix}}users ADD COLUMN email_change_token_current varchar(255) NULL DEFAULT '' AFTER email_change_token;
-- @if_column_missing users email_change_confirm_status
ALTER TABLE {{prefix}}users ADD COLUMN email_change_confirm_status tinyint(1) NULL DEFAULT 0 AFTER email_change;
