DROP INDEX IF EXISTS "interviews_jobInfoId_updatedAt_idx";
