-- Placement (orchestrator/src/scheduler.rs) and drain.
--
-- What a task's jobs need of a node (contracts `JobRequirements`); each job carries a copy, so
-- that jobs a planner adds later are placed by the same rule.
ALTER TABLE tasks ADD COLUMN requirements jsonb;
ALTER TABLE jobs ADD COLUMN requirements jsonb;
-- Why the dispatcher last could not place a queued job, in words for its owner; cleared when
-- the job is claimed.
ALTER TABLE jobs ADD COLUMN wait_reason text;
-- A drained node (status 'drained') takes no new jobs; past this moment its running jobs are
-- stopped and requeued elsewhere. NULL: they may finish.
ALTER TABLE nodes ADD COLUMN drain_deadline timestamptz;
-- Counting each node's running jobs for placement.
CREATE INDEX jobs_running_node ON jobs (node_id) WHERE status = 'running';
