-- jobprep_questions::insert: the statement jobprep sends, ids as in seed.sql.
\set k random(0, 1999)
\set u :k / 2
\set r random(0, 9223372036854775806)
INSERT INTO "questions" ("id", "jobInfoId", "text", "difficulty", "createdAt", "updatedAt") SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 16, '0') || lpad(to_hex(:r::bigint), 16, '0'))::uuid, "job_info"."id", 'How do you size a connection pool?', 'medium', now(), now() FROM "job_info" WHERE (("job_info"."userId" = ('user_bench_' || lpad(:u::text, 6, '0'))) AND ("job_info"."id" = ('00000000-0000-4000-8000-' || lpad(:k::text, 12, '0'))::uuid)) ON CONFLICT ("id") DO NOTHING RETURNING "questions"."id", "questions"."jobInfoId";
