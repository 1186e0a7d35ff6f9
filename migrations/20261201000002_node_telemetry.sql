-- The last snapshot the orchestrator pulled from a node's Worker Telemetry API
-- (orchestrator/src/telemetry.rs): `{info, stats}` as the worker answered. For operators only:
-- placement never reads it. Kept when a later pull fails, so `telemetry_at` shows its age.
ALTER TABLE nodes ADD COLUMN telemetry jsonb;
ALTER TABLE nodes ADD COLUMN telemetry_at timestamptz;
