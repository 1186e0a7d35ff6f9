-- Each time a job went back to the queue (a failed delivery, a node that stopped mid-run, a
-- lease that ran out) or gave up: when, on which node and why, in words for the task's owner.
-- Operators' details (worker URLs, error chains) stay in last_error and the log.
ALTER TABLE jobs ADD COLUMN setbacks jsonb NOT NULL DEFAULT '[]';
