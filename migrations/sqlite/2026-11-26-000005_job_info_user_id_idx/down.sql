DROP INDEX IF EXISTS "job_info_userId_id_idx";
