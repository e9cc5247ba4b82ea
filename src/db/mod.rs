//! Opening the catalog file: pragmas, schema migrations and write transactions.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Error, Result};

/// The schema steps, applied in order. A file's `PRAGMA user_version` is the number of steps
/// applied to it.
const MIGRATIONS: &[(&str, &str)] = &[
    ("001_initial", include_str!("../../schema/001_initial.sql")),
    ("002_geopackage", include_str!("../../schema/002_geopackage.sql")),
    ("003_search", include_str!("../../schema/003_search.sql")),
    ("004_tree", include_str!("../../schema/004_tree.sql")),
];

/// The page size of new catalog files.
pub const PAGE_SIZE: i64 = 16 * 1024;

/// The schema version this build writes: the number of steps in `schema/`.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How to open a catalog file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; create the file when it is missing.
    Create,
    /// Read only (`mode=ro`); nothing is ever written, not even a schema upgrade.
    ReadOnly,
}

/// Opens a catalog file, sets its pragmas and brings its schema up to date.
pub fn open(path: &Path, access: Access, lock_timeout: Duration) -> Result<Connection> {
    if !path.exists() {
        if access != Access::Create {
            return Err(Error::NoSuchCatalog { path: path.to_path_buf() });
        }
        create(path, lock_timeout)?;
    }
    let flags = match access {
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Access::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = match Connection::open_with_flags(path, flags)
        .and_then(|conn| conn.query_row("PRAGMA user_version", [], |_| Ok(())).map(|()| conn))
    {
        Ok(conn) => conn,
        // A WAL catalog on a read-only file system (a read-only mount, a DVD): SQLite cannot
        // create its `-shm` beside it. When no `-wal` holds data, the file alone is the whole
        // catalog and cannot change, so it is read as immutable.
        Err(e) if access == Access::ReadOnly && read_only_media(path) && !wal_has_data(path) => {
            let uri = immutable_uri(path);
            Connection::open_with_flags(&uri, flags).map_err(|_| not_a_catalog(path, e))?
        }
        Err(_) if access != Access::ReadOnly && read_only_media(path) => {
            return Err(Error::InvalidArgument(format!(
                "{}: the file system is read-only, so this command cannot write to the catalog \
                 (search, count, info, get, check, export and serve can read it)",
                path.display()
            )));
        }
        Err(e) => return Err(not_a_catalog(path, e)),
    };
    // SQLite opens a file it may not write read-only without saying so; a write would then
    // fail with "attempt to write a readonly database". Say why, before anything is done.
    if access != Access::ReadOnly && conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        let why = if read_only_media(path) {
            "the file system is read-only"
        } else {
            "the file is not writable (check its permissions)"
        };
        return Err(Error::InvalidArgument(format!(
            "{}: {why}, so this command cannot write to the catalog (search, count, info, get, \
             check, export and serve can read it)",
            path.display()
        )));
    }
    // Refuse a file that is not a catalog, or is too new, before configure() switches it to
    // WAL: that switch is written into the file, and a refused file must be left as it was.
    // The version and the tables are read in one read transaction: another process may be
    // creating the file, and two separate reads could see the version before its commit and
    // the tables after it.
    conn.busy_timeout(lock_timeout).map_err(|e| not_a_catalog(path, e))?;
    {
        let read = conn.unchecked_transaction().map_err(|e| not_a_catalog(path, e))?;
        let version = user_version(&read).map_err(|e| not_a_catalog(path, e))?;
        check_version(&read, path, version)?;
        // Only `Create` may turn an empty file into a catalog; `stacdb info` on an empty file
        // must not.
        if version == 0 && access != Access::Create {
            return Err(Error::NotACatalog {
                path: path.to_path_buf(),
                reason: "the file is empty (create a catalog with `stacdb init`)".into(),
            });
        }
        // Dropping the read transaction ends it.
    }
    configure(&conn, Setup::Open(access), lock_timeout).map_err(|e| {
        if is_busy(&e) {
            Error::Locked { path: path.to_path_buf(), seconds: lock_timeout.as_secs() }
        } else {
            not_a_catalog(path, e)
        }
    })?;
    migrate(&conn, path, catalog_id(path), access, lock_timeout)?;
    crate::search::register_functions(&conn)?;
    Ok(conn)
}

