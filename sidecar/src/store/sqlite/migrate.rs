//! The SQLite ledger's schema, brought up to date at start on the writer connection. The migrations are the files
//! of `sidecar/migrations/sqlite`, embedded at compile time, and each applied migration is recorded in
//! `_sqlx_migrations` exactly as sqlx's migrator recorded it (version, description, SHA-384 of the file), so a
//! ledger created by an earlier sidecar, which ran sqlx's migrator, opens unchanged, and an edited migration that
//! was already applied is refused rather than silently skipped.

use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha384};

use crate::store::StoreError;

/// One migration: its version, its file's name (`0004_held_units`) and its SQL.
struct Migration {
    version: i64,
    file: &'static str,
    sql: &'static str,
}

impl Migration {
    /// What sqlx records as the description: the file's name after the version, `_` read as a space.
    fn description(&self) -> String {
        self.file.split_once('_').map_or(self.file, |(_, name)| name).replace('_', " ")
    }
}

macro_rules! migrations {
    ($(($version:literal, $file:literal)),* $(,)?) => {
        &[$(Migration {
            version: $version,
            file: $file,
            sql: include_str!(concat!("../../../migrations/sqlite/", $file, ".sql")),
        }),*]
    };
}

/// In version order; `migrations_are_every_file_of_the_folder` checks that none is left out.
const MIGRATIONS: &[Migration] = migrations![
    (1, "0001_ledger"),
    (2, "0002_stripe_events"),
    (3, "0003_outbox"),
    (4, "0004_held_units"),
    (5, "0005_outbox_claims"),
    (6, "0006_movements_by_date"),
    (7, "0007_stock_alerts"),
    (8, "0008_conflicts_listed"),
    (9, "0009_unambiguous_keys"),
    (10, "0010_payments"),
    (11, "0011_returns"),
];

fn refused(message: String) -> StoreError {
    StoreError::Migration(message)
}

