-- Lets the plan quotas find a user's job info ids from the index alone (an index-only
-- scan), where "job_info_userId_updatedAt_idx" would read each row from the table.
CREATE INDEX IF NOT EXISTS "job_info_userId_id_idx" ON "job_info" ("userId", "id");
