-- jobprep_interviews::list_for_job_info: the statement jobprep sends, ids as in seed.sql.
\set k random(0, 1999)
\set u :k / 2
SELECT "interviews"."id", "interviews"."jobInfoId", "interviews"."duration", "interviews"."humeChatId", "interviews"."feedback", "interviews"."createdAt", "interviews"."updatedAt" FROM ("interviews" INNER JOIN "job_info" ON ("interviews"."jobInfoId" = "job_info"."id")) WHERE ((("job_info"."id" = ('00000000-0000-4000-8000-' || lpad(:k::text, 12, '0'))::uuid) AND ("job_info"."userId" = ('user_bench_' || lpad(:u::text, 6, '0')))) AND ("interviews"."humeChatId" IS NOT NULL)) ORDER BY "interviews"."updatedAt" DESC, "interviews"."id" DESC;
