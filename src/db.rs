//! The local SQLite database shared by the run store and the model registry: one file,
//! one set of migrations (`migrations/`), opened the same way by both.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// Opens (creating if needed) the database at `path` and brings its schema up to date.
///
/// WAL lets readers run beside a writer; the long busy timeout makes concurrent writers
/// (two sweeps, two promotions) wait for each other instead of failing.
pub async fn open(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
    }
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true);
    // Held from the first connection to the last migration, one process at a time:
    // - switching a fresh file to WAL upgrades a read lock to a write lock, and SQLite
    //   answers "database is locked" at once, without the busy timeout, when another
    //   process is doing the same (the shards of a sweep sharing one run store);
    // - sqlx takes no lock to migrate SQLite, so processes migrating the same fresh file
    //   would each try to create the tables and all but one fail.
    // Later processes find the file in WAL mode and the schema up to date.
    let lock = open_lock(path).await?;
    let opened = async {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(pool)
    }
    .await;
    drop(lock);
    opened
}

/// Takes the exclusive lock on `<db>.migrate-lock` beside the database, waiting for it on the
/// blocking pool so that a wait never holds a runtime worker.
async fn open_lock(path: &Path) -> Result<std::fs::File, sqlx::Error> {
    let mut lock_path = path.as_os_str().to_owned();
    // The name it had when it guarded migrations only: an older netsec beside this one still takes turns.
    lock_path.push(".migrate-lock");
    tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        file.lock()?;
        Ok(file)
    })
    .await
    .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))?
    .map_err(sqlx::Error::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{ConnectOptions, Connection};

    /// Another process in the middle of opening a fresh database: it holds the open lock
    /// and SQLite's write lock, as it does while switching the file to WAL. Without the
    /// lock this open would be refused at once ("database is locked": SQLite does not
    /// wait when a read lock must become a write lock); with it, the open waits its turn.
    #[tokio::test]
    async fn an_open_waits_for_another_process_opening_the_same_fresh_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netsec.db");
        let lock = open_lock(&path).await.unwrap();
        let mut other = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .connect()
            .await
            .unwrap();
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();

        let waiting = tokio::spawn({
            let path = path.clone();
            async move { open(&path).await }
        });
        // The opener must still be waiting for the lock, not failed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "open did not wait for the lock");

        sqlx::raw_sql("COMMIT").execute(&mut other).await.unwrap();
        other.close().await.unwrap();
        drop(lock);
        let pool = waiting
            .await
            .unwrap()
            .expect("the open succeeds once it has its turn");
        let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(migrations > 0);
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
