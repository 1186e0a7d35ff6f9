-- Task artifacts hold real content. orchestrator/src/artifacts.rs is the only writer.
--
-- The bytes live in PostgreSQL, so that an artifact is in the same backup, transaction and
-- access control as its task (a task and its uploads are created in one transaction), and in a
-- table of their own: the metadata rows are read by every task view (its `attachments`) and
-- every listing, and keeping up to 10 MiB per row out of them means no query of metadata can
-- pull content by accident, and rewriting content never rewrites the metadata row's history.
-- Rows from before this migration are path-only references: no content row, NULL size,
-- content type and checksum.

ALTER TABLE task_artifacts
    -- The job that wrote the artifact (MCP artifact.put from a sandbox), if any.
    ADD COLUMN job_id     uuid REFERENCES jobs(id) ON DELETE SET NULL,
    -- The user who uploaded it (or on whose behalf a job wrote it), if any.
    ADD COLUMN created_by uuid REFERENCES users(id) ON DELETE SET NULL,
    ADD CONSTRAINT task_artifacts_size CHECK (size_bytes IS NULL OR size_bytes BETWEEN 0 AND 10485760),
    ADD CONSTRAINT task_artifacts_checksum CHECK (checksum_sha256 IS NULL OR checksum_sha256 ~ '^[0-9a-f]{64}$'),
    ADD CONSTRAINT task_artifacts_content_type CHECK (content_type IS NULL OR length(content_type) <= 255);

CREATE TABLE task_artifact_contents (
    artifact_id uuid PRIMARY KEY REFERENCES task_artifacts(id) ON DELETE CASCADE,
    content     bytea NOT NULL CHECK (length(content) <= 10485760)
);
-- Uploads are mostly compressed already (archives, images); do not spend CPU compressing them
-- again, and let a download read a slice without decompressing.
ALTER TABLE task_artifact_contents ALTER COLUMN content SET STORAGE EXTERNAL;
