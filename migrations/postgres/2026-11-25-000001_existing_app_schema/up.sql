-- The schema the original app's own migrations created, unchanged: same type, table,
-- column and constraint names, so both apps can share one database. A database that
-- already has it is adopted (checked, then recorded as applied) instead of migrated.
DO $$
BEGIN
    IF to_regclass('"users"') IS NOT NULL THEN
        RAISE EXCEPTION 'this database already has the original app''s tables: run `jobprep migrate`, which adopts them, instead of this migration';
    END IF;
END $$;

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

-- drizzle-kit's journal, as its migrator writes it after applying the app's four
-- migrations (hash: sha256 of the migration file; created_at: its `when` in
-- meta/_journal.json). Its migrator applies only migrations newer than the newest
-- created_at, so with these rows the app's `drizzle-kit migrate` accepts this database
-- as up to date instead of failing on "type already exists".
CREATE SCHEMA IF NOT EXISTS "drizzle";
CREATE TABLE IF NOT EXISTS "drizzle"."__drizzle_migrations" (
    "id" SERIAL PRIMARY KEY,
    "hash" text NOT NULL,
    "created_at" bigint
);
INSERT INTO "drizzle"."__drizzle_migrations" ("hash", "created_at")
SELECT v.hash, v.created_at
FROM (VALUES
    ('ef2c351b1edbcce132176f470772a7389fff874c79cb3f3a908bea5c7e9650e0', 1757715292823),
    ('a8f8936401f75840314e86e52b987859fc956ce3c8b5f7fbe679c06f35aec490', 1758231465703),
    ('793cb6f75c0d0c27be3ec594f90a6a43ea48865bc7bb69ddba21af461a4ab315', 1758289307850),
    ('2b11a357f24b972bbd3baefd4dad90d8a8d35a8a3449c17a77a50457bfb63e5f', 1758289962544)
) AS v (hash, created_at)
WHERE NOT EXISTS (SELECT 1 FROM "drizzle"."__drizzle_migrations" j WHERE j.hash = v.hash)
ORDER BY v.created_at;
