-- Which key minted each key (NULL for the bootstrap key and keys minted by app tokens):
-- revoking a key revokes every key it minted, and theirs.
ALTER TABLE api_keys ADD COLUMN created_by_key TEXT;
CREATE INDEX api_keys_created_by_key ON api_keys (created_by_key);
