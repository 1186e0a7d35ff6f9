-- User preferences (workflow_mcp_agents.md §5). orchestrator/src/preferences.rs is the only
-- writer of both tables; every write and its audit row commit together.

CREATE TABLE preference_entries (
    id          uuid PRIMARY KEY,
    -- 'group' is part of the spec's precedence (system < group < user < project < task) and
    -- accepted here so that groups need no schema change; nothing writes it yet.
    scope_type  text NOT NULL CHECK (scope_type IN ('system', 'group', 'user', 'project', 'task')),
    -- The user, group, project or task the entry belongs to. Not a foreign key: it points into
    -- a different table per scope type (checked by the writer).
    scope_id    uuid,
    key         text NOT NULL CHECK (key ~ '^[a-z0-9_.-]+$' AND length(key) <= 256),
    -- JSON null is a value: it masks the key at lower scopes.
    value       jsonb NOT NULL,
    value_type  text NOT NULL CHECK (value_type IN ('string', 'number', 'boolean', 'object', 'array')),
    version     bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  uuid REFERENCES users(id) ON DELETE SET NULL,
    CHECK ((scope_type = 'system') = (scope_id IS NULL)),
    -- NULLS NOT DISTINCT: the system scope (scope_id NULL) has each key once too.
    CONSTRAINT preference_entries_scope_key UNIQUE NULLS NOT DISTINCT (scope_type, scope_id, key)
);

-- The effective view reads every entry of a few scopes at once.
CREATE INDEX preference_entries_scope ON preference_entries (scope_type, scope_id);

-- One row per create, update and delete. entry_id is not a foreign key, and the scope and key
-- are copied, so that the history of a deleted entry stays readable.
CREATE TABLE preference_audit_log (
    id          uuid PRIMARY KEY,
    entry_id    uuid NOT NULL,
    scope_type  text NOT NULL,
    scope_id    uuid,
    key         text NOT NULL,
    -- NULL (SQL) before a create and after a delete; JSON null is a stored value.
    old_value   jsonb,
    new_value   jsonb,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  uuid REFERENCES users(id) ON DELETE SET NULL,
    reason      text CHECK (length(reason) <= 1024)
);

CREATE INDEX preference_audit_log_entry ON preference_audit_log (entry_id, changed_at);
