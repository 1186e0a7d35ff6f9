-- The job queue (orchestrator/src/jobs.rs) derives a task's status from all its jobs.
--
-- `lease_expired` was a job status nothing ever wrote: an expired lease puts the job straight
-- back in the queue (or fails it when its attempts are used up). It leaves the CHECK and the
-- transition trigger.
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('queued', 'running', 'completed', 'failed', 'canceled'));

CREATE OR REPLACE FUNCTION cynode_check_job_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = OLD.status THEN
        RETURN NEW;
    END IF;
    IF NOT ((OLD.status = 'queued' AND NEW.status IN ('running', 'failed', 'canceled'))
         OR (OLD.status = 'running' AND NEW.status IN ('queued', 'completed', 'failed', 'canceled'))) THEN
        RAISE EXCEPTION 'job % may not move from % to %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END $$;

-- True while the task's planner may still add jobs: such a task does not complete when its
-- jobs have, only when the planner concludes it. A plan fixed at creation (script, commands)
-- is closed from the start.
ALTER TABLE tasks ADD COLUMN plan_open boolean NOT NULL DEFAULT false;
