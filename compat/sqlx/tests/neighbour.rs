//! jobprep and sqlx 0.8 in one binary: both link the one SQLite library cargo resolved,
//! and each reads what the other wrote in the same database file.

use jobprep_repo::asynch::AsyncDb;
use jobprep_repo::{Db, UserId};
use jobprep_users::NewUser;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::test]
async fn jobprep_and_sqlx_share_a_sqlite_database() -> Result<(), BoxError> {
    let path = std::env::temp_dir().join(format!("jobprep-sqlx-{}.sqlite3", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let db = AsyncDb::new(Db::connect(&path.display().to_string())?);
    db.migrate().await?;
    let ada = UserId::new("user_ada")?;
    jobprep_users::asynch::upsert(&db, NewUser::new(ada.clone(), "Ada", "ada@example.com")).await?;

    let pool = sqlx::sqlite::SqlitePool::connect(&format!("sqlite://{}", path.display())).await?;
    let (name,): (String,) = sqlx::query_as(r#"SELECT "name" FROM "users" WHERE "id" = ?"#)
        .bind("user_ada")
        .fetch_one(&pool)
        .await?;
    assert_eq!(name, "Ada");
    sqlx::query(r#"UPDATE "users" SET "name" = 'Ada Lovelace' WHERE "id" = ?"#)
        .bind("user_ada")
        .execute(&pool)
        .await?;
    pool.close().await;

    let user = jobprep_users::asynch::get(&db, ada).await?;
    assert_eq!(user.value.name, "Ada Lovelace");
    drop(db);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
