-- Lists a job info's interviews newest first, counts a user's interviews, serves the cascade.
CREATE INDEX IF NOT EXISTS "interviews_jobInfoId_updatedAt_idx" ON "interviews" ("jobInfoId", "updatedAt" DESC);
