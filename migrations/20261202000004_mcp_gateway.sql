-- The MCP gateway (orchestrator/src/mcp/): its audit log, its access rules and the job-scoped
-- memory of sandbox agents. `mcp::audit` is the only writer of the audit log, `mcp::tools::memory`
-- the only writer of agent_memory.

-- One row per tools/call, allowed or denied, succeeded or failed. Never arguments or results.
CREATE TABLE mcp_tool_call_audit_log (
    id           uuid PRIMARY KEY,
    created_at   timestamptz NOT NULL DEFAULT now(),
    task_id      uuid,
    project_id   uuid,
    run_id       uuid,
    job_id       uuid,
    -- The caller's agent type (pm | pa | sandbox), or `anonymous` without a valid token.
    subject_type text NOT NULL,
    -- The token's id (jti): one token, one subject.
    subject_id   text,
    user_id      uuid,
    group_ids    jsonb,
    role_names   jsonb,
    tool_name    text NOT NULL,
    decision     text NOT NULL CHECK (decision IN ('allow', 'deny')),
    status       text NOT NULL CHECK (status IN ('success', 'error')),
    duration_ms  bigint NOT NULL CHECK (duration_ms >= 0),
    error_type   text,
    CHECK (decision = 'allow' OR status = 'error')
);
CREATE INDEX mcp_audit_created ON mcp_tool_call_audit_log (created_at DESC, id);
CREATE INDEX mcp_audit_task ON mcp_tool_call_audit_log (task_id, created_at DESC) WHERE task_id IS NOT NULL;

-- The `mcp.tool.invoke` access rules: a call is allowed only if an `allow` rule matches the
-- caller's agent type and the tool, and no `deny` rule does (deny wins, default deny).
-- `tool_pattern` is a tool name or a prefix ending in `*`.
CREATE TABLE mcp_access_rules (
    id           uuid PRIMARY KEY,
    agent_type   text NOT NULL CHECK (agent_type IN ('pm', 'pa', 'sandbox', '*')),
    tool_pattern text NOT NULL CHECK (tool_pattern ~ '^[a-z0-9_.]*\*?$' AND tool_pattern <> ''),
    effect       text NOT NULL CHECK (effect IN ('allow', 'deny')),
    reason       text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_type, tool_pattern, effect)
);
-- Every agent type may invoke what its role allowlist (in code) grants; operators narrow it
-- with deny rules.
INSERT INTO mcp_access_rules (id, agent_type, tool_pattern, effect, reason) VALUES
    ('00000000-0000-4000-8000-000000000001', 'pm', '*', 'allow', 'default: the role allowlist decides'),
    ('00000000-0000-4000-8000-000000000002', 'pa', '*', 'allow', 'default: the role allowlist decides'),
    ('00000000-0000-4000-8000-000000000003', 'sandbox', '*', 'allow', 'default: the role allowlist decides');

-- `memory.*`: notes a sandbox agent keeps for the lifetime of its job.
CREATE TABLE agent_memory (
    job_id     uuid NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    key        text NOT NULL CHECK (key <> '' AND length(key) <= 256),
    content    text NOT NULL,
    summary    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, key)
);
