//! Schema upgrades, each tested on a frozen file written at the older version, and the files
//! stacdb must refuse: a newer schema, another program's SQLite database, and a file that is
//! not SQLite at all.
//!
//! `fixtures/schema-v1.stacdb` is a catalog at schema version 1 (only `schema/001_initial.sql`
//! applied). It is committed and never rewritten by the tests: each test works on a copy. How
//! it was made is in `fixtures/README.md`; the generator is the ignored test
//! `write_schema_v1_fixture` at the end of this file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use stacdb::{Catalog, Error, IngestOptions, Input, SCHEMA_VERSION, Silent};

const FIXTURE_V1: &str = "fixtures/schema-v1.stacdb";
/// What the fixture holds (see `write_schema_v1_fixture`).
const V1_ITEMS: usize = 8;
const V1_COLLECTIONS: [&str; 2] = ["pgstac-test-collection", "test-collection"];
const V1_CATALOG_TITLE: &str = "A catalog frozen at schema version 1";
/// The tables schema step 2 adds.
const GPKG_TABLES: [&str; 4] =
    ["gpkg_contents", "gpkg_extensions", "gpkg_geometry_columns", "gpkg_spatial_ref_sys"];

fn fixture_v1() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_V1)
}

/// A private copy of the v1 fixture.
fn copy_v1(dir: &Path) -> PathBuf {
    let path = dir.join("schema-v1.stacdb");
    std::fs::copy(fixture_v1(), &path).expect("copy the fixture");
    path
}

fn raw(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open raw")
}

fn user_version(path: &Path) -> i64 {
    raw(path).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
}

fn tables(path: &Path) -> Vec<String> {
    let conn = raw(path);
    let mut stmt =
        conn.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

fn wal(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Every row of every table schema step 1 made, read with plain SQLite.
fn dump_v1_tables(path: &Path) -> BTreeMap<&'static str, Vec<Vec<SqlValue>>> {
    let conn = raw(path);
    let queries = [
        ("catalog", "SELECT * FROM catalog"),
        ("collections", "SELECT * FROM collections ORDER BY id"),
        ("items", "SELECT * FROM items ORDER BY fid"),
        ("rtree", "SELECT * FROM rtree_items_geometry ORDER BY id"),
        ("fts", "SELECT rowid, * FROM items_fts ORDER BY rowid"),
        ("queryables", "SELECT * FROM queryables ORDER BY collection, name"),
        ("changes", "SELECT * FROM changes ORDER BY seq"),
        ("sqlite_sequence", "SELECT * FROM sqlite_sequence ORDER BY name"),
    ];
    queries
        .into_iter()
        .map(|(name, sql)| {
            let mut stmt = conn.prepare(sql).unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| (0..n).map(|i| r.get::<_, SqlValue>(i)).collect())
                .unwrap()
                .collect::<rusqlite::Result<Vec<Vec<SqlValue>>>>()
                .unwrap();
            (name, rows)
        })
        .collect()
}

/// The error of an open that must fail.
fn open_error(result: stacdb::Result<Catalog>) -> Error {
    match result {
        Ok(_) => panic!("the open succeeded"),
        Err(e) => e,
    }
}

