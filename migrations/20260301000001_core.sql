-- Phase 0-1 core schema of the orchestrator. Migrations are the only schema source.
-- Status columns are plain text with CHECK constraints; the transition triggers below make the
-- state machines hold no matter which code path writes.

CREATE TABLE users (
    id              uuid PRIMARY KEY,
    handle          text NOT NULL UNIQUE CHECK (handle <> ''),
    email           text UNIQUE,
    is_active       boolean NOT NULL DEFAULT true,
    external_source text,
    external_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE password_credentials (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    password_hash bytea NOT NULL,
    hash_alg      text NOT NULL CHECK (hash_alg IN ('argon2id')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per issued refresh token; rotation deactivates the old row and inserts a new one.
-- Access tokens name the row they were issued with, so deactivating it revokes both at once.
CREATE TABLE refresh_sessions (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    refresh_token_hash bytea NOT NULL UNIQUE,
    refresh_token_kid  text,
    is_active          boolean NOT NULL DEFAULT true,
    expires_at         timestamptz NOT NULL,
    last_used_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_sessions_active_expires ON refresh_sessions (is_active, expires_at);
CREATE INDEX refresh_sessions_user ON refresh_sessions (user_id);

CREATE TABLE auth_audit_log (
    id             uuid PRIMARY KEY,
    event_type     text NOT NULL CHECK (event_type IN (
                       'login_success', 'login_failure', 'refresh_success', 'refresh_failure',
                       'logout', 'session_revoked', 'user_created', 'user_disabled',
                       'user_reenabled', 'password_changed', 'password_reset')),
    user_id        uuid REFERENCES users(id) ON DELETE SET NULL,
    subject_handle text,
    success        boolean NOT NULL,
    ip_address     inet,
    user_agent     text,
    reason         text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_audit_log_created ON auth_audit_log (created_at);

CREATE TABLE projects (
    id           uuid PRIMARY KEY,
    slug         text NOT NULL UNIQUE,
    display_name text NOT NULL,
    description  text,
    is_active    boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    updated_by   uuid REFERENCES users(id) ON DELETE SET NULL
);

CREATE TABLE nodes (
    id                      uuid PRIMARY KEY,
    node_slug               text NOT NULL UNIQUE CHECK (node_slug <> ''),
    status                  text NOT NULL CHECK (status IN ('registered', 'active', 'inactive', 'drained')),
    -- ULID, replaced whenever the configuration the node should run changes.
    config_version          text NOT NULL CHECK (length(config_version) = 26),
    -- What config_version stands for (worker URL, inference backend); a change issues a new ULID.
    config_content          jsonb NOT NULL,
    worker_api_target_url   text,
    -- Per-node secret the worker API demands from the dispatcher.
    worker_api_bearer_token text,
    config_ack_at           timestamptz,
    config_ack_status       text CHECK (config_ack_status IN ('applied', 'failed', 'rolled_back')),
    config_ack_version      text,
    config_ack_error        jsonb,
    capability_hash         text,
    last_seen_at            timestamptz,
    last_capability_at      timestamptz,
    metadata                jsonb,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);

-- History of capability reports; the newest row per node is the current one.
CREATE TABLE node_capabilities (
    id                  uuid PRIMARY KEY,
    node_id             uuid NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    reported_at         timestamptz NOT NULL,
    capability_hash     text NOT NULL,
    capability_snapshot jsonb NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX node_capabilities_node_created ON node_capabilities (node_id, created_at DESC);

CREATE TABLE tasks (
    id          uuid PRIMARY KEY,
    created_by  uuid NOT NULL REFERENCES users(id),
    project_id  uuid REFERENCES projects(id),
    task_name   text NOT NULL CHECK (task_name <> ''),
    prompt      text NOT NULL,
    input_mode  text NOT NULL CHECK (input_mode IN ('prompt', 'script', 'commands')),
    status      text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'canceled', 'superseded')),
    closed      boolean NOT NULL DEFAULT false,
    summary     text,
    metadata    jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (created_by, task_name),
    CHECK (closed = (status IN ('completed', 'failed', 'canceled', 'superseded')))
);
CREATE INDEX tasks_owner_created ON tasks (created_by, created_at DESC, id);
CREATE INDEX tasks_owner_status_created ON tasks (created_by, status, created_at DESC, id);

CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    task_id          uuid NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    node_id          uuid REFERENCES nodes(id) ON DELETE SET NULL,
    status           text NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'canceled', 'lease_expired')),
    payload          jsonb NOT NULL,
    result           jsonb,
    -- A dispatch holds a lease; only the holder of the current lease may record the outcome.
    lease_id         uuid,
    lease_expires_at timestamptz,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    started_at       timestamptz,
    ended_at         timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'running') = (lease_id IS NOT NULL AND lease_expires_at IS NOT NULL AND node_id IS NOT NULL))
);
CREATE INDEX jobs_task ON jobs (task_id);
CREATE INDEX jobs_queued ON jobs (next_attempt_at, created_at) WHERE status = 'queued';
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'running';

CREATE TABLE task_artifacts (
    id              uuid PRIMARY KEY,
    task_id         uuid NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    run_id          uuid,
    path            text NOT NULL CHECK (path <> '' AND length(path) <= 2048),
    storage_ref     text NOT NULL DEFAULT '',
    size_bytes      bigint,
    content_type    text,
    checksum_sha256 text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, path)
);

-- Terminal states are never left; every other move must be one the state machine allows.
CREATE FUNCTION cynode_check_task_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF NOT ((OLD.status = 'queued' AND NEW.status IN ('running', 'completed', 'failed', 'canceled', 'superseded'))
         OR (OLD.status = 'running' AND NEW.status IN ('queued', 'completed', 'failed', 'canceled', 'superseded'))) THEN
        RAISE EXCEPTION 'task % may not move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER tasks_transition BEFORE UPDATE OF status ON tasks
    FOR EACH ROW EXECUTE FUNCTION cynode_check_task_transition();

CREATE FUNCTION cynode_check_job_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF NOT ((OLD.status = 'queued' AND NEW.status IN ('running', 'failed', 'canceled'))
         OR (OLD.status = 'running' AND NEW.status IN ('queued', 'completed', 'failed', 'canceled', 'lease_expired'))
         OR (OLD.status = 'lease_expired' AND NEW.status IN ('queued', 'failed', 'canceled'))) THEN
        RAISE EXCEPTION 'job % may not move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_transition BEFORE UPDATE OF status ON jobs
    FOR EACH ROW EXECUTE FUNCTION cynode_check_job_transition();
