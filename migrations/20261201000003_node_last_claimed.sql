-- When the dispatcher last gave the node a job: among equally loaded nodes the one that waited
-- longest goes next, so short jobs spread instead of all going to the first slug.
ALTER TABLE nodes ADD COLUMN last_claimed_at timestamptz;