/// Runs the binary, which must fail with exit code 1 and a message containing `want`.
fn cli_refuses(args: &[&str], want: &str) {
    let out = common::stacdb(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(stderr.contains(want), "{args:?}: wanted {want:?} in: {stderr}");
}

#[test]
fn the_v1_fixture_is_frozen() {
    let path = fixture_v1();
    let bytes = std::fs::read(&path).expect("fixtures/schema-v1.stacdb is committed");
    assert!(bytes.len() < 200_000, "the fixture should stay small");
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    // Bytes 18 and 19 are 1 for a rollback journal, 2 for WAL: the fixture was frozen in
    // journal_mode=DELETE, so it is one self-contained file.
    assert_eq!(bytes[18..20], [1, 1], "the fixture must not be in WAL mode");
    assert!(!wal(&path).exists(), "no -wal file beside the fixture");
    assert_eq!(user_version(&path), 1);
    let tables = tables(&path);
    for gpkg in GPKG_TABLES {
        assert!(!tables.iter().any(|t| t == gpkg), "{gpkg} is from step 2");
    }
    for t in ["catalog", "collections", "items", "rtree_items_geometry", "items_fts", "queryables"]
    {
        assert!(tables.iter().any(|name| name == t), "step 1 table {t} is missing");
    }
    let dump = dump_v1_tables(&path);
    assert_eq!(dump["items"].len(), V1_ITEMS);
    assert_eq!(dump["collections"].len(), V1_COLLECTIONS.len());
    assert_eq!(dump["catalog"].len(), 1);
    // One item has null geometry, so it has no R-tree entry; every item has an FTS entry.
    assert_eq!(dump["rtree"].len(), V1_ITEMS - 1);
    assert_eq!(dump["fts"].len(), V1_ITEMS);
    let ops: Vec<&SqlValue> = dump["changes"].iter().map(|row| &row[1]).collect();
    for op in ["insert", "update", "delete"] {
        assert!(ops.contains(&&SqlValue::Text(op.into())), "no {op} in the change log");
    }
}

#[test]
fn opening_for_writing_upgrades_v1_to_v2() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_v1(dir.path());
    let before = dump_v1_tables(&path);

    let mut catalog = Catalog::open(&path).expect("open a version 1 catalog for writing");
    let version: i64 =
        catalog.connection().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 2);
    assert_eq!(stacdb::SCHEMA_VERSION, 2, "a new schema step needs its own fixture and test");

    // Step 2 added the GeoPackage tables, describing the items layer.
    let tables = tables(&path);
    for gpkg in GPKG_TABLES {
        assert!(tables.iter().any(|t| t == gpkg), "{gpkg} was not created");
    }
    let conn = catalog.connection();
    let layer: (String, String, i64) = conn
        .query_row("SELECT table_name, data_type, srs_id FROM gpkg_contents", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(layer, ("items".into(), "features".into(), 4326));
    let srs: i64 =
        conn.query_row("SELECT count(*) FROM gpkg_spatial_ref_sys", [], |r| r.get(0)).unwrap();
    assert_eq!(srs, 3);
    let column: String =
        conn.query_row("SELECT column_name FROM gpkg_geometry_columns", [], |r| r.get(0)).unwrap();
    assert_eq!(column, "geometry");

    // Nothing step 1 stored was touched.
    assert_eq!(dump_v1_tables(&path), before, "the upgrade changed existing rows");

    // The upgraded catalog reads and checks like a new one.
    let report = catalog.check().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.items_checked as usize, V1_ITEMS);
    assert_eq!(report.collections_checked as usize, V1_COLLECTIONS.len());
    let meta = catalog.metadata().unwrap();
    assert_eq!(meta.id, "schema-v1");
    assert_eq!(meta.title.as_deref(), Some(V1_CATALOG_TITLE));
    let info = catalog.info().unwrap();
    assert_eq!(info.schema_version, 2);
    assert_eq!(info.item_count as usize, V1_ITEMS);
    let ids: Vec<&str> = info.collections.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, V1_COLLECTIONS);
    for row in &before["items"] {
        let (SqlValue::Text(collection), SqlValue::Text(id), SqlValue::Text(content)) =
            (&row[1], &row[2], &row[10])
        else {
            panic!("unexpected items row {row:?}");
        };
        let stored: Value = serde_json::from_str(content).unwrap();
        assert_eq!(catalog.item(collection, id).unwrap(), stored, "item {id}");
    }
    for id in V1_COLLECTIONS {
        assert_eq!(catalog.collection(id).unwrap()["id"], id);
    }
    let last_v1_change = before["changes"].len() as i64;
    assert_eq!(info.last_change, last_v1_change);

    // And it takes new writes, continuing the change log.
    let item = dir.path().join("new-item.json");
    std::fs::write(
        &item,
        r#"{"type": "Feature", "stac_version": "1.1.0", "id": "after-upgrade",
            "collection": "test-collection", "geometry": {"type": "Point", "coordinates": [7, 46]},
            "properties": {"datetime": "2024-05-01T00:00:00Z", "title": "written at v2"},
            "links": [], "assets": {}}"#,
    )
    .unwrap();
    let report = catalog.ingest(&[Input::Path(item)], &IngestOptions::default(), &Silent).unwrap();
    assert_eq!(report.items.inserted, 1);
    let changes = catalog.changes(last_v1_change, 10).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].item_id.as_deref(), Some("after-upgrade"));
    assert!(catalog.check().unwrap().is_ok());
    drop(catalog);

    // Opening again finds nothing to do; read-only opening now works.
    let again = Catalog::open_read_only(&path).expect("read-only open after the upgrade");
    assert_eq!(again.info().unwrap().item_count as usize, V1_ITEMS + 1);
    assert_eq!(user_version(&path), 2);
}