/// Applies, each in a transaction of its own with its record, every migration the database has not had; refuses
/// a database whose applied migrations differ from these files or that a failed migration left half done.
pub(super) fn run(connection: &mut Connection) -> Result<(), StoreError> {
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
           installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
           checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
    )?;
    let dirty: Option<i64> = connection
        .query_row("SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1", [], |row| {
            row.get(0)
        })
        .optional()?;
    if let Some(version) = dirty {
        return Err(refused(format!("migration {version} was left half applied; restore the ledger from a backup")));
    }
    let known = |version: i64| MIGRATIONS.iter().any(|migration| migration.version == version);
    let mut statement = connection.prepare("SELECT version FROM _sqlx_migrations ORDER BY version")?;
    let applied = statement.query_map([], |row| row.get::<_, i64>(0))?.collect::<Result<Vec<i64>, _>>()?;
    drop(statement);
    if let Some(version) = applied.into_iter().find(|version| !known(*version)) {
        return Err(refused(format!(
            "the ledger has migration {version}, which this sidecar does not know: it was written by another version"
        )));
    }
    for migration in MIGRATIONS {
        let checksum = Sha384::digest(migration.sql.as_bytes()).to_vec();
        // Checked again inside the write transaction: of two processes starting on one ledger (`serve` and a
        // command), the second waits for the first's migration and then finds it applied.
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let recorded: Option<Vec<u8>> = transaction
            .query_row("SELECT checksum FROM _sqlx_migrations WHERE version = ?1", [migration.version], |row| {
                row.get(0)
            })
            .optional()?;
        match recorded {
            Some(recorded) if recorded == checksum => continue,
            Some(_) => {
                return Err(refused(format!(
                    "migration {} was applied from another text than this sidecar's",
                    migration.file
                )));
            }
            None => {}
        }
        let started = std::time::Instant::now();
        transaction
            .execute_batch(migration.sql)
            .map_err(|error| refused(format!("migration {} failed: {error}", migration.file)))?;
        let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        transaction.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?1, ?2, TRUE, ?3, ?4)",
            params![migration.version, migration.description(), checksum, nanos],
        )?;
        transaction.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (Connection, tempfile::TempDir) {
        let directory = tempfile::tempdir().expect("directory");
        let connection = Connection::open(directory.path().join("ledger.db")).expect("opens");
        (connection, directory)
    }

    #[test]
    fn migrations_are_every_file_of_the_folder() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(folder)
            .expect("the migrations folder")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|migration| format!("{}.sql", migration.file)).collect();
        assert_eq!(files, listed);
    }

    /// What sqlx's migrator recorded for each migration (read from a ledger it created, before this runner
    /// replaced it): a ledger it migrated opens with no migration run again, and the other way round.
    #[test]
    fn each_migration_is_recorded_as_sqlx_recorded_it() {
        let recorded_by_sqlx = [
            (
                1,
                "ledger",
                "8FD126DE9E74E435C35AF2DB960BD3C33C34C9EA9B0B182E34D085CE893CF5C3EAD309E2B3EF145DEB45DD4BCF25FCD8",
            ),
            (
                2,
                "stripe events",
                "E066540F1CD739661B39B898A5CF902700D8B320651A4011608BA0B722B6A671BC3A3D4895E6BB0A2B4FB327C0B2DE6D",
            ),
            (
                3,
                "outbox",
                "EA38C45A9B762D19FA676F2E346CECEDACB3E9F057427225F82941C63AC585E1E19A1BE011E0A53330C61EA571C873F8",
            ),
            (
                4,
                "held units",
                "197FA5D32F745C45BDBB2D03540A9EAD3FE4CF66CEC1909D56F8A0C336C60D8132980E2C254B8CB24BB1C215D96C6B1C",
            ),
            (
                5,
                "outbox claims",
                "4CBDB2064AA634ACE3B09CEA2A8BE589252B0BFF8ACD7BA4F4A2CE37D1924F8650F2631AB96DB91ACC8E907212470C37",
            ),
            (
                6,
                "movements by date",
                "6C1C20A636172CB43EC5E40A957E2CD55887917F21C9C84B9445FC2EDFB521C25297C798B1B41D31AEBF69FE423CBC5F",
            ),
            (
                7,
                "stock alerts",
                "7C56B5791C4D6E4BFF7934EA156C8B0BFFC7A77ADCB2DE4A3CE5E27244182A83321A7C42660BEC79C1AA27B565739A33",
            ),
            (
                8,
                "conflicts listed",
                "A3AEA96FF35BB4441C6A914A4FDD9407B042FB4DB470D012EDCC84837DD21EE0D15DEFD29584A6B702ACFDE3946FAA53",
            ),
            (
                9,
                "unambiguous keys",
                "8C21F39E441EED85098BB4D10B6A81216080C76B742BB0E3941208292595214217AB2D271881131AC1F94EB9A7031720",
            ),
            (
                10,
                "payments",
                "92EF4A5223C0ED323F30BA27FA3F3D6B78F1780782E46A372083B449F3ED10DC400586938F515F4E5F542AABD2F2CD0F",
            ),
            (
                11,
                "returns",
                "04EEF84ADC31616ADD86DB53524E1BF9F8AB71B481FA40A6616E29F8EEFE54E9FE659E8C0C10C99277FE47E72ECFBCD4",
            ),
        ];
        let (mut connection, _directory) = fresh();
        run(&mut connection).expect("migrated");
        let mut statement = connection
            .prepare("SELECT version, description, hex(checksum), success FROM _sqlx_migrations ORDER BY version")
            .expect("statement");
        let recorded: Vec<(i64, String, String, bool)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        let expected: Vec<(i64, String, String, bool)> = recorded_by_sqlx
            .iter()
            .map(|(version, description, checksum)| (*version, (*description).to_owned(), (*checksum).to_owned(), true))
            .collect();
        assert_eq!(recorded, expected);
    }

    #[test]
    fn a_second_run_changes_nothing_and_an_edited_or_unknown_migration_is_refused() {
        let (mut connection, _directory) = fresh();
        run(&mut connection).expect("migrated");
        run(&mut connection).expect("nothing to do");
        connection.execute("UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 4", []).expect("edited");
        assert!(
            matches!(run(&mut connection), Err(StoreError::Migration(message)) if message.contains("0004_held_units"))
        );
        let (mut connection, _directory) = fresh();
        run(&mut connection).expect("migrated");
        connection
            .execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (99, 'later', TRUE, x'00', 0)",
                [],
            )
            .expect("a newer sidecar's migration");
        assert!(
            matches!(run(&mut connection), Err(StoreError::Migration(message)) if message.contains("migration 99"))
        );
        let (mut connection, _directory) = fresh();
        run(&mut connection).expect("migrated");
        connection.execute("UPDATE _sqlx_migrations SET success = false WHERE version = 9", []).expect("half done");
        assert!(matches!(run(&mut connection), Err(StoreError::Migration(message)) if message.contains("half")));
    }
}
