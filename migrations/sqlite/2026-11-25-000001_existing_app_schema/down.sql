-- Reverting the baseline drops the original app's tables. jobprep refuses it unless
-- asked by name (`jobprep migrate drop-app-schema`); this file keeps the rule for any
-- other tool (`diesel migration revert`): it never drops a table that holds rows. The
-- CHECK fails, and the migration's transaction rolls back, when any table has a row.
CREATE TEMP TABLE "jobprep_drop_guard" (
    "rows" INTEGER NOT NULL
        CONSTRAINT "refusing_to_drop_the_original_apps_tables_they_hold_rows" CHECK ("rows" = 0)
);
INSERT INTO "jobprep_drop_guard" ("rows")
SELECT (SELECT count(*) FROM "users") + (SELECT count(*) FROM "job_info")
     + (SELECT count(*) FROM "interviews") + (SELECT count(*) FROM "questions");
DROP TABLE "jobprep_drop_guard";

DROP TABLE "questions";
DROP TABLE "interviews";
DROP TABLE "job_info";
DROP TABLE "users";