#[test]
fn stacdb_check_upgrades_v1() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_v1(dir.path());
    let out = common::stacdb_ok(["check", path.to_str().unwrap()]);
    assert_eq!(
        out.trim(),
        format!("ok: {V1_ITEMS} item(s) and 2 collection(s) agree with their indexes")
    );
    assert_eq!(user_version(&path), 2);
    let info: Value =
        serde_json::from_str(&common::stacdb_ok(["info", path.to_str().unwrap(), "--json"]))
            .unwrap();
    assert_eq!(info["schema_version"], 2);
    assert_eq!(info["item_count"], V1_ITEMS);
}

#[test]
fn read_only_open_of_v1_asks_for_an_upgrade_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_v1(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    let message = open_error(Catalog::open_read_only(&path)).to_string();
    assert!(message.contains("schema version 1"), "{message}");
    assert!(message.contains("older"), "{message}");
    assert!(std::fs::read(&path).unwrap() == bytes, "a read-only open changed the file");
    assert!(!wal(&path).exists());
    assert_eq!(user_version(&path), 1);
}

#[test]
fn a_failed_upgrade_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_v1(dir.path());
    // A table step 2 creates is already there, so step 2 fails halfway through.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY)").unwrap();
    drop(conn);
    let before = dump_v1_tables(&path);
    let message = open_error(Catalog::open(&path)).to_string();
    assert!(message.contains("gpkg_contents"), "{message}");
    assert_eq!(user_version(&path), 1, "the version moved on");
    let tables = tables(&path);
    assert!(
        !tables.iter().any(|t| t == "gpkg_spatial_ref_sys"),
        "the part of step 2 before the failure was kept: {tables:?}"
    );
    assert_eq!(dump_v1_tables(&path), before);
}

/// Processes that open a v1 file at the same moment: one upgrades it, the others wait.
#[test]
fn concurrent_openers_upgrade_once() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4 {
        let round_dir = dir.path().join(format!("round-{round}"));
        std::fs::create_dir(&round_dir).unwrap();
        let path = copy_v1(&round_dir);
        let children: Vec<_> = (0..6)
            .map(|i| {
                let command = if i % 2 == 0 { "check" } else { "info" };
                common::bin()
                    .args([command, path.to_str().unwrap()])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(user_version(&path), 2);
        let srs: i64 = raw(&path)
            .query_row("SELECT count(*) FROM gpkg_spatial_ref_sys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(srs, 3, "round {round}: step 2 ran more than once");
    }
    // Threads start closer together than processes.
    for round in 0..60 {
        let round_dir = dir.path().join(format!("threads-{round}"));
        std::fs::create_dir(&round_dir).unwrap();
        let path = copy_v1(&round_dir);
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (path, barrier) = (&path, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let catalog = Catalog::open(path)
                        .unwrap_or_else(|e| panic!("round {round} thread {t}: {e}"));
                    assert_eq!(catalog.info().unwrap().item_count as usize, V1_ITEMS);
                });
            }
        });
        assert_eq!(user_version(&path), 2);
    }
}

