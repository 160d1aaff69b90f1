//! The `table!` definitions in `jobprep-schema` and the migrated databases agree:
//! same tables, same columns, same types and nullability, on both backends. Fails
//! when a migration and the schema crate drift apart.

#![allow(clippy::unwrap_used)]

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};
use diesel::{Expression, Table};
use jobprep_repo::Backend;
use jobprep_schema::{interviews, job_info, questions, users};
use jobprep_testing::backend_tests;
use jobprep_testing::TestDb;

/// (column, database type, nullable) as the `table!` definition declares them.
fn declared<T>(table: T) -> Vec<(String, &'static str, bool)>
where
    T: Table + QueryDsl + diesel::query_builder::AsQuery,
    T::AllColumns: Expression,
    diesel::dsl::Select<T, T::AllColumns>: diesel::query_builder::QueryFragment<diesel::pg::Pg>,
    T: diesel::query_dsl::methods::SelectDsl<T::AllColumns>,
{
    let sql = diesel::debug_query::<diesel::pg::Pg, _>(
        &diesel::query_dsl::methods::SelectDsl::select(table, T::all_columns()),
    )
    .to_string();
    let select_list = sql.split(" FROM ").next().unwrap_or_default();
    let names: Vec<String> = select_list
        .split(", ")
        .map(|column| {
            column
                .rsplit('.')
                .next()
                .unwrap_or_default()
                .trim_matches('"')
                .to_owned()
        })
        .collect();
    let types = std::any::type_name::<<T::AllColumns as Expression>::SqlType>();
    let types = split_top_level(types.trim_start_matches('(').trim_end_matches(')'));
    assert_eq!(names.len(), types.len(), "{sql} / {types:?}");
    names
        .into_iter()
        .zip(types)
        .map(|(name, ty)| {
            let nullable = ty.contains("Nullable<");
            let inner = ty
                .trim_end_matches('>')
                .rsplit("::")
                .next()
                .unwrap_or_default();
            let db_type = match inner {
                "Text" | "VarChar" | "Varchar" => "character varying",
                "Uuid" => "uuid",
                "TimestampWithTimeZone" => "timestamp with time zone",
                "ExperienceLevel" => "job_infos_experience_level",
                "QuestionDifficulty" => "questions_question_difficulty",
                other => panic!("no mapping for SQL type {other} ({ty})"),
            };
            (name, db_type, nullable)
        })
        .collect()
}

fn split_top_level(list: &str) -> Vec<String> {
    let (mut parts, mut depth, mut current) = (Vec::new(), 0, String::new());
    for ch in list.chars() {
        match ch {
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    parts.push(current.trim().to_owned());
    parts
}

#[derive(QueryableByName, Debug)]
struct ColumnInfo {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    db_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

fn actual(t: &TestDb, table: &str) -> Vec<(String, String, bool)> {
    let mut rows: Vec<ColumnInfo> = match t.backend() {
        Backend::Postgres => {
            let mut conn = PgConnection::establish(&t.url).unwrap();
            diesel::sql_query(format!(
                "SELECT a.attname::text AS name, format_type(a.atttypid, NULL) AS db_type, NOT a.attnotnull AS nullable \
                 FROM pg_attribute a WHERE a.attrelid = '\"{table}\"'::regclass AND a.attnum > 0 AND NOT a.attisdropped"
            ))
            .load(&mut conn)
            .unwrap()
        }
        Backend::Sqlite => {
            let mut conn = SqliteConnection::establish(&t.url).unwrap();
            conn.batch_execute("PRAGMA foreign_keys = ON").unwrap();
            diesel::sql_query(format!(
                "SELECT name, type AS db_type, (\"notnull\" = 0 AND pk = 0) AS nullable FROM pragma_table_info('{table}')"
            ))
            .load(&mut conn)
            .unwrap()
        }
    };
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows.into_iter()
        .map(|c| (c.name, c.db_type, c.nullable))
        .collect()
}

fn compare(t: &TestDb, table: &str, mut declared: Vec<(String, &'static str, bool)>) {
    declared.sort();
    let actual = actual(t, table);
    let expected: Vec<(String, String, bool)> = declared
        .into_iter()
        .map(|(name, ty, nullable)| {
            let ty = match t.backend() {
                Backend::Postgres => ty.to_owned(),
                Backend::Sqlite => "TEXT".to_owned(),
            };
            (name, ty, nullable)
        })
        .collect();
    assert_eq!(
        actual, expected,
        "table {table}: database (left) vs table! (right)"
    );
}

backend_tests! {
    fn table_definitions_match_the_migrated_database(t) {
        compare(t, "users", declared(users::table));
        compare(t, "job_info", declared(job_info::table));
        compare(t, "interviews", declared(interviews::table));
        compare(t, "questions", declared(questions::table));
    }

    fn no_other_tables_exist_than_the_schema_crate_declares(t) {
        let tables: Vec<String> = t
            .db
            .describe_schema()
            .unwrap()
            .iter()
            .filter_map(|line| {
                let rest = line.strip_prefix("column ").or_else(|| line.strip_prefix("table "))?;
                Some(rest.split(['.', ':']).next()?.to_owned())
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(tables, ["interviews", "job_info", "questions", "users"]);
    }

    fn every_foreign_key_cascades_and_is_indexed(t) {
        let schema = t.db.describe_schema().unwrap().join("\n");
        for (table, column) in [("job_info", "userId"), ("interviews", "jobInfoId"), ("questions", "jobInfoId")] {
            let fk = schema
                .lines()
                .find(|l| l.contains(&format!("{table}_{column}_")) && l.contains("REFERENCES"))
                .or_else(|| schema.lines().find(|l| l.starts_with(&format!("table {table}:"))))
                .unwrap_or_else(|| panic!("no foreign key on {table}.{column}"));
            assert!(fk.contains("ON DELETE CASCADE"), "{fk}");
            let indexed = schema.lines().any(|l| {
                l.starts_with("index ") && l.contains(&format!("\"{table}\" (\"{column}\""))
                    || l.contains(&format!("ON {table} USING btree (\"{column}\""))
                    || l.contains(&format!("ON public.{table} USING btree (\"{column}\""))
            });
            assert!(indexed, "{table}.{column} has no index led by it:\n{schema}");
        }
    }
}

#[test]
fn postgres_an_enum_label_jobprep_does_not_know_is_an_error_not_a_panic() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let mut conn = PgConnection::establish(&t.url).unwrap();
    // A new label cannot be used in the batch (transaction) that adds it.
    conn.batch_execute("ALTER TYPE job_infos_experience_level ADD VALUE 'principal'")
        .unwrap();
    conn.batch_execute(
        r#"INSERT INTO users (id, name, email) VALUES ('user_enum', 'Enum', 'enum@example.com');
           INSERT INTO job_info (name, "experienceLevel", description, "userId")
               VALUES ('Staff', 'principal', 'Added by another app', 'user_enum');"#,
    )
    .unwrap();
    let owner = jobprep_repo::UserId::new("user_enum").unwrap();
    use jobprep_repo::Executor;
    let read =
        t.db.read(|c| jobprep_repo::job_infos::list_for_user(c, &owner));
    let error = read.unwrap_err();
    assert!(
        matches!(error, jobprep_repo::Error::Database(_)),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("experienceLevel"),
        "names the field and its labels: {error}"
    );
}
