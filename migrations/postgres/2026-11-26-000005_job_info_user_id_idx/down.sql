DROP INDEX CONCURRENTLY IF EXISTS "job_info_userId_id_idx";
