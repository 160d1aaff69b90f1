// The original app's schema as drizzle-orm 0.44 declares it, written from the schema
// facts in crates/repo/tests/fixtures/original_app_schema.sql, plus what the app's team
// adds to share its database with jobprep: the five index declarations marked
// "jobprep index". Without them `drizzle-kit push` drops jobprep's indexes.
import { sql } from "drizzle-orm";
import { index, pgEnum, pgTable, timestamp, uuid, varchar } from "drizzle-orm/pg-core";

export const experienceLevels = ["junior", "mid-level", "senior"] as const;
export const experienceLevelEnum = pgEnum("job_infos_experience_level", experienceLevels);

export const questionDifficulties = ["easy", "medium", "hard"] as const;
export const questionDifficultyEnum = pgEnum("questions_question_difficulty", questionDifficulties);

const id = uuid().primaryKey().defaultRandom();
const createdAt = timestamp({ withTimezone: true }).notNull().defaultNow();
const updatedAt = timestamp({ withTimezone: true })
  .notNull()
  .defaultNow()
  .$onUpdate(() => new Date());

export const UserTable = pgTable("users", {
  id: varchar({ length: 255 }).primaryKey(),
  name: varchar({ length: 255 }).notNull(),
  email: varchar({ length: 255 }).notNull().unique(),
  imageUrl: varchar({ length: 1000 }),
  createdAt,
  updatedAt,
});

export const JobInfoTable = pgTable(
  "job_info",
  {
    id,
    title: varchar(),
    name: varchar().notNull(),
    experienceLevel: experienceLevelEnum().notNull(),
    description: varchar().notNull(),
    userId: varchar()
      .references(() => UserTable.id, { onDelete: "cascade" })
      .notNull(),
    createdAt,
    updatedAt,
  },
  // PostgreSQL's DESC means NULLS FIRST; a plain .desc() would make push rebuild the
  // index as DESC NULLS LAST.
  (table) => [
    index("job_info_userId_updatedAt_idx").on(table.userId, table.updatedAt.desc().nullsFirst()), // jobprep index
    index("job_info_userId_id_idx").on(table.userId, table.id), // jobprep index
  ],
);

export const InterviewTable = pgTable(
  "interviews",
  {
    id,
    jobInfoId: uuid()
      .references(() => JobInfoTable.id, { onDelete: "cascade" })
      .notNull(),
    duration: varchar().notNull(),
    humeChatId: varchar(),
    feedback: varchar(),
    createdAt,
    updatedAt,
  },
  (table) => [
    index("interviews_jobInfoId_updatedAt_idx").on(table.jobInfoId, table.updatedAt.desc().nullsFirst()), // jobprep index
    index("interviews_jobInfoId_humeChatId_idx").on(table.jobInfoId).where(sql`${table.humeChatId} IS NOT NULL`), // jobprep index
  ],
);

export const QuestionTable = pgTable(
  "questions",
  {
    id,
    jobInfoId: uuid()
      .references(() => JobInfoTable.id, { onDelete: "cascade" })
      .notNull(),
    text: varchar().notNull(),
    difficulty: questionDifficultyEnum().notNull(),
    createdAt,
    updatedAt,
  },
  (table) => [
    index("questions_jobInfoId_createdAt_idx").on(table.jobInfoId, table.createdAt), // jobprep index
  ],
);
