-- jobprep_job_infos::get: the statement jobprep sends, ids as in seed.sql.
\set k random(0, 1999)
\set u :k / 2
SELECT "job_info"."id", "job_info"."title", "job_info"."name", "job_info"."experienceLevel", "job_info"."description", "job_info"."userId", "job_info"."createdAt", "job_info"."updatedAt" FROM "job_info" WHERE (("job_info"."id" = ('00000000-0000-4000-8000-' || lpad(:k::text, 12, '0'))::uuid) AND ("job_info"."userId" = ('user_bench_' || lpad(:u::text, 6, '0'))));
