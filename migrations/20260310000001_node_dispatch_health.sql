-- A node whose worker API refused, failed or did not answer is paused for dispatch with a growing
-- backoff, so a dead node cannot keep winning the claim while a healthy one idles. A delivery
-- the worker answers resets both columns.
ALTER TABLE nodes
    ADD COLUMN dispatch_failures     integer NOT NULL DEFAULT 0 CHECK (dispatch_failures >= 0),
    ADD COLUMN dispatch_paused_until timestamptz;
