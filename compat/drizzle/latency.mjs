// The original app's stack, drizzle-orm 0.44 over node-postgres, doing the use cases of
// jobprep's latency benchmark (scripts/latency-bench.sh) with the same guarantees, one
// query per step as drizzle writes them:
//   node compat/drizzle/latency.mjs URL CALLS
// on a database the script seeded (users lat_user and lat_doomed_drizzle). Prints one
// JSON line per use case, as jobprep's example does. Every use case is warmed first.
// The tables are declared here again, in plain JavaScript (node runs no TypeScript),
// with the columns of schema.ts.
import { and, count, eq, sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/node-postgres";
import { pgEnum, pgTable, timestamp, uuid, varchar } from "drizzle-orm/pg-core";
import pg from "pg";

const experienceLevel = pgEnum("job_infos_experience_level", ["junior", "mid-level", "senior"]);
const difficulty = pgEnum("questions_question_difficulty", ["easy", "medium", "hard"]);
const stamps = () => ({
  createdAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp({ withTimezone: true }).notNull().defaultNow(),
});
const UserTable = pgTable("users", { id: varchar({ length: 255 }).primaryKey(), ...stamps() });
const JobInfoTable = pgTable("job_info", {
  id: uuid().primaryKey().defaultRandom(),
  title: varchar(),
  name: varchar().notNull(),
  experienceLevel: experienceLevel().notNull(),
  description: varchar().notNull(),
  userId: varchar().notNull(),
  ...stamps(),
});
const InterviewTable = pgTable("interviews", {
  id: uuid().primaryKey().defaultRandom(),
  jobInfoId: uuid().notNull(),
  ...stamps(),
});
const QuestionTable = pgTable("questions", {
  id: uuid().primaryKey().defaultRandom(),
  jobInfoId: uuid().notNull(),
  text: varchar().notNull(),
  difficulty: difficulty().notNull(),
  ...stamps(),
});

const [url, callsText] = process.argv.slice(2);
const calls = Number(callsText);
if (!url || !(calls > 0)) {
  console.error("usage: node latency.mjs URL CALLS");
  process.exit(2);
}
const pool = new pg.Pool({ connectionString: url, max: 1 });
const db = drizzle(pool);
const user = "lat_user";
const doomedOwner = "lat_doomed_drizzle";
const LIMIT = 1_000_000_000;

async function report(name, call) {
  for (let i = 0; i < 3; i++) await call();
  const times = [];
  for (let i = 0; i < calls; i++) {
    const started = process.hrtime.bigint();
    await call();
    times.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
  times.sort((a, b) => a - b);
  const at = (q) => times[Math.min(times.length, Math.max(1, Math.ceil(times.length * q))) - 1];
  console.log(JSON.stringify({ stack: "drizzle", case: name, calls, p50_ms: at(0.5), p99_ms: at(0.99) }));
}

const [{ id: job }] = await db
  .select({ id: JobInfoTable.id })
  .from(JobInfoTable)
  .where(eq(JobInfoTable.userId, user))
  .limit(1);

await report("get_job_info", () =>
  db.select().from(JobInfoTable).where(and(eq(JobInfoTable.id, job), eq(JobInfoTable.userId, user))),
);

await report("insert_job_info", () =>
  db
    .insert(JobInfoTable)
    .values({ name: "Latency", experienceLevel: "mid-level", description: "A job for the benchmark", userId: user })
    .returning({ id: JobInfoTable.id, userId: JobInfoTable.userId }),
);

// The quota as one atomic step: the user's row locked by a no-op update (as jobprep
// does, so that REPEATABLE READ refuses a stale count), the count and the owner check
// in one query, then the insert.
await report("insert_question_within_quota", () =>
  db.transaction(async (tx) => {
    await tx.update(UserTable).set({ updatedAt: sql`${UserTable.updatedAt}` }).where(eq(UserTable.id, user));
    const [{ used, owned }] = await tx
      .select({
        used: count(),
        owned: sql`bool_or(${JobInfoTable.id} = ${job})`,
      })
      .from(QuestionTable)
      .rightJoin(JobInfoTable, eq(QuestionTable.jobInfoId, JobInfoTable.id))
      .where(eq(JobInfoTable.userId, user));
    if (used >= LIMIT) throw new Error("quota reached");
    if (!owned) throw new Error("job info not found");
    return tx
      .insert(QuestionTable)
      .values({ jobInfoId: job, text: "How do you size a pool?", difficulty: "medium" })
      .returning({ id: QuestionTable.id, jobInfoId: QuestionTable.jobInfoId });
  }),
);

// The cascade with every removed row's id (for the cache tags): lock, list, delete.
const doomed = (
  await db.select({ id: JobInfoTable.id }).from(JobInfoTable).where(eq(JobInfoTable.userId, doomedOwner))
).map((row) => row.id);
await report("delete_job_info", () =>
  db.transaction(async (tx) => {
    const id = doomed.pop();
    const locked = await tx
      .select({ id: JobInfoTable.id })
      .from(JobInfoTable)
      .where(and(eq(JobInfoTable.id, id), eq(JobInfoTable.userId, doomedOwner)))
      .for("update");
    if (locked.length === 0) throw new Error("job info not found");
    const interviews = await tx.select({ id: InterviewTable.id }).from(InterviewTable).where(eq(InterviewTable.jobInfoId, id));
    const questions = await tx.select({ id: QuestionTable.id }).from(QuestionTable).where(eq(QuestionTable.jobInfoId, id));
    await tx.delete(JobInfoTable).where(eq(JobInfoTable.id, id));
    return { interviews, questions };
  }),
);

await pool.end();
