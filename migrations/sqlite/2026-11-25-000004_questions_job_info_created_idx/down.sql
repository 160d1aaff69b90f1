DROP INDEX IF EXISTS "questions_jobInfoId_createdAt_idx";
