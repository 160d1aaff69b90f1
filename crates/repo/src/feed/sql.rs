//! The feed's SQL: the triggers and the tables they write to, the poll that reads
//! them and the trim that empties them. Everything else of the feed runs this text.

use crate::error::Entity;

/// The schema that holds the feed: its functions, the [`CHANGES`] table and the
/// [`TRIMMED`] horizon. Dropping it removes the whole feed.
pub const SCHEMA: &str = "jobprep_cache_feed";

/// The table the triggers write to, `jobprep_cache_feed.changes`: one row per insert
/// or delete statement and per changed row of an update, `(xid, source, ids,
/// scopes)`: the top-level transaction's id, the table written, the ids of the rows
/// it changed and their scope column (`userId` or `jobInfoId`), or `ids` NULL after
/// a `TRUNCATE`. Unlogged: it costs the writers no WAL, and a crash empties it
/// (every listener reconnects and resets then).
pub const CHANGES: &str = "jobprep_cache_feed.changes";

/// The one-row table that records how far [`CHANGES`] has been trimmed.
pub const TRIMMED: &str = "jobprep_cache_feed.trimmed";

/// How long the changes of a finished transaction are kept at least, for listeners
/// that are slow to poll; one that falls further behind gets a reset.
const KEEP: &str = "30 seconds";

/// The parent a row's scope tag names (`user:{userId}:jobInfos`,
/// `jobInfo:{jobInfoId}:questions`).
#[derive(Clone, Copy)]
pub(super) enum Owner {
    User,
    JobInfo,
}

/// A scope tag: the column it is made from, and the parent it names.
pub(super) type Scope = Option<(&'static str, Owner)>;

/// The watched tables: name, entity, and scope tag.
pub(super) const WATCHED: [(&str, Entity, Scope); 4] = [
    ("users", Entity::User, None),
    ("job_info", Entity::JobInfo, Some(("userId", Owner::User))),
    (
        "interviews",
        Entity::Interview,
        Some(("jobInfoId", Owner::JobInfo)),
    ),
    (
        "questions",
        Entity::Question,
        Some(("jobInfoId", Owner::JobInfo)),
    ),
];

/// The events with a trigger each, on every watched table.
const EVENTS: [&str; 4] = ["insert", "update", "delete", "truncate"];

/// The table jobprep writes in bulk (`questions::insert_many`): its inserts fire once
/// per statement, so a 1,000-row insert is one recorded change.
const INSERTED_IN_BULK: &str = "questions";

/// How the trigger of `event` on `table` fires, after `ON table`.
///
/// Inserts fire per row and read `NEW` (except on [`INSERTED_IN_BULK`]): for a
/// single-row insert that costs less than reading a transition table, whose scans the
/// executor sets up anew at every call (BENCHMARKS.md, "Row triggers for inserts").
/// Deletes fire once per statement and read a transition table, so a cascade records
/// one change per parent. Updates fire per row, and only for a row the update changed
/// (compared as text, which every column type has): a no-op update, such as the lock a
/// quota-checked write takes on its user, then costs no function call at all.
/// `TRUNCATE` has no rows.
fn firing(table: &str, event: &str) -> &'static str {
    match event {
        "insert" if table == INSERTED_IN_BULK => {
            "AFTER INSERT ON {t} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT"
        }
        "insert" => "AFTER INSERT ON {t} FOR EACH ROW",
        "update" => "AFTER UPDATE ON {t} FOR EACH ROW WHEN (OLD::text IS DISTINCT FROM NEW::text)",
        "delete" => "AFTER DELETE ON {t} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
        _ => "AFTER TRUNCATE ON {t} FOR EACH STATEMENT",
    }
}

fn trigger_name(event: &str) -> String {
    format!("{SCHEMA}_{event}")
}

/// The installation script: idempotent, in one transaction. It starts from an empty
/// schema, so an install over an older version leaves nothing of it behind.
///
/// The trigger functions run inside every write, so each is one `INSERT` of one row
/// (see BENCHMARKS.md); the tags are computed by the listener. Writers never
/// `NOTIFY`: PostgreSQL commits notifying transactions one at a time.
pub(super) fn install_sql() -> String {
    let mut sql = format!(
        r#"
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
COMMENT ON SCHEMA {SCHEMA} IS 'jobprep cache feed v3: triggers record the rows each statement changed in {CHANGES}, listeners read them; remove with DROP SCHEMA {SCHEMA} CASCADE';

CREATE UNLOGGED TABLE {CHANGES} (
  xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  source text NOT NULL,
  ids text[],
  scopes text[]
);
CREATE INDEX changes_xid ON {CHANGES} (xid);

-- Rows of transactions older than `below` may be gone; `horizon` is the next
-- `below`, taken {KEEP} before it is used. `installed` is this install's transaction:
-- a listener whose last snapshot does not see it may have missed changes recorded in
-- the tables this install dropped.
CREATE TABLE {TRIMMED} (
  one boolean PRIMARY KEY DEFAULT true CHECK (one),
  below xid8 NOT NULL,
  horizon xid8 NOT NULL,
  horizon_at timestamptz NOT NULL,
  installed xid8 NOT NULL DEFAULT pg_current_xact_id()
);
INSERT INTO {TRIMMED} (below, horizon, horizon_at)
  VALUES ('0', pg_snapshot_xmin(pg_current_snapshot()), now());

-- Whoever writes the four tables runs the triggers, so any role may add a change.
GRANT USAGE ON SCHEMA {SCHEMA} TO PUBLIC;
GRANT INSERT ON {CHANGES} TO PUBLIC;

CREATE FUNCTION {SCHEMA}.truncated() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  INSERT INTO {CHANGES} (source) VALUES (TG_TABLE_NAME);
  RETURN NULL;
END
$fn$;
"#
    );
    for (table, _, scope) in WATCHED {
        for event in EVENTS {
            let name = trigger_name(event);
            let clause = firing(table, event);
            let function = if event == "truncate" {
                "truncated".to_string()
            } else {
                let function = format!("{table}_{event}");
                let per_row = clause.contains("FOR EACH ROW");
                sql.push_str(&record_function(&function, table, scope, event, per_row));
                function
            };
            let clause = clause.replace("{t}", &format!("\"{table}\""));
            sql.push_str(&format!(
                "CREATE TRIGGER {name} {clause} EXECUTE FUNCTION {SCHEMA}.{function}();\n"
            ));
        }
    }
    sql
}

