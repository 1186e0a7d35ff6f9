-- Personal API keys (orchestrator/src/apikeys.rs) and token usage (orchestrator/src/usage.rs).
--
-- A key is `cyn_` + 64 hex digits (32 random bytes). Only its SHA-256 is stored; `prefix` and
-- `last_four` are there so that a user can tell their keys apart, and are too short to help
-- anyone guess one. Keys are revoked, never deleted, so that usage and audit rows keep naming
-- them.
CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         text NOT NULL CHECK (btrim(name) <> '' AND char_length(name) <= 128),
    key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    prefix       text NOT NULL,
    last_four    text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,
    -- Moved at most once a minute per key, so that authenticating is not a write per request.
    last_used_at timestamptz,
    revoked_at   timestamptz,
    CHECK (expires_at IS NULL OR expires_at > created_at)
);
CREATE INDEX api_keys_user_created ON api_keys (user_id, created_at DESC, id);

-- Audit rows about a key name it; the key itself is never stored anywhere.
ALTER TABLE auth_audit_log ADD COLUMN api_key_id uuid REFERENCES api_keys(id) ON DELETE SET NULL;
ALTER TABLE auth_audit_log DROP CONSTRAINT auth_audit_log_event_type_check;
ALTER TABLE auth_audit_log ADD CONSTRAINT auth_audit_log_event_type_check
    CHECK (event_type IN (
        'login_success', 'login_failure', 'refresh_success', 'refresh_failure',
        'logout', 'session_revoked', 'user_created', 'user_disabled',
        'user_reenabled', 'password_changed', 'password_reset',
        'api_key_created', 'api_key_revoked', 'api_key_first_use'));

-- One row per model call, charged to the authenticated principal: the user and, when the call
-- came with an API key, that key.
CREATE TABLE token_usage (
    id                uuid PRIMARY KEY,
    user_id           uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    api_key_id        uuid REFERENCES api_keys(id) ON DELETE SET NULL,
    task_id           uuid REFERENCES tasks(id) ON DELETE SET NULL,
    model             text NOT NULL CHECK (btrim(model) <> '' AND char_length(model) <= 256),
    prompt_tokens     bigint NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens bigint NOT NULL CHECK (completion_tokens >= 0),
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX token_usage_user_created ON token_usage (user_id, created_at);
