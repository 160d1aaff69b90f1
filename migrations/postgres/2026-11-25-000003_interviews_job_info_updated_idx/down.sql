DROP INDEX CONCURRENTLY IF EXISTS "interviews_jobInfoId_updatedAt_idx";