/// A file from a newer stacdb is refused, read-only or not, and left as it was.
#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = copy_v1(dir.path());
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for (how, result) in
        [("read-write", Catalog::open(&path)), ("read-only", Catalog::open_read_only(&path))]
    {
        let error = open_error(result);
        assert!(
            matches!(error, Error::SchemaTooNew { found: 99, supported: 2, .. }),
            "{how}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("newer"), "{how}: {message}");
        assert!(message.contains("99"), "{how}: {message}");
    }
    let p = path.to_str().unwrap();
    cli_refuses(&["info", p], "newer");
    cli_refuses(&["check", p], "newer");
    cli_refuses(&["ingest", p, fixture_v1().to_str().unwrap()], "newer");
    assert_eq!(user_version(&path), 99);
    assert!(std::fs::read(&path).unwrap() == bytes, "refusing the file changed it");
    assert!(!wal(&path).exists(), "refusing the file left a write-ahead log");
}

/// Another program's SQLite database is refused and left exactly as it was.
#[test]
fn another_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.sqlite");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');")
        .unwrap();
    drop(conn);
    let bytes = std::fs::read(&path).unwrap();
    for (how, result) in [
        ("read-write", Catalog::open(&path)),
        ("create", Catalog::create(&path)),
        ("read-only", Catalog::open_read_only(&path)),
    ] {
        let error = open_error(result);
        assert!(matches!(error, Error::NotACatalog { .. }), "{how}: {error:?}");
        let message = error.to_string();
        assert!(message.contains("not a stacdb catalog"), "{how}: {message}");
    }
    let p = path.to_str().unwrap();
    cli_refuses(&["info", p], "not a stacdb catalog");
    cli_refuses(&["ingest", p, fixture_v1().to_str().unwrap()], "not a stacdb catalog");
    cli_refuses(&["init", p], "not a stacdb catalog");
    assert_eq!(tables(&path), ["notes"]);
    assert!(std::fs::read(&path).unwrap() == bytes, "refusing the file changed it");
    assert!(!wal(&path).exists(), "refusing the file left a write-ahead log");
}

/// A file that is not SQLite at all is refused in plain words, not with SQLite's.
#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("short.txt", "not a database\n".to_string()),
        (
            "long.json",
            format!("{{\"type\": \"Feature\", \"padding\": \"{}\"}}\n", "x".repeat(5000)),
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).unwrap();
        for (how, result) in [
            ("read-write", Catalog::open(&path)),
            ("create", Catalog::create(&path)),
            ("read-only", Catalog::open_read_only(&path)),
        ] {
            let error = open_error(result);
            assert!(matches!(error, Error::NotACatalog { .. }), "{name} {how}: {error:?}");
            let message = error.to_string();
            assert!(message.contains("not a SQLite database"), "{name} {how}: {message}");
            assert!(!message.contains("file is not a database"), "raw SQLite error: {message}");
        }
        let p = path.to_str().unwrap();
        cli_refuses(&["info", p], "not a SQLite database");
        cli_refuses(&["ingest", p, fixture_v1().to_str().unwrap()], "not a SQLite database");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), content, "{name} was changed");
    }
}

