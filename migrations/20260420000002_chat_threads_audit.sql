-- OpenAI-compatible chat on the user gateway (orchestrator/src/chat/).
--
-- A thread is one conversation of a user in a project (NULL: no project / the default one).
-- The gateway continues the user's newest thread of that project until it has been idle for
-- 2 h, or the thread a client names. Message content is stored with detected secrets replaced
-- by SECRET_REDACTED; messages are append-only.
CREATE TABLE chat_threads (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id uuid REFERENCES projects(id) ON DELETE SET NULL,
    title      text CHECK (title IS NULL OR char_length(title) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_threads_user_updated ON chat_threads (user_id, updated_at DESC, id);

CREATE TABLE chat_messages (
    id         uuid PRIMARY KEY,
    thread_id  uuid NOT NULL REFERENCES chat_threads(id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (btrim(role) <> '' AND char_length(role) <= 64),
    content    text NOT NULL,
    model      text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX chat_messages_thread_created ON chat_messages (thread_id, created_at, id);

-- One row per chat completion call, without any message content.
CREATE TABLE chat_audit_log (
    id                uuid PRIMARY KEY,
    user_id           uuid REFERENCES users(id) ON DELETE SET NULL,
    api_key_id        uuid REFERENCES api_keys(id) ON DELETE SET NULL,
    project_id        uuid REFERENCES projects(id) ON DELETE SET NULL,
    thread_id         uuid REFERENCES chat_threads(id) ON DELETE SET NULL,
    model             text,
    stream            boolean NOT NULL,
    outcome           text NOT NULL CHECK (outcome IN ('success', 'error', 'canceled', 'timeout')),
    status_code       integer NOT NULL,
    error_code        text,
    redaction_applied boolean NOT NULL DEFAULT false,
    redaction_kinds   jsonb,
    duration_ms       bigint NOT NULL CHECK (duration_ms >= 0),
    prompt_tokens     bigint,
    completion_tokens bigint,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_audit_log_user_created ON chat_audit_log (user_id, created_at);
