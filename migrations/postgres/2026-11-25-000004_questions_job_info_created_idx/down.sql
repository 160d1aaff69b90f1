DROP INDEX CONCURRENTLY IF EXISTS "questions_jobInfoId_createdAt_idx";
