DROP INDEX IF EXISTS "job_info_userId_updatedAt_idx";
