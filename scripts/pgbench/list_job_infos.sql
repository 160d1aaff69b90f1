-- jobprep_job_infos::list_for_user: the statement jobprep sends, ids as in seed.sql.
\set k random(0, 1999)
\set u :k / 2
SELECT "job_info"."id", "job_info"."title", "job_info"."name", "job_info"."experienceLevel", "job_info"."description", "job_info"."userId", "job_info"."createdAt", "job_info"."updatedAt" FROM "job_info" WHERE ("job_info"."userId" = ('user_bench_' || lpad(:u::text, 6, '0'))) ORDER BY "job_info"."updatedAt" DESC, "job_info"."id" DESC;
