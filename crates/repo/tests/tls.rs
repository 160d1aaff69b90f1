//! `sslmode=require` URLs work, and the connection is really encrypted.
#![allow(clippy::unwrap_used)]

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use jobprep_repo::{users, Backend, Db, Error, Executor, UserId};
use jobprep_testing::{postgres_admin_url, TestDb};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[test]
fn postgres_sslmode_require_connects_over_tls() {
    let Some(t) = TestDb::new(Backend::Postgres) else {
        return;
    };
    let db = Db::connect(&format!("{}?sslmode=require", t.url)).unwrap();
    let read = db.read(|c| users::get(c, &UserId::new("user_tls").unwrap()));
    assert!(matches!(read, Err(Error::NotFound { .. })), "{read:?}");

    let name = t.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = PgConnection::establish(&postgres_admin_url()).unwrap();
    let encrypted: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1 AND s.ssl",
    )
    .bind::<diesel::sql_types::Text, _>(&name)
    .get_result(&mut admin)
    .unwrap();
    assert_eq!(
        encrypted.n, 1,
        "the pool's one connection uses TLS (the server needs ssl = on)"
    );
}
