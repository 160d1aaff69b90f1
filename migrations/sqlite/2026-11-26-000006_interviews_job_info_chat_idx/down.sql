DROP INDEX IF EXISTS "interviews_jobInfoId_humeChatId_idx";
