-- Teams: accounts beyond the bootstrap admin, groups, roles and their bindings, access rules and
-- the access audit (orchestrator.md "RBAC and policy"). `rbac` is the only writer of groups,
-- memberships, bindings, rules and the access audit; `users` of users and their credentials.

ALTER TABLE users ADD COLUMN display_name text;

-- One-time tokens that set a password (an account created or reset without one). Stored as a
-- SHA-256; a token works once and until it expires.
CREATE TABLE password_set_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  uuid REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX password_set_tokens_user ON password_set_tokens (user_id);

CREATE TABLE groups (
    id              uuid PRIMARY KEY,
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    display_name    text NOT NULL,
    is_active       boolean NOT NULL DEFAULT true,
    external_source text,
    external_id     text,
    managed_by      text,
    last_synced_at  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      uuid REFERENCES users(id) ON DELETE SET NULL
);

-- 0..n groups per user. Removing a member deletes the row (the audit keeps the history).
CREATE TABLE group_memberships (
    id              uuid PRIMARY KEY,
    group_id        uuid NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id         uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    is_active       boolean NOT NULL DEFAULT true,
    external_source text,
    external_id     text,
    managed_by      text,
    last_synced_at  timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    updated_by      uuid REFERENCES users(id) ON DELETE SET NULL,
    UNIQUE (group_id, user_id)
);
CREATE INDEX group_memberships_user ON group_memberships (user_id) WHERE is_active;

-- The spec's five roles. What each allows is the policy table in code
-- (orchestrator/src/authz/policy.toml), not rows: a role's meaning ships with the release that
-- enforces it.
CREATE TABLE roles (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO roles (id, name, description) VALUES
    ('00000000-0000-4000-9000-000000000001', 'owner', 'manages a project and its members'),
    ('00000000-0000-4000-9000-000000000002', 'admin', 'administers the system, or a project short of deleting it'),
    ('00000000-0000-4000-9000-000000000003', 'operator', 'runs and stops any work in scope'),
    ('00000000-0000-4000-9000-000000000004', 'member', 'creates work and manages their own'),
    ('00000000-0000-4000-9000-000000000005', 'viewer', 'reads');

-- A role held by a user or a group, everywhere (system) or in one project. Revoking deletes the
-- row (the audit keeps the history).
CREATE TABLE role_bindings (
    id             uuid PRIMARY KEY,
    subject_type   text NOT NULL CHECK (subject_type IN ('user', 'group')),
    subject_id     uuid NOT NULL,
    role_id        uuid NOT NULL REFERENCES roles(id),
    scope_type     text NOT NULL CHECK (scope_type IN ('system', 'project')),
    scope_id       uuid REFERENCES projects(id) ON DELETE CASCADE,
    is_active      boolean NOT NULL DEFAULT true,
    managed_by     text,
    last_synced_at timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    updated_by     uuid REFERENCES users(id) ON DELETE SET NULL,
    CHECK ((scope_type = 'system') = (scope_id IS NULL))
);
CREATE UNIQUE INDEX role_bindings_unique
    ON role_bindings (subject_type, subject_id, role_id, scope_type, coalesce(scope_id, '00000000-0000-0000-0000-000000000000'));
CREATE INDEX role_bindings_subject ON role_bindings (subject_id) WHERE is_active;
CREATE INDEX role_bindings_scope ON role_bindings (scope_id);

-- Rules decide before roles: of the rules matching subject, action and resource, the highest
-- priority wins, deny over allow; no matching rule leaves it to the roles. A NULL subject_id
-- matches every subject. The pattern is a name, a prefix ending in `*`, or `*`.
CREATE TABLE access_control_rules (
    id               uuid PRIMARY KEY,
    subject_type     text NOT NULL CHECK (subject_type IN ('user', 'group')),
    subject_id       uuid,
    action           text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.]*$'),
    resource_type    text NOT NULL CHECK (resource_type ~ '^[a-z][a-z0-9_.]*$'),
    resource_pattern text NOT NULL CHECK (resource_pattern <> '' AND length(resource_pattern) <= 256),
    effect           text NOT NULL CHECK (effect IN ('allow', 'deny')),
    priority         integer NOT NULL DEFAULT 0,
    conditions       jsonb,
    reason           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       uuid REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX access_control_rules_subject ON access_control_rules (subject_id);

-- Membership changes, role grants and revokes, user state changes and every denied request.
CREATE TABLE access_control_audit_log (
    id            uuid PRIMARY KEY,
    subject_type  text NOT NULL CHECK (subject_type IN ('user', 'anonymous')),
    subject_id    uuid,
    subject_handle text,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource      text NOT NULL,
    decision      text NOT NULL CHECK (decision IN ('allow', 'deny')),
    reason        text,
    task_id       uuid,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_control_audit_created ON access_control_audit_log (created_at DESC, id);
CREATE INDEX access_control_audit_subject ON access_control_audit_log (subject_id, created_at DESC);

-- Today's data carried over: the bootstrap admin is bound to the system admin role, every user
-- owns their personal default project, and tasks and threads without a project move into their
-- creator's default project (where the gateway already filed them).
INSERT INTO role_bindings (id, subject_type, subject_id, role_id, scope_type, scope_id)
SELECT gen_random_uuid(), 'user', u.id, r.id, 'system', NULL
FROM users u JOIN roles r ON r.name = 'admin'
WHERE u.handle = 'admin';

INSERT INTO role_bindings (id, subject_type, subject_id, role_id, scope_type, scope_id)
SELECT gen_random_uuid(), 'user', u.id, r.id, 'project', p.id
FROM users u
JOIN projects p ON p.slug = 'default-' || u.id::text
JOIN roles r ON r.name = 'owner';

UPDATE tasks t SET project_id = p.id
FROM projects p WHERE t.project_id IS NULL AND p.slug = 'default-' || t.created_by::text;

UPDATE chat_threads c SET project_id = p.id
FROM projects p WHERE c.project_id IS NULL AND p.slug = 'default-' || c.user_id::text;

CREATE INDEX tasks_project_created ON tasks (project_id, created_at DESC, id);

-- Audit events the account routes add.
ALTER TABLE auth_audit_log DROP CONSTRAINT auth_audit_log_event_type_check;
ALTER TABLE auth_audit_log ADD CONSTRAINT auth_audit_log_event_type_check CHECK (event_type IN (
    'login_success', 'login_failure', 'refresh_success', 'refresh_failure', 'logout',
    'session_revoked', 'user_created', 'user_disabled', 'user_reenabled', 'password_changed',
    'password_reset', 'api_key_created', 'api_key_revoked', 'api_key_first_use', 'password_set'));
