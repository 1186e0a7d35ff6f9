-- The Project Manager's managed sandboxes (`sandbox.*` MCP tools): which node hosts each, so
-- that later calls reach it. `mcp::tools::sandbox` is the only writer. The sandbox itself lives
-- on the node (its worker API removes it on `sandbox.destroy` or after its idle timeout).
CREATE TABLE pm_sandboxes (
    -- The tools' `job_id`.
    id         uuid PRIMARY KEY,
    task_id    uuid NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    node_id    uuid NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pm_sandboxes_node ON pm_sandboxes (node_id);
CREATE INDEX pm_sandboxes_task ON pm_sandboxes (task_id);