/// Writes `fixtures/schema-v1.stacdb`. Run by hand (see fixtures/README.md):
///
/// ```text
/// cargo test --test migrations -- --ignored --exact write_schema_v1_fixture
/// ```
///
/// It does what stacdb did while its schema had one step: applies `schema/001_initial.sql`
/// and inserts the catalog row (as `db::open` does for step 1) in one transaction that sets
/// `user_version = 1`, then writes real collections and items through the library's writer in
/// later transactions (an ingest, an upsert, a delete), so every index and the change log are
/// filled consistently. Finally it switches to `journal_mode=DELETE` and vacuums, so the
/// fixture is one small self-contained file.
#[test]
#[ignore = "writes fixtures/schema-v1.stacdb; run it by hand when the fixture must be rebuilt"]
fn write_schema_v1_fixture() {
    use stacdb::document::{self, Doc};
    use stacdb::store::{Mode, Writer};

    let data = common::data_dir("write_schema_v1_fixture").expect("the shared data is needed");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("schema-v1.stacdb");
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();

    // Step 1, as db::migrate applied it.
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn.execute_batch(include_str!("../schema/001_initial.sql")).unwrap();
    conn.execute("INSERT INTO catalog (singleton, id) VALUES (1, ?1)", ["schema-v1"]).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    // `stacdb init --title`.
    conn.execute("UPDATE catalog SET title = ?1", [V1_CATALOG_TITLE]).unwrap();

    let docs = |relative: &str, limit: usize| -> Vec<Doc> {
        let file = common::data_file(&data, relative);
        common::read_documents(&file)
            .into_iter()
            .take(limit)
            .flat_map(|value| document::documents(value, &stacdb::Location::file(relative)))
            .map(|doc| doc.expect("a valid document"))
            .collect()
    };
    let write = |docs: Vec<Doc>, mode: Mode| {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        let mut writer = Writer::new(&conn).unwrap();
        for doc in docs {
            match doc {
                Doc::Collection(c) => {
                    writer.put_collection(&c, mode).unwrap().unwrap();
                }
                Doc::Item(item) => {
                    let collection = item.collection.clone().expect("items name a collection");
                    writer.ensure_collection(&collection, &item).unwrap();
                    writer.put_item(&item, &collection, mode).unwrap().unwrap();
                }
                Doc::Catalog(_) => panic!("no catalogs here"),
            }
        }
        assert!(writer.pending().is_empty());
        writer.finish().unwrap();
        conn.execute_batch("COMMIT").unwrap();
    };
    let pgstac = "fixtures/pgstac/src/pgstac/tests/testdata";
    let sqlalchemy = "fixtures/stac-fastapi-sqlalchemy/tests/data";
    // An ingest: two collections, six NAIP items, an item with null geometry and one whose
    // bbox crosses the antimeridian.
    let mut first = docs(&format!("{pgstac}/collections.json"), 1);
    first.extend(docs(&format!("{sqlalchemy}/test_collection.json"), 1));
    first.extend(docs(&format!("{pgstac}/items.ndjson"), 6));
    for name in ["test_item", "test_item_geometry_null", "test_item_multipolygon"] {
        first.extend(docs(&format!("{sqlalchemy}/{name}.json"), 1));
    }
    write(first, Mode::Insert);
    // An upsert that changes an item's title and a property.
    let mut changed = common::read_documents(&data.join(format!("{sqlalchemy}/test_item.json")));
    changed[0]["properties"]["title"] = "Updated at schema version 1".into();
    changed[0]["properties"]["platform"] = "landsat-8-upserted".into();
    let changed = document::documents(changed.remove(0), &stacdb::Location::file("upsert"))
        .into_iter()
        .map(|d| d.unwrap())
        .collect();
    write(changed, Mode::Upsert);
    // A delete.
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut writer = Writer::new(&conn).unwrap();
    let sixth: Value = common::read_documents(&data.join(format!("{pgstac}/items.ndjson")))
        .into_iter()
        .nth(5)
        .unwrap();
    assert!(writer.delete_item("pgstac-test-collection", sixth["id"].as_str().unwrap()).unwrap());
    writer.finish().unwrap();
    conn.execute_batch("COMMIT").unwrap();

    conn.execute_batch("VACUUM").unwrap();
    drop(conn);
    assert!(!wal(&path).exists());
    let out = fixture_v1();
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::copy(&path, &out).unwrap();
    eprintln!("wrote {} ({} bytes)", out.display(), std::fs::metadata(&out).unwrap().len());
}

/// Read commands must not turn an empty file into a catalog; only init and ingest create one.
#[test]
fn read_commands_leave_an_empty_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.stacdb");
    std::fs::write(&path, b"").unwrap();
    for args in [vec!["info"], vec!["check"], vec!["get", "some-collection"]] {
        let mut args: Vec<String> = args.into_iter().map(String::from).collect();
        args.insert(1, path.display().to_string());
        let out = common::stacdb(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("the file is empty"), "{args:?}: {stderr}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "{args:?} wrote to the file");
    }
    assert!(Catalog::open_read_only(&path).is_err());
    common::stacdb_ok(["init", &path.display().to_string()]);
    assert_eq!(Catalog::open(&path).unwrap().info().unwrap().schema_version, SCHEMA_VERSION);
}
