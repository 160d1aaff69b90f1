-- Reverting the baseline drops the original app's tables. jobprep refuses it unless
-- asked by name (`jobprep migrate drop-app-schema`); this file keeps the rule for any
-- other tool (`diesel migration revert`): it never drops a table that holds rows. The
-- lock keeps rows from arriving between the check and the drop.
LOCK TABLE "users", "job_info", "interviews", "questions" IN ACCESS EXCLUSIVE MODE;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM "users") OR EXISTS (SELECT 1 FROM "job_info")
        OR EXISTS (SELECT 1 FROM "interviews") OR EXISTS (SELECT 1 FROM "questions") THEN
        RAISE EXCEPTION 'refusing to drop the original app''s tables: they hold rows';
    END IF;
END $$;

DROP TABLE "questions";
DROP TABLE "interviews";
DROP TABLE "job_info";
DROP TABLE "users";
DROP TYPE "questions_question_difficulty";
DROP TYPE "job_infos_experience_level";

-- The journal entries the baseline wrote go with the tables, so the app's own
-- `drizzle-kit migrate` would create them again rather than believe they exist.
DO $$
BEGIN
    IF to_regclass('"drizzle"."__drizzle_migrations"') IS NOT NULL THEN
        DELETE FROM "drizzle"."__drizzle_migrations" WHERE "hash" IN (
            'ef2c351b1edbcce132176f470772a7389fff874c79cb3f3a908bea5c7e9650e0',
            'a8f8936401f75840314e86e52b987859fc956ce3c8b5f7fbe679c06f35aec490',
            '793cb6f75c0d0c27be3ec594f90a6a43ea48865bc7bb69ddba21af461a4ab315',
            '2b11a357f24b972bbd3baefd4dad90d8a8d35a8a3449c17a77a50457bfb63e5f');
        IF NOT EXISTS (SELECT 1 FROM "drizzle"."__drizzle_migrations") THEN
            DROP TABLE "drizzle"."__drizzle_migrations";
            BEGIN
                DROP SCHEMA "drizzle";
            EXCEPTION WHEN dependent_objects_still_exist THEN
                NULL; -- something else lives in it: keep it
            END;
        END IF;
    END IF;
END $$;
