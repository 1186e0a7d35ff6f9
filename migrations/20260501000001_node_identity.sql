-- A node's identity: the SHA-256 of the secret issued at its slug's first registration. Re-registering
-- the slug needs the secret. NULL for nodes registered before identities existed: their next
-- registration binds one.
ALTER TABLE nodes ADD COLUMN node_secret_hash bytea CHECK (length(node_secret_hash) = 32);
