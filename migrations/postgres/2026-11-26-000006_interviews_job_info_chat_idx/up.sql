-- Lets the plan quota count a user's interviews that have a chat id from the index alone
-- (an index-only scan): the chat id is in the index, so `IS NOT NULL` needs no table row.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "interviews_jobInfoId_humeChatId_idx" ON "interviews" ("jobInfoId", "humeChatId");