/// True when the file's directory is on a read-only file system (EROFS).
fn read_only_media(path: &Path) -> bool {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Creating a file is what SQLite needs (the `-shm`); EROFS says why it cannot.
    let probe = dir.join(format!(".stacdb-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            false
        }
        Err(e) => {
            e.kind() == std::io::ErrorKind::ReadOnlyFilesystem || e.raw_os_error() == Some(30)
        }
    }
}

/// True when the catalog's `-wal` exists and is not empty.
fn wal_has_data(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

/// A `file:` URI opening `path` read-only and immutable (no locks, no `-shm`).
fn immutable_uri(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut uri = String::from("file:");
    for b in absolute.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            uri.push(b as char);
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    uri
}

/// Creates a catalog file whole (see [`NewCatalog`]) and publishes it at `path`, unless
/// another process got there first, in which case theirs is kept.
fn create(path: &Path, lock_timeout: Duration) -> Result<()> {
    let new = NewCatalog::build(path, lock_timeout)?;
    if let Published::Exists(temp) = new.publish(path)? {
        remove_with_sidecars(&temp);
    }
    Ok(())
}

/// A catalog being made in a temporary file beside its final path.
///
/// The file has no journal while it is made: nobody else can see it, and if anything fails
/// the file is thrown away, so there is nothing to roll back. Every page is written once,
/// not first to a write-ahead log and then again into the file. [`NewCatalog::publish`]
/// switches it to WAL, syncs it and hard-links it into place; linking fails when the path
/// exists, so concurrent creators never replace each other's catalog, and a process killed
/// at any moment leaves at most the temporary file, never a partial catalog at the path.
pub struct NewCatalog {
    /// The open connection to the temporary file.
    pub conn: Connection,
    /// The temporary file.
    pub temp: PathBuf,
    /// Syncs the file in the background while it is built.
    syncer: Option<Syncer>,
}

/// A thread that syncs a file every 200 ms until stopped, so that the sync before publishing
/// finds little left to write: on a 360 MB catalog it took 0.15 s of a 2 s ingest.
struct Syncer {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Syncer {
    fn start(path: &Path) -> Option<Syncer> {
        let file = std::fs::File::open(path).ok()?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("stacdb-sync".into())
            .spawn(move || {
                let every = Duration::from_millis(200);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    let _ = file.sync_data();
                }
            })
            .ok()?;
        Some(Syncer { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Where a new catalog ended up.
#[derive(Debug)]
pub enum Published {
    /// It is now the file at the path.
    Linked,
    /// Another process created the path first; the new catalog is still at this temporary
    /// path, for the caller to merge and then remove.
    Exists(PathBuf),
}

impl NewCatalog {
    /// Makes a new catalog with the current schema in a temporary file beside `path`.
    pub fn build(path: &Path, lock_timeout: Duration) -> Result<NewCatalog> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        // Unique per process and per call: threads of one process may create at once too.
        static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = path.with_file_name(format!(".{name}.{}-{call}.creating", std::process::id()));
        let made = (|| -> Result<Connection> {
            let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
            let conn =
                Connection::open_with_flags(&temp, flags).map_err(|e| not_a_catalog(&temp, e))?;
            configure(&conn, Setup::Building, lock_timeout)?;
            migrate(&conn, &temp, catalog_id(path), Access::Create, lock_timeout)?;
            Ok(conn)
        })();
        match made {
            Ok(conn) => {
                let syncer = Syncer::start(&temp);
                Ok(NewCatalog { conn, temp, syncer })
            }
            Err(e) => {
                remove_with_sidecars(&temp);
                Err(e)
            }
        }
    }

    /// Syncs the new catalog and links it into place at `path`.
    pub fn publish(self, path: &Path) -> Result<Published> {
        let NewCatalog { conn, temp, syncer } = self;
        if let Some(syncer) = syncer {
            syncer.stop();
        }
        let finished = (|| -> Result<()> {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(Error::InvalidArgument(format!(
                    "could not switch {} to WAL",
                    temp.display()
                )));
            }
            conn.close().map_err(|(_, e)| e)?;
            let io = |e| Error::Io { path: temp.clone(), source: e };
            std::fs::File::open(&temp).and_then(|f| f.sync_all()).map_err(io)?;
            Ok(())
        })();
        if let Err(e) = finished {
            remove_with_sidecars(&temp);
            return Err(e);
        }
        let linked = match std::fs::hard_link(&temp, path) {
            Ok(()) => Ok(Published::Linked),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Ok(Published::Exists(temp));
            }
            // A file system without hard links: a rename is atomic too, only not exclusive.
            Err(_) if !path.exists() => std::fs::rename(&temp, path)
                .map(|()| Published::Linked)
                .map_err(|e| Error::Io { path: path.to_path_buf(), source: e }),
            Err(_) => return Ok(Published::Exists(temp)),
        };
        remove_with_sidecars(&temp);
        // Make the new directory entry durable too.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
        }
        linked
    }

    /// Throws the new catalog away.
    pub fn discard(self) {
        let NewCatalog { conn, temp, syncer } = self;
        if let Some(syncer) = syncer {
            syncer.stop();
        }
        drop(conn);
        remove_with_sidecars(&temp);
    }
}

/// Removes a database file and its `-wal` and `-shm` files, ignoring any that are missing.
pub fn remove_with_sidecars(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}

/// The id a new catalog gets: its file name without the extension.
fn catalog_id(path: &Path) -> &str {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("stacdb")
}

/// What a connection is set up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// A catalog file opened for use.
    Open(Access),
    /// A new catalog being made in its private temporary file (see [`NewCatalog`]).
    Building,
}

