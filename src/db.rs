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
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    migrate(&pool, path).await?;
    Ok(pool)
}

/// Brings the schema of the database at `path` up to date, one process at a time.
///
/// sqlx takes no lock to migrate SQLite, so processes opening a fresh database at the same
/// moment (the shards of a sweep sharing one run store) would each try to create the
/// tables and all but one fail; an exclusive lock on `<db>.migrate-lock` beside the
/// database makes them take turns, and the later ones find the schema up to date.
pub async fn migrate(pool: &SqlitePool, path: &Path) -> Result<(), sqlx::Error> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".migrate-lock");
    // On the blocking pool: waiting for another process must not hold a runtime worker.
    let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
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
    .map_err(sqlx::Error::Io)?;
    let migrated = sqlx::migrate!("./migrations").run(pool).await;
    drop(lock);
    migrated.map_err(Into::into)
}
