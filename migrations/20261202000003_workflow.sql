-- The durable workflow of prompt tasks (orchestrator/src/workflow/, workflow_mcp_agents.md §1.2).
-- Only the workflow module reads and writes these two tables.
--
-- A task's checkpoint: the workflow state (the spec's state JSON) after the last node that ran,
-- upserted after every node; a resume runs the successor of last_node_id.
CREATE TABLE workflow_checkpoints (
    id           uuid PRIMARY KEY,
    task_id      uuid NOT NULL UNIQUE REFERENCES tasks(id) ON DELETE CASCADE,
    state        jsonb NOT NULL CHECK (jsonb_typeof(state) = 'object'),
    last_node_id text NOT NULL CHECK (last_node_id <> ''),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Who drives a task's workflow: at most one holder per task across processes. A row whose
-- holder_id is NULL (released) or whose expires_at has passed is free. The orchestrator's own
-- drivers renew expires_at while they run; external runners (the workflow API) get a fixed TTL.
-- Tasks have no plan_id yet, so the spec's start gate (plan state, dependencies) always allows.
CREATE TABLE task_workflow_leases (
    id         uuid PRIMARY KEY,
    task_id    uuid NOT NULL UNIQUE REFERENCES tasks(id) ON DELETE CASCADE,
    lease_id   uuid NOT NULL,
    holder_id  text,
    expires_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
