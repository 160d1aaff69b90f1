-- Lists a job info's questions oldest first, counts a user's questions, serves the cascade.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "questions_jobInfoId_createdAt_idx" ON "questions" ("jobInfoId", "createdAt");
