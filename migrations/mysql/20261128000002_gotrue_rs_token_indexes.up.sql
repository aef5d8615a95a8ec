-- gotrue-rs: tokens are looked up by their digest; index the columns that are searched.
-- @if_index_missing users users_confirmation_token_idx
CREATE INDEX users_confirmation_token_idx ON {{prefix}}users (confirmation_token);
-- @if_index_missing users users_recovery_token_idx
CREATE INDEX users_recovery_token_idx ON {{prefix}}users (recovery_token);