/// Every pragma stacdb sets, in one place. [`NewCatalog::publish`] later switches a built
/// file to WAL, the journal every published catalog uses.
fn configure(conn: &Connection, setup: Setup, lock_timeout: Duration) -> rusqlite::Result<()> {
    // Wait this long for another connection's lock before SQLITE_BUSY. Set first, because
    // switching to WAL below may itself have to wait for another process.
    conn.busy_timeout(lock_timeout)?;
    match setup {
        Setup::Building => {
            // 16 KiB pages, set before anything is written: an item row is about 3 KB of
            // JSON, and with the default 4 KiB pages each row would take a page of its own, a
            // quarter of it empty; 16 KiB pages hold five.
            conn.pragma_update(None, "page_size", PAGE_SIZE)?;
            // No journal and no syncs while the file is private: a failure discards the whole
            // file, so there is nothing to roll back, and every page is written once.
            // publish() syncs the file before anyone can see it.
            conn.query_row("PRAGMA journal_mode = OFF", [], |_| Ok(()))?;
            conn.pragma_update(None, "synchronous", "OFF")?;
        }
        Setup::Open(Access::ReadOnly) => {}
        Setup::Open(Access::ReadWrite | Access::Create) => {
            // WAL: readers never block the writer and the writer never blocks readers, and a
            // crash at any moment leaves the last committed transaction intact. The mode is
            // stored in the file, so read-only openers see it too.
            let mode: String = retry_busy(lock_timeout, || {
                conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            })?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(rusqlite::Error::InvalidQuery);
            }
            // FULL: in WAL mode every commit syncs the WAL before it returns, so a committed
            // ingest survives a power failure. NORMAL could lose the last commits; an ingest
            // run is one transaction, so the extra sync costs one fsync per run, not per item.
            conn.pragma_update(None, "synchronous", "FULL")?;
            // Truncate the WAL back to this size after a checkpoint so a big ingest does not
            // leave a file of its own size behind.
            conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        }
    }
    // Enforce items -> collections and queryables -> collections.
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 64 MiB of page cache (negative = KiB): ingest touches several indexes per item.
    conn.pragma_update(None, "cache_size", -64 * 1024)?;
    // Read-only connections memory-map up to 256 MiB of the file for faster reads. Writers do
    // not: pages a writer reads through the map count in its resident memory (400 MiB instead
    // of 165 MiB for a 100k-item ingest) and made ingest no faster.
    let mmap: i64 = if setup == Setup::Open(Access::ReadOnly) { 256 * 1024 * 1024 } else { 0 };
    conn.pragma_update(None, "mmap_size", mmap)?;
    // Sorts and temporary indexes may use memory: they are small next to the cache.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Applies the missing schema steps in one immediate transaction.
