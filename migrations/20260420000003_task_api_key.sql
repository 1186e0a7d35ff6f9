-- The API key a task was created with, so that the Project Manager's model calls for the task
-- are charged to that key as well as to its user (GET /v1/users/me/usage).
ALTER TABLE tasks ADD COLUMN api_key_id uuid REFERENCES api_keys(id) ON DELETE SET NULL;
