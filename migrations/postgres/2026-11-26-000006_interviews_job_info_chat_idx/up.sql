-- Lets the plan quota count a user's interviews that have a chat id from the index alone
-- (an index-only scan of a partial index). The chat id itself is not in the index: it
-- is an unbounded varchar in the app's schema, and a btree entry holds at most about
-- 2,700 bytes, so an index containing it would refuse the app's own long chat ids.
-- An earlier version of this migration did index it; `jobprep migrate` rebuilds an
-- index of ours whose definition changed.
CREATE INDEX CONCURRENTLY IF NOT EXISTS "interviews_jobInfoId_humeChatId_idx" ON "interviews" ("jobInfoId") WHERE "humeChatId" IS NOT NULL;
