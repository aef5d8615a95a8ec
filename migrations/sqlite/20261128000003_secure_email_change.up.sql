-- gotrue-rs: opt-in secure email change (GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED), named as
-- Supabase names them. email_change_token_current holds the digest of the token mailed to the
-- current address; email_change_confirm_status is 1 once one of the two links was followed.
-- @if_column_missing users email_change_token_current
ALTER TABLE {{prefix}}users ADD COLUMN email_change_token_current TEXT DEFAULT '';
-- @if_column_missing users email_change_confirm_status
ALTER TABLE {{prefix}}users ADD COLUMN email_change_confirm_status INTEGER DEFAULT 0;
