DROP TABLE "questions";
DROP TABLE "interviews";
DROP TABLE "job_info";
DROP TABLE "users";
DROP TYPE "questions_question_difficulty";
DROP TYPE "job_infos_experience_level";
