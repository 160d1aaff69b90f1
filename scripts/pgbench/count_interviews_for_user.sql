-- jobprep_interviews::count_for_user: the statement jobprep sends, ids as in seed.sql.
\set k random(0, 1999)
\set u :k / 2
SELECT COUNT(*) FROM ("interviews" INNER JOIN "job_info" ON ("interviews"."jobInfoId" = "job_info"."id")) WHERE (("job_info"."userId" = ('user_bench_' || lpad(:u::text, 6, '0'))) AND ("interviews"."humeChatId" IS NOT NULL));