fn migrate(
    conn: &Connection,
    path: &Path,
    id: &str,
    access: Access,
    lock_timeout: Duration,
) -> Result<()> {
    let version = user_version(conn).map_err(|e| not_a_catalog(path, e))?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    // open() has refused newer, foreign and (unless creating) empty files.
    if access == Access::ReadOnly {
        return Err(Error::NotACatalog {
            path: path.to_path_buf(),
            reason: format!(
                "schema version {version} is older than this build's {SCHEMA_VERSION}; open it once for writing (for example `stacdb check`) to upgrade it"
            ),
        });
    }
    // Decide only under the write lock: another process may be creating or upgrading the
    // file right now, and what it commits is what we must see.
    let tx = begin_write(conn, path, lock_timeout)?;
    let version = user_version(&tx)?;
    check_version(&tx, path, version)?;
    for (_, sql) in &MIGRATIONS[version as usize..] {
        tx.execute_batch(sql)?;
    }
    if version == 0 {
        tx.execute("INSERT INTO catalog (singleton, id) VALUES (1, ?1)", [id])?;
    }
    let secret = crate::search::token::generate_secret()
        .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    tx.execute("UPDATE catalog SET token_secret = ?1 WHERE token_secret IS NULL", [&secret[..]])?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

fn check_version(conn: &Connection, path: &Path, version: i64) -> Result<()> {
    if version > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if tables > 0 {
            return Err(Error::NotACatalog {
                path: path.to_path_buf(),
                reason: "it is a SQLite database with other tables in it".into(),
            });
        }
    }
    Ok(())
}

/// Starts an immediate (write-locking) transaction. SQLite's busy handler waits up to the
/// lock timeout; on top of that, SQLITE_BUSY that bypasses the handler is retried with
/// backoff until the same deadline, so "database is locked" never reaches the user.
pub fn begin_write<'c>(
    conn: &'c Connection,
    path: &Path,
    lock_timeout: Duration,
) -> Result<Transaction<'c>> {
    let deadline = Instant::now() + lock_timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        match Transaction::new_unchecked(conn, TransactionBehavior::Immediate) {
            Ok(tx) => return Ok(tx),
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(e) if is_busy(&e) => {
                return Err(Error::Locked {
                    path: path.to_path_buf(),
                    seconds: lock_timeout.as_secs(),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `f` again, with backoff until `timeout`, while it fails with SQLITE_BUSY that SQLite
/// did not wait out itself. SQLite returns BUSY at once, without calling the busy handler,
/// where waiting could deadlock: for example when several processes switch a new file to WAL
/// at the same time, each holding a read lock while it asks for the write lock.
fn retry_busy<T>(
    timeout: Duration,
    mut f: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        match f() {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            result => return result,
        }
    }
}

/// True for SQLITE_BUSY and SQLITE_LOCKED in any of their extended forms.
pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Maps the errors SQLite gives for a file that is not a database to a clear message.
fn not_a_catalog(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => Error::NotACatalog {
            path: path.to_path_buf(),
            reason: "the file is not a SQLite database".into(),
        },
        Some(rusqlite::ErrorCode::CannotOpen) => Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("cannot open the file (check the path and permissions)"),
        },
        _ => Error::Sqlite(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_version_counts_the_files() {
        assert_eq!(SCHEMA_VERSION, 4);
    }
}
