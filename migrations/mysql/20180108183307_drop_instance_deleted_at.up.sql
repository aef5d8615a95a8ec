-- @if_column_exists instances deleted_at
ALTER TABLE {{prefix}}instances DROP COLUMN deleted_at;
