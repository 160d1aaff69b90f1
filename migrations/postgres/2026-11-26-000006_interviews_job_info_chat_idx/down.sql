DROP INDEX CONCURRENTLY IF EXISTS "interviews_jobInfoId_humeChatId_idx";
