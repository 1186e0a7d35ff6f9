-- node_capabilities keeps a row only when a node's capability changes, so how many reports a
-- node has sent (registrations included) is counted here.
ALTER TABLE nodes ADD COLUMN capability_reports bigint NOT NULL DEFAULT 0 CHECK (capability_reports >= 0);
