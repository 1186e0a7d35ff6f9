-- The Project Manager loop of prompt tasks (orchestrator/src/pm/): one row per step, written
-- before the next step starts, so that a restarted orchestrator resumes a task where it stopped.
-- A step is one model call and what came of it: an answer, a sandbox job (whose output is fed
-- back to the model in the next step) or an error. The job queue (jobs.rs) still owns jobs and
-- task status; this table only points at the jobs a step enqueued.
CREATE TABLE task_steps (
    id                uuid PRIMARY KEY,
    task_id           uuid NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    step_index        integer NOT NULL CHECK (step_index >= 0),
    model             text NOT NULL,
    node_slug         text NOT NULL,
    -- The messages sent (the chat request's `messages`).
    request           jsonb NOT NULL,
    -- The model's raw text, and what it decided: {"action":"answer"|"run", ...}.
    response          text,
    decision          jsonb,
    job_id            uuid REFERENCES jobs(id) ON DELETE SET NULL,
    -- The job's stdout/stderr/exit code as fed back to the model (capped).
    output            jsonb,
    error             text,
    prompt_tokens     bigint NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
    completion_tokens bigint NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
    model_ms          bigint NOT NULL DEFAULT 0 CHECK (model_ms >= 0),
    job_ms            bigint CHECK (job_ms >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (task_id, step_index)
);
