-- Lists a user's job infos newest first; also indexes the foreign key to users.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "job_info_userId_updatedAt_idx" ON "job_info" ("userId", "updatedAt" DESC);