/// A trigger function that records one row of [`CHANGES`]: for an inserted row, its
/// id and parent; for an updated row, its old and new version (a new `userId` moves a
/// job info between two users' lists); for a statement, the ids and parents of its
/// rows, read with two array subqueries (the cheapest form measured; a statement that
/// touched no row records empty arrays, which listeners skip).
fn record_function(
    function: &str,
    table: &str,
    scope: Scope,
    event: &str,
    per_row: bool,
) -> String {
    let rows = if event == "insert" {
        "new_rows"
    } else {
        "old_rows"
    };
    // Row versions to record: the old and the new of an update, else the new one.
    let versions: &[&str] = if event == "update" {
        &["OLD", "NEW"]
    } else {
        &["NEW"]
    };
    let of_versions = |column: &str| {
        let values: Vec<String> = versions
            .iter()
            .map(|version| format!("{version}.\"{column}\"::text"))
            .collect();
        format!("ARRAY[{}]", values.join(", "))
    };
    let of_rows = |column: &str| format!("ARRAY(SELECT \"{column}\"::text FROM {rows})");
    let read = |column: &str| {
        if per_row {
            of_versions(column)
        } else {
            of_rows(column)
        }
    };
    let body = match scope {
        Some((column, _)) => format!(
            "INSERT INTO {CHANGES} (source, ids, scopes) VALUES ('{table}', {}, {});",
            read("id"),
            read(column)
        ),
        None => format!(
            "INSERT INTO {CHANGES} (source, ids) VALUES ('{table}', {});",
            read("id")
        ),
    };
    format!(
        r#"
CREATE FUNCTION {SCHEMA}.{function}() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  {body}
  RETURN NULL;
END
$fn$;
"#
    )
}

/// The name [`Db::cache_feed_status`](crate::Db::cache_feed_status) gives the one
/// row of [`TRIMMED`].
pub(super) fn horizon_row() -> String {
    format!("{TRIMMED} row")
}

/// The feed's parts as [`Db::cache_feed_status`](crate::Db::cache_feed_status) names
/// them: its two tables, the row of [`TRIMMED`], and `table.trigger` for each trigger.
pub(super) fn expected_parts() -> Vec<String> {
    let triggers = WATCHED.iter().flat_map(|(table, _, _)| {
        EVENTS
            .iter()
            .map(move |event| format!("{table}.{}", trigger_name(event)))
    });
    [CHANGES.to_string(), TRIMMED.to_string(), horizon_row()]
        .into_iter()
        .chain(triggers)
        .collect()
}

/// One poll, in one statement and so in one snapshot: the snapshot itself, whether
/// changes the last poll had not seen may be gone, trimmed or dropped with the tables
/// of an earlier install (NULL when the row of [`TRIMMED`] is gone), and the changes
/// of every
/// transaction that committed between the last poll's snapshot (`$1`) and this one:
/// those that were running then (its `xip`) or started after (from its `xmax` on).
/// Transactions commit out of id order, so a plain "xid greater than the last one
/// seen" would miss the slow ones.
pub(super) fn poll_sql() -> String {
    format!(
        "WITH head AS MATERIALIZED ( \
           SELECT pg_current_snapshot()::text AS snapshot, \
             (SELECT below > pg_snapshot_xmin($1::text::pg_snapshot) \
                OR NOT pg_visible_in_snapshot(installed, $1::text::pg_snapshot) \
              FROM {TRIMMED}) AS gap) \
         SELECT head.snapshot, head.gap, c.xid::text AS xid, c.source, c.ids, c.scopes \
         FROM head LEFT JOIN {CHANGES} c \
           ON c.xid >= pg_snapshot_xmax($1::text::pg_snapshot) \
           OR c.xid = ANY(ARRAY(SELECT pg_snapshot_xip($1::text::pg_snapshot))) \
         ORDER BY c.xid"
    )
}

/// Trims [`CHANGES`], at most once per [`KEEP`] whoever runs it: rows of
/// transactions that had finished when the previous trim ran are deleted, and that
/// trim's horizon becomes `below`. A listener that polled since then has seen them.
/// A trim already under way elsewhere is skipped, not waited for, so no listener's
/// polling stalls behind another's delete.
pub(super) fn trim_sql() -> String {
    format!(
        "WITH due AS ( \
           SELECT one FROM {TRIMMED} WHERE horizon_at < now() - interval '{KEEP}' \
           FOR UPDATE SKIP LOCKED), \
         round AS ( \
           UPDATE {TRIMMED} t SET below = horizon, \
             horizon = pg_snapshot_xmin(pg_current_snapshot()), horizon_at = now() \
           FROM due WHERE t.one = due.one RETURNING t.below) \
         DELETE FROM {CHANGES} WHERE xid < (SELECT below FROM round)"
    )
}
