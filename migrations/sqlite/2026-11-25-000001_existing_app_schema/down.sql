DROP TABLE "questions";
DROP TABLE "interviews";
DROP TABLE "job_info";
DROP TABLE "users";
