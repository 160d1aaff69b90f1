-- The schema the original app's own migrations created, unchanged: same type, table,
-- column and constraint names, so both apps can share one database. A database that
-- already has it is adopted (checked, then recorded as applied) instead of migrated.
CREATE TYPE "job_infos_experience_level" AS ENUM ('junior', 'mid-level', 'senior');
CREATE TYPE "questions_question_difficulty" AS ENUM ('easy', 'medium', 'hard');

CREATE TABLE "users" (
    "id"        varchar(255)  PRIMARY KEY NOT NULL,
    "name"      varchar(255)  NOT NULL,
    "email"     varchar(255)  NOT NULL,
    "imageUrl"  varchar(1000),
    "createdAt" timestamp with time zone DEFAULT now() NOT NULL,
    "updatedAt" timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT "users_email_unique" UNIQUE ("email")
);

CREATE TABLE "job_info" (
    "id"              uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "title"           varchar,
    "name"            varchar NOT NULL,
    "experienceLevel" "job_infos_experience_level" NOT NULL,
    "description"     varchar NOT NULL,
    "userId"          varchar NOT NULL,
    "createdAt"       timestamp with time zone DEFAULT now() NOT NULL,
    "updatedAt"       timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE "interviews" (
    "id"         uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "jobInfoId"  uuid NOT NULL,
    "duration"   varchar NOT NULL,
    "humeChatId" varchar,
    "feedback"   varchar,
    "createdAt"  timestamp with time zone DEFAULT now() NOT NULL,
    "updatedAt"  timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE "questions" (
    "id"         uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
    "jobInfoId"  uuid NOT NULL,
    "text"       varchar NOT NULL,
    "difficulty" "questions_question_difficulty" NOT NULL,
    "createdAt"  timestamp with time zone DEFAULT now() NOT NULL,
    "updatedAt"  timestamp with time zone DEFAULT now() NOT NULL
);

ALTER TABLE "job_info" ADD CONSTRAINT "job_info_userId_users_id_fk"
    FOREIGN KEY ("userId") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE NO ACTION;
ALTER TABLE "interviews" ADD CONSTRAINT "interviews_jobInfoId_job_info_id_fk"
    FOREIGN KEY ("jobInfoId") REFERENCES "job_info"("id") ON DELETE CASCADE ON UPDATE NO ACTION;
ALTER TABLE "questions" ADD CONSTRAINT "questions_jobInfoId_job_info_id_fk"
    FOREIGN KEY ("jobInfoId") REFERENCES "job_info"("id") ON DELETE CASCADE ON UPDATE NO ACTION;
