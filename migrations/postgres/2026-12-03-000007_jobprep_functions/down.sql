DROP FUNCTION IF EXISTS jobprep.delete_user(text);
DROP FUNCTION IF EXISTS jobprep.delete_job_info(text, uuid);
DROP FUNCTION IF EXISTS jobprep.interviews_used_after_turn(text, uuid);
DROP FUNCTION IF EXISTS jobprep.questions_used_after_turn(text);
DROP SCHEMA IF EXISTS jobprep;
