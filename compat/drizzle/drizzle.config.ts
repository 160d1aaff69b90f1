// The app's drizzle-kit configuration with what sharing the database with jobprep needs:
// `tablesFilter` keeps `drizzle-kit push` away from jobprep's bookkeeping table
// (`__diesel_schema_migrations`, in `public`), which push would otherwise drop.
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "postgresql",
  schema: process.env.DRIZZLE_SCHEMA ?? "./schema.ts",
  out: process.env.DRIZZLE_OUT ?? "./migrations",
  dbCredentials: { url: process.env.DATABASE_URL ?? "" },
  tablesFilter: ["!__diesel_schema_migrations"],
});
