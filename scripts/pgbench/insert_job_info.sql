-- jobprep_job_infos::insert: the statement jobprep sends, ids as in seed.sql.
\set k random(0, 1999)
\set u :k / 2
\set r random(0, 9223372036854775806)
INSERT INTO "job_info" ("id", "title", "name", "experienceLevel", "description", "userId", "createdAt", "updatedAt") SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000000)::bigint), 16, '0') || lpad(to_hex(:r::bigint), 16, '0'))::uuid, 'Bench title', 'Bench job', 'senior', 'A job for the benchmark', "users"."id", now(), now() FROM "users" WHERE ("users"."id" = ('user_bench_' || lpad(:u::text, 6, '0'))) ON CONFLICT ("id") DO NOTHING RETURNING "job_info"."id", "job_info"."userId";
