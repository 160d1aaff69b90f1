-- SQLite twin of the PostgreSQL baseline: same tables, columns and constraint names.
-- uuid, timestamptz and the enum types are TEXT; CHECK constraints keep the enums'
-- labels; timestamps are fixed-width RFC 3339 UTC with microseconds (text order is
-- time order). STRICT makes SQLite enforce the declared column types.
CREATE TABLE "users" (
    "id"        TEXT PRIMARY KEY NOT NULL,
    "name"      TEXT NOT NULL,
    "email"     TEXT NOT NULL,
    "imageUrl"  TEXT,
    "createdAt" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    "updatedAt" TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    CONSTRAINT "users_email_unique" UNIQUE ("email")
) STRICT;

CREATE TABLE "job_info" (
    "id"              TEXT PRIMARY KEY NOT NULL,
    "title"           TEXT,
    "name"            TEXT NOT NULL,
    "experienceLevel" TEXT NOT NULL
        CONSTRAINT "job_info_experienceLevel_check"
        CHECK ("experienceLevel" IN ('junior', 'mid-level', 'senior')),
    "description"     TEXT NOT NULL,
    "userId"          TEXT NOT NULL
        CONSTRAINT "job_info_userId_users_id_fk"
        REFERENCES "users" ("id") ON DELETE CASCADE ON UPDATE NO ACTION,
    "createdAt"       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    "updatedAt"       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
) STRICT;

CREATE TABLE "interviews" (
    "id"         TEXT PRIMARY KEY NOT NULL,
    "jobInfoId"  TEXT NOT NULL
        CONSTRAINT "interviews_jobInfoId_job_info_id_fk"
        REFERENCES "job_info" ("id") ON DELETE CASCADE ON UPDATE NO ACTION,
    "duration"   TEXT NOT NULL,
    "humeChatId" TEXT,
    "feedback"   TEXT,
    "createdAt"  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    "updatedAt"  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
) STRICT;

CREATE TABLE "questions" (
    "id"         TEXT PRIMARY KEY NOT NULL,
    "jobInfoId"  TEXT NOT NULL
        CONSTRAINT "questions_jobInfoId_job_info_id_fk"
        REFERENCES "job_info" ("id") ON DELETE CASCADE ON UPDATE NO ACTION,
    "text"       TEXT NOT NULL,
    "difficulty" TEXT NOT NULL
        CONSTRAINT "questions_difficulty_check"
        CHECK ("difficulty" IN ('easy', 'medium', 'hard')),
    "createdAt"  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'),
    "updatedAt"  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')
) STRICT;
