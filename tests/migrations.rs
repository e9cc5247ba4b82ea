//! Schema upgrades, each tested on a frozen file written at the older version, and the files
//! stacdb must refuse: a newer schema, another program's SQLite database, and a file that is
//! not SQLite at all.
//!
//! Each older schema version has a committed catalog frozen at that version:
//! `fixtures/schema-v1.stacdb` (only `schema/001_initial.sql` applied),
//! `fixtures/schema-v2.stacdb` (steps 001 and 002) and `fixtures/schema-v3.stacdb` (steps 001
//! to 003). They are never rewritten by the tests: each test works on a copy. How they were
//! made is in `fixtures/README.md`; the generators are the ignored tests
//! `write_schema_v1_fixture`, `write_schema_v2_fixture` and `write_schema_v3_fixture` at the
//! end of this file.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;
use stacdb::document::Doc;
use stacdb::store::Mode;
use stacdb::{Catalog, Error, IngestOptions, Input, SCHEMA_VERSION, Silent};

/// A catalog file frozen at an older schema version, and what it holds.
struct Fixture {
    /// Its `PRAGMA user_version`.
    version: i64,
    /// Its file name under `fixtures/`.
    file: &'static str,
    /// The catalog row.
    id: &'static str,
    title: &'static str,
    description: Option<&'static str>,
    /// How many items it holds, and how many of those have null geometry (no R-tree entry).
    items: usize,
    null_geometry: usize,
    /// Its collections, in id order.
    collections: &'static [&'static str],
    /// An upper bound on its size, so that it stays small.
    max_bytes: usize,
}

impl Fixture {
    fn path(&self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(self.file)
    }

    /// A private copy of the fixture in `dir`.
    fn copy(&self, dir: &Path) -> PathBuf {
        let path = dir.join(self.file);
        std::fs::copy(self.path(), &path).expect("copy the fixture");
        path
    }
}

/// See `write_schema_v1_fixture`.
const V1: Fixture = Fixture {
    version: 1,
    file: "schema-v1.stacdb",
    id: "schema-v1",
    title: "A catalog frozen at schema version 1",
    description: None,
    items: 8,
    null_geometry: 1,
    collections: &["pgstac-test-collection", "test-collection"],
    max_bytes: 200_000,
};

/// See `write_schema_v2_fixture`.
const V2: Fixture = Fixture {
    version: 2,
    file: "schema-v2.stacdb",
    id: "schema-v2",
    title: "A catalog frozen at schema version 2",
    description: Some("Real items from the STAC spec examples and Sentinel-1 monthly mosaics"),
    items: 3,
    null_geometry: 0,
    collections: &["sentinel-1-global-mosaics", "simple-collection"],
    max_bytes: 100_000,
};

/// See `write_schema_v3_fixture`.
const V3: Fixture = Fixture {
    version: 3,
    file: "schema-v3.stacdb",
    id: "schema-v3",
    title: "A catalog frozen at schema version 3",
    description: Some("Real items from NOAA CDR ocean heat content and a Landsat 8 example"),
    items: 3,
    null_geometry: 0,
    collections: &["landsat-8-l1", "noaa-cdr-ocean-heat-content"],
    max_bytes: 150_000,
};

/// Every older schema version's fixture, oldest first.
const FIXTURES: [&Fixture; 3] = [&V1, &V2, &V3];

/// The tables schema step 2 adds.
const GPKG_TABLES: [&str; 4] =
    ["gpkg_contents", "gpkg_extensions", "gpkg_geometry_columns", "gpkg_spatial_ref_sys"];

/// The length of the token secret schema step 3 adds.
const TOKEN_SECRET_LEN: usize = 32;

/// The tables schema step 4 adds (the tree of an imported static catalog).
const TREE_TABLES: [&str; 3] = ["collection_parents", "item_parents", "subcatalogs"];

fn raw(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open raw")
}

fn user_version(path: &Path) -> i64 {
    raw(path).query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap()
}

fn names(path: &Path, sql: &str) -> Vec<String> {
    let conn = raw(path);
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

fn tables(path: &Path) -> Vec<String> {
    names(path, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
}

fn indexes(path: &Path) -> Vec<String> {
    names(path, "SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name")
}

fn catalog_columns(path: &Path) -> Vec<String> {
    names(path, "SELECT name FROM pragma_table_info('catalog') ORDER BY cid")
}

/// The schema as SQLite keeps it: type, name, table and SQL text of every table, index,
/// trigger and view, shadow tables included. Only `rootpage` is left out: it says where a
/// b-tree lies in the file, not what it is.
fn schema(path: &Path) -> Vec<Vec<SqlValue>> {
    let conn = raw(path);
    let mut stmt = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
        .unwrap();
    stmt.query_map([], |r| (0..4).map(|i| r.get::<_, SqlValue>(i)).collect())
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// The catalog's paging-token secret, which must be a blob of 32 bytes that are not all zero.
fn token_secret(path: &Path) -> Vec<u8> {
    let (kind, secret): (String, Option<Vec<u8>>) = raw(path)
        .query_row("SELECT typeof(token_secret), token_secret FROM catalog", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(kind, "blob", "{}: token_secret is not a blob", path.display());
    let secret = secret.unwrap();
    assert_eq!(secret.len(), TOKEN_SECRET_LEN, "{}: token_secret length", path.display());
    assert!(secret.iter().any(|&b| b != 0), "{}: token_secret is all zeros", path.display());
    secret
}

fn wal(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Every row of every table the schema steps up to `version` made, read with plain SQLite.
/// The catalog row is read by the columns of step 1 (step 3 adds `token_secret`).
fn dump_tables(path: &Path, version: i64) -> BTreeMap<&'static str, Vec<Vec<SqlValue>>> {
    let conn = raw(path);
    let mut queries = vec![
        ("catalog", "SELECT singleton, id, title, description FROM catalog"),
        ("collections", "SELECT * FROM collections ORDER BY id"),
        // The columns every version has (step 3 adds typed and virtual ones; `stacdb check`,
        // run after each upgrade, verifies those against the documents).
        (
            "items",
            "SELECT fid, collection, id, datetime_start, datetime_end, minx, miny, maxx, maxy,
                    geometry, content FROM items ORDER BY fid",
        ),
        ("rtree", "SELECT * FROM rtree_items_geometry ORDER BY id"),
        ("fts", "SELECT rowid, * FROM items_fts ORDER BY rowid"),
        ("queryables", "SELECT * FROM queryables ORDER BY collection, name"),
        ("changes", "SELECT * FROM changes ORDER BY seq"),
        ("sqlite_sequence", "SELECT * FROM sqlite_sequence ORDER BY name"),
    ];
    if version >= 3 {
        queries.extend([
            ("catalog_secret", "SELECT token_secret FROM catalog"),
            (
                "items_typed",
                "SELECT fid, p_eo_cloud_cover, p_gsd, p_platform, p_constellation FROM items
                 ORDER BY fid",
            ),
            ("spacetime", "SELECT * FROM rtree_items_spacetime ORDER BY id"),
        ]);
    }
    if version >= 2 {
        queries.extend([
            ("gpkg_spatial_ref_sys", "SELECT * FROM gpkg_spatial_ref_sys ORDER BY srs_id"),
            ("gpkg_contents", "SELECT * FROM gpkg_contents ORDER BY table_name"),
            (
                "gpkg_geometry_columns",
                "SELECT * FROM gpkg_geometry_columns ORDER BY table_name, column_name",
            ),
            (
                "gpkg_extensions",
                "SELECT * FROM gpkg_extensions ORDER BY table_name, column_name, extension_name",
            ),
        ]);
    }
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
fn every_older_schema_version_has_a_frozen_fixture() {
    assert_eq!(stacdb::SCHEMA_VERSION, 4, "a new schema step needs its own fixture and test");
    let versions: Vec<i64> = FIXTURES.iter().map(|f| f.version).collect();
    assert_eq!(versions, (1..SCHEMA_VERSION).collect::<Vec<_>>());
}

/// Checks that a committed fixture is still what it was frozen as.
fn check_frozen(fixture: &Fixture) {
    let path = fixture.path();
    let name = fixture.file;
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("fixtures/{name}: {e}"));
    assert!(bytes.len() < fixture.max_bytes, "{name} should stay small");
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    // Bytes 18 and 19 are 1 for a rollback journal, 2 for WAL: the fixtures were frozen in
    // journal_mode=DELETE, so each is one self-contained file.
    assert_eq!(bytes[18..20], [1, 1], "{name} must not be in WAL mode");
    assert!(!wal(&path).exists(), "no -wal file beside {name}");
    assert_eq!(user_version(&path), fixture.version, "{name} was upgraded");

    let tables = tables(&path);
    for t in ["catalog", "collections", "items", "rtree_items_geometry", "items_fts", "queryables"]
    {
        assert!(tables.iter().any(|name| name == t), "{name}: step 1 table {t} is missing");
    }
    for gpkg in GPKG_TABLES {
        assert_eq!(
            tables.iter().any(|t| t == gpkg),
            fixture.version >= 2,
            "{name}: {gpkg} is from step 2"
        );
    }
    let indexes = indexes(&path);
    if fixture.version < 3 {
        // Nothing of step 3.
        assert_eq!(catalog_columns(&path), ["singleton", "id", "title", "description"], "{name}");
        assert!(indexes.iter().any(|i| i == "items_datetime_start"), "{name}: {indexes:?}");
        for step3 in ["items_datetime_id", "items_time_span"] {
            assert!(!indexes.iter().any(|i| i == step3), "{name}: {step3} is from step 3");
        }
    } else {
        // All of step 3: its column, its indexes, its R-tree and a secret.
        assert_eq!(
            catalog_columns(&path),
            ["singleton", "id", "title", "description", "token_secret"],
            "{name}"
        );
        for step3 in ["items_datetime_id", "items_time_span"] {
            assert!(indexes.iter().any(|i| i == step3), "{name}: {step3} is missing");
        }
        assert!(tables.iter().any(|t| t == "rtree_items_spacetime"), "{name}");
        token_secret(&path);
    }
    // Nothing of step 4.
    for tree in TREE_TABLES {
        assert!(!tables.iter().any(|t| t == tree), "{name}: {tree} is from step 4");
    }

    let dump = dump_tables(&path, fixture.version);
    assert_eq!(dump["items"].len(), fixture.items, "{name}");
    assert_eq!(dump["collections"].len(), fixture.collections.len(), "{name}");
    assert_eq!(dump["catalog"].len(), 1, "{name}");
    assert_eq!(dump["rtree"].len(), fixture.items - fixture.null_geometry, "{name}");
    assert_eq!(dump["fts"].len(), fixture.items, "{name}");
    let ops: Vec<&SqlValue> = dump["changes"].iter().map(|row| &row[1]).collect();
    for op in ["insert", "update", "delete"] {
        assert!(ops.contains(&&SqlValue::Text(op.into())), "{name}: no {op} in the change log");
    }
}

#[test]
fn the_v1_fixture_is_frozen() {
    check_frozen(&V1);
}

#[test]
fn the_v3_fixture_is_frozen() {
    check_frozen(&V3);
    let path = V3.path();
    // A typed property column with a value (the upserted cloud cover), so that the upgrade
    // must keep step 3's columns.
    let cloud: f64 = raw(&path)
        .query_row(
            "SELECT p_eo_cloud_cover FROM items WHERE collection = 'landsat-8-l1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(cloud, 12.5);
    assert_eq!(dump_tables(&path, 3)["spacetime"].len(), V3.items);
}

#[test]
fn the_v2_fixture_is_frozen() {
    check_frozen(&V2);
    let path = V2.path();
    // Items with a time span, so that step 3's items_time_span index has something to index.
    let spans: i64 = raw(&path)
        .query_row("SELECT count(*) FROM items WHERE datetime_end > datetime_start", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(spans, V2.items as i64);
}

/// Opens a copy of `fixture` for writing and checks the upgrade to the current version: every
/// row stored before is kept byte for byte, the schema becomes exactly that of a new catalog,
/// the catalog gets a token secret of its own, and the file reads, checks and takes writes
/// like a new one. Returns the directory and the upgraded copy for further checks.
fn upgrade_keeps_everything(fixture: &Fixture) -> (tempfile::TempDir, PathBuf) {
    let name = fixture.file;
    let dir = tempfile::tempdir().unwrap();
    let path = fixture.copy(dir.path());
    let before = dump_tables(&path, fixture.version);
    let fresh = dir.path().join("fresh.stacdb");
    drop(Catalog::create(&fresh).unwrap());

    let mut catalog = Catalog::open(&path).expect("open an older catalog for writing");
    let version: i64 =
        catalog.connection().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, SCHEMA_VERSION, "{name}");
    assert_eq!(stacdb::SCHEMA_VERSION, 4, "a new schema step needs its own fixture and test");

    // Nothing stored before was touched.
    assert_eq!(dump_tables(&path, fixture.version), before, "{name}: the upgrade changed rows");
    // The schema is now exactly that of a catalog made by this build.
    assert_eq!(schema(&path), schema(&fresh), "{name}: upgraded schema differs from a new one");
    assert_eq!(user_version(&fresh), SCHEMA_VERSION);
    // Step 3 gave it a token secret of its own (or it had one from step 3 already).
    let secret = token_secret(&path);
    assert_ne!(secret, token_secret(&fresh), "{name}: two catalogs share a token secret");

    // The upgraded catalog reads and checks like a new one.
    let report = catalog.check().unwrap();
    assert!(report.is_ok(), "{name}: {:?}", report.problems);
    assert_eq!(report.items_checked as usize, fixture.items);
    assert_eq!(report.collections_checked as usize, fixture.collections.len());
    let meta = catalog.metadata().unwrap();
    assert_eq!(meta.id, fixture.id);
    assert_eq!(meta.title.as_deref(), Some(fixture.title));
    assert_eq!(meta.description.as_deref(), fixture.description);
    let info = catalog.info().unwrap();
    assert_eq!(info.schema_version, SCHEMA_VERSION);
    assert_eq!(info.item_count as usize, fixture.items);
    let ids: Vec<&str> = info.collections.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, fixture.collections);
    for row in &before["items"] {
        let (SqlValue::Text(collection), SqlValue::Text(id), SqlValue::Text(content)) =
            (&row[1], &row[2], &row[10])
        else {
            panic!("unexpected items row {row:?}");
        };
        let stored: Value = serde_json::from_str(content).unwrap();
        assert_eq!(catalog.item(collection, id).unwrap(), stored, "{name}: item {id}");
    }
    for row in &before["collections"] {
        let (SqlValue::Text(id), SqlValue::Text(content)) = (&row[0], &row[1]) else {
            panic!("unexpected collections row {row:?}");
        };
        let stored: Value = serde_json::from_str(content).unwrap();
        assert_eq!(catalog.collection_document(id).unwrap(), stored, "{name}: collection {id}");
        assert_eq!(catalog.collection(id).unwrap()["id"], id.as_str());
    }
    let last_change = before["changes"].len() as i64;
    assert_eq!(info.last_change, last_change);

    // And it takes new writes, continuing the change log.
    let collection = fixture.collections[0];
    let item = dir.path().join("new-item.json");
    std::fs::write(
        &item,
        format!(
            r#"{{"type": "Feature", "stac_version": "1.1.0", "id": "after-upgrade",
                "collection": "{collection}",
                "geometry": {{"type": "Point", "coordinates": [7, 46]}},
                "properties": {{"datetime": "2024-05-01T00:00:00Z",
                                "title": "written after the upgrade"}},
                "links": [], "assets": {{}}}}"#
        ),
    )
    .unwrap();
    let report = catalog.ingest(&[Input::Path(item)], &IngestOptions::default(), &Silent).unwrap();
    assert_eq!(report.items.inserted, 1);
    let changes = catalog.changes(last_change, 10).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].item_id.as_deref(), Some("after-upgrade"));
    assert!(catalog.check().unwrap().is_ok());
    drop(catalog);

    // Opening again finds nothing to do and keeps the secret; read-only opening now works.
    drop(Catalog::open(&path).unwrap());
    let again = Catalog::open_read_only(&path).expect("read-only open after the upgrade");
    assert_eq!(again.info().unwrap().item_count as usize, fixture.items + 1);
    drop(again);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(token_secret(&path), secret, "{name}: reopening changed the token secret");
    (dir, path)
}

#[test]
fn opening_for_writing_upgrades_v1() {
    let (_dir, path) = upgrade_keeps_everything(&V1);
    // Step 2 added the GeoPackage tables, describing the items layer.
    let conn = raw(&path);
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
}

#[test]
fn opening_for_writing_upgrades_v2() {
    let (_dir, path) = upgrade_keeps_everything(&V2);
    // Step 3 replaced the datetime index and added the time span index.
    let indexes = indexes(&path);
    assert!(!indexes.iter().any(|i| i == "items_datetime_start"), "{indexes:?}");
    for step3 in ["items_datetime_id", "items_time_span"] {
        assert!(indexes.iter().any(|i| i == step3), "{step3} is missing: {indexes:?}");
    }
    // The longest span is read from the end of items_time_span.
    let conn = raw(&path);
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT max(datetime_end - datetime_start) FROM items",
            [],
            |r| r.get(3),
        )
        .unwrap();
    assert!(plan.contains("items_time_span"), "{plan}");
}

#[test]
fn opening_for_writing_upgrades_v3() {
    let fixture_secret = token_secret(&V3.path());
    let (dir, path) = upgrade_keeps_everything(&V3);
    // Step 4 added the tree tables, empty; the secret step 3 made is kept.
    let tables = tables(&path);
    for tree in TREE_TABLES {
        assert!(tables.iter().any(|t| t == tree), "{tree} is missing: {tables:?}");
        let rows: i64 = raw(&path)
            .query_row(&format!("SELECT count(*) FROM {tree}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "{tree}");
    }
    assert_eq!(token_secret(&path), fixture_secret);

    // The upgraded catalog takes a static catalog import: an item of one of its collections
    // hung from a sub-catalog, recorded in the new tables.
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("landsat")).unwrap();
    std::fs::write(
        tree.join("catalog.json"),
        r#"{"type": "Catalog", "stac_version": "1.1.0", "id": "root", "description": "d",
            "links": [{"rel": "child", "href": "./landsat/catalog.json"}]}"#,
    )
    .unwrap();
    std::fs::write(
        tree.join("landsat/catalog.json"),
        r#"{"type": "Catalog", "stac_version": "1.1.0", "id": "landsat", "description": "d",
            "links": [{"rel": "item", "href": "./imported.json"}]}"#,
    )
    .unwrap();
    std::fs::write(
        tree.join("landsat/imported.json"),
        r#"{"type": "Feature", "stac_version": "1.1.0", "id": "imported",
            "collection": "landsat-8-l1",
            "geometry": {"type": "Point", "coordinates": [7, 46]},
            "properties": {"datetime": "2024-05-01T00:00:00Z"}, "links": [], "assets": {}}"#,
    )
    .unwrap();
    let mut catalog = Catalog::open(&path).unwrap();
    let report = catalog
        .ingest(&[Input::Path(tree.join("catalog.json"))], &IngestOptions::default(), &Silent)
        .unwrap();
    assert_eq!(report.items.inserted, 1);
    assert!(catalog.check().unwrap().is_ok());
    drop(catalog);
    let conn = raw(&path);
    let sub: (i64, String) = conn
        .query_row("SELECT node, href FROM subcatalogs WHERE parent IS NULL", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(sub.1, "landsat/catalog.json");
    let item: (String, String, i64, String) = conn
        .query_row("SELECT collection, id, parent, href FROM item_parents", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!(
        item,
        ("landsat-8-l1".into(), "imported".into(), sub.0, "landsat/imported.json".into())
    );
    // The catalog existed, so its metadata stays its own.
    assert_eq!(
        conn.query_row("SELECT id FROM catalog", [], |r| r.get::<_, String>(0)).unwrap(),
        V3.id
    );
}

#[test]
fn a_failed_step_4_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = V3.copy(dir.path());
    // A table step 4 creates last is already there, so step 4 fails after making the others.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE item_parents (x)").unwrap();
    drop(conn);
    let before = dump_tables(&path, 3);
    let schema_before = schema(&path);
    let message = open_error(Catalog::open(&path)).to_string();
    assert!(message.contains("item_parents"), "{message}");
    assert_eq!(user_version(&path), 3, "the version moved on");
    assert_eq!(schema(&path), schema_before, "the part of step 4 before the failure was kept");
    assert!(!tables(&path).iter().any(|t| t == "subcatalogs"));
    assert_eq!(dump_tables(&path, 3), before);
}

/// Every catalog, new or upgraded, gets a token secret of its own, even two copies of the
/// same file.
#[test]
fn every_catalog_gets_its_own_token_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for name in ["a.stacdb", "b.stacdb"] {
        let path = dir.path().join(name);
        drop(Catalog::create(&path).unwrap());
        paths.push(path);
    }
    let init = dir.path().join("init.stacdb");
    common::stacdb_ok(["init", init.to_str().unwrap()]);
    paths.push(init);
    // Files older than step 3 get a secret when upgraded; a copy of a version 3 file is the
    // same catalog and keeps its secret.
    for fixture in FIXTURES.iter().filter(|f| f.version < 3) {
        for copy in 0..2 {
            let copy_dir = dir.path().join(format!("v{}-{copy}", fixture.version));
            std::fs::create_dir(&copy_dir).unwrap();
            let path = fixture.copy(&copy_dir);
            drop(Catalog::open(&path).unwrap());
            paths.push(path);
        }
    }
    let secrets: BTreeSet<Vec<u8>> = paths.iter().map(|p| token_secret(p)).collect();
    assert_eq!(secrets.len(), paths.len(), "some catalogs share a token secret");
    // Opening for writing again leaves the secret as it was.
    let first = token_secret(&paths[0]);
    drop(Catalog::open(&paths[0]).unwrap());
    assert_eq!(token_secret(&paths[0]), first);
}

#[test]
fn stacdb_check_upgrades_older_versions() {
    for fixture in FIXTURES {
        let dir = tempfile::tempdir().unwrap();
        let path = fixture.copy(dir.path());
        let out = common::stacdb_ok(["check", path.to_str().unwrap()]);
        assert_eq!(
            out.trim(),
            format!(
                "ok: {} item(s) and {} collection(s) agree with their indexes",
                fixture.items,
                fixture.collections.len()
            )
        );
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        token_secret(&path);
        let info: Value =
            serde_json::from_str(&common::stacdb_ok(["info", path.to_str().unwrap(), "--json"]))
                .unwrap();
        assert_eq!(info["schema_version"], SCHEMA_VERSION);
        assert_eq!(info["item_count"], fixture.items);
    }
}

#[test]
fn read_only_open_of_an_older_version_asks_for_an_upgrade_and_writes_nothing() {
    for fixture in FIXTURES {
        let dir = tempfile::tempdir().unwrap();
        let path = fixture.copy(dir.path());
        let bytes = std::fs::read(&path).unwrap();
        let error = open_error(Catalog::open_read_only(&path));
        assert!(matches!(error, Error::NotACatalog { .. }), "{error:?}");
        let message = error.to_string();
        let version = format!("schema version {}", fixture.version);
        assert!(message.contains(&version), "{message}");
        assert!(message.contains("older than this build"), "{message}");
        assert!(std::fs::read(&path).unwrap() == bytes, "a read-only open changed the file");
        assert!(!wal(&path).exists());
        assert_eq!(user_version(&path), fixture.version);
    }
}

#[test]
fn a_failed_upgrade_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = V1.copy(dir.path());
    // A table step 2 creates is already there, so step 2 fails halfway through.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE gpkg_contents (table_name TEXT PRIMARY KEY)").unwrap();
    drop(conn);
    let before = dump_tables(&path, 1);
    let message = open_error(Catalog::open(&path)).to_string();
    assert!(message.contains("gpkg_contents"), "{message}");
    assert_eq!(user_version(&path), 1, "the version moved on");
    let tables = tables(&path);
    assert!(
        !tables.iter().any(|t| t == "gpkg_spatial_ref_sys"),
        "the part of step 2 before the failure was kept: {tables:?}"
    );
    assert_eq!(dump_tables(&path, 1), before);
}

#[test]
fn a_failed_step_3_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = V2.copy(dir.path());
    // A table step 3 creates last is already there, so step 3 fails after adding the
    // secret's column and rebuilding the items table.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE rtree_items_spacetime (x)").unwrap();
    drop(conn);
    let before = dump_tables(&path, 2);
    let schema_before = schema(&path);
    let message = open_error(Catalog::open(&path)).to_string();
    assert!(message.contains("rtree_items_spacetime"), "{message}");
    assert_eq!(user_version(&path), 2, "the version moved on");
    assert_eq!(schema(&path), schema_before, "the part of step 3 before the failure was kept");
    assert_eq!(catalog_columns(&path), ["singleton", "id", "title", "description"]);
    assert_eq!(dump_tables(&path, 2), before);
}

/// Processes that open an older file at the same moment: one upgrades it, the others wait.
#[test]
fn concurrent_openers_upgrade_once() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4 {
        let fixture = FIXTURES[round % FIXTURES.len()];
        let round_dir = dir.path().join(format!("round-{round}"));
        std::fs::create_dir(&round_dir).unwrap();
        let path = fixture.copy(&round_dir);
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
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        let srs: i64 = raw(&path)
            .query_row("SELECT count(*) FROM gpkg_spatial_ref_sys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(srs, 3, "round {round}: step 2 ran more than once");
        token_secret(&path);
    }
    // Threads start closer together than processes.
    for round in 0..60 {
        let fixture = FIXTURES[round % FIXTURES.len()];
        let round_dir = dir.path().join(format!("threads-{round}"));
        std::fs::create_dir(&round_dir).unwrap();
        let path = fixture.copy(&round_dir);
        let barrier = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (path, barrier) = (&path, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let catalog = Catalog::open(path)
                        .unwrap_or_else(|e| panic!("round {round} thread {t}: {e}"));
                    assert_eq!(catalog.info().unwrap().item_count as usize, fixture.items);
                });
            }
        });
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        token_secret(&path);
    }
}

/// A file from a newer stacdb is refused, read-only or not, and left as it was.
#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = V1.copy(dir.path());
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for (how, result) in
        [("read-write", Catalog::open(&path)), ("read-only", Catalog::open_read_only(&path))]
    {
        let error = open_error(result);
        assert!(
            matches!(error, Error::SchemaTooNew { found: 99, supported: SCHEMA_VERSION, .. }),
            "{how}: {error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("newer"), "{how}: {message}");
        assert!(message.contains("99"), "{how}: {message}");
    }
    let p = path.to_str().unwrap();
    cli_refuses(&["info", p], "newer");
    cli_refuses(&["check", p], "newer");
    cli_refuses(&["ingest", p, V1.path().to_str().unwrap()], "newer");
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
    cli_refuses(&["ingest", p, V1.path().to_str().unwrap()], "not a stacdb catalog");
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
        cli_refuses(&["ingest", p, V1.path().to_str().unwrap()], "not a SQLite database");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), content, "{name} was changed");
    }
}

/// The documents in a shared data file (JSON, NDJSON, gzip allowed), at most `limit` of them.
fn fixture_docs(data: &Path, relative: &str, limit: usize) -> Vec<Doc> {
    let file = common::data_file(data, relative);
    common::read_documents(&file)
        .into_iter()
        .take(limit)
        .flat_map(|value| stacdb::document::documents(value, &stacdb::Location::file(relative)))
        .map(|doc| doc.expect("a valid document"))
        .collect()
}

/// Writes documents through the library's writer in one transaction, as `stacdb ingest
/// --create-collections` does: a collection that items name but that is not among the
/// documents is made from its items.
fn fixture_write(conn: &Connection, docs: Vec<Doc>, mode: Mode) {
    use stacdb::store::Writer;

    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut writer = Writer::new(conn).unwrap();
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
    for pending in writer.pending() {
        writer.create_collection_from_items(&pending.collection).unwrap();
    }
    assert!(writer.pending().is_empty());
    writer.finish().unwrap();
    conn.execute_batch("COMMIT").unwrap();
}

/// Deletes an item through the library's writer in one transaction, as `stacdb delete` does.
fn fixture_delete(conn: &Connection, collection: &str, id: &str) {
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut writer = stacdb::store::Writer::new(conn).unwrap();
    assert!(writer.delete_item(collection, id).unwrap(), "{collection}/{id} is not there");
    writer.finish().unwrap();
    conn.execute_batch("COMMIT").unwrap();
}

/// Vacuums the fixture being built and copies it into `fixtures/`.
fn fixture_save(conn: Connection, built: &Path, fixture: &Fixture) {
    conn.execute_batch("VACUUM").unwrap();
    drop(conn);
    assert!(!wal(built).exists());
    let out = fixture.path();
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::copy(built, &out).unwrap();
    eprintln!("wrote {} ({} bytes)", out.display(), std::fs::metadata(&out).unwrap().len());
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
    use stacdb::document;

    let data = common::data_dir("write_schema_v1_fixture").expect("the shared data is needed");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(V1.file);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();

    // Step 1, as db::migrate applied it.
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn.execute_batch(include_str!("../schema/001_initial.sql")).unwrap();
    conn.execute("INSERT INTO catalog (singleton, id) VALUES (1, ?1)", [V1.id]).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    // `stacdb init --title`.
    conn.execute("UPDATE catalog SET title = ?1", [V1.title]).unwrap();

    let pgstac = "fixtures/pgstac/src/pgstac/tests/testdata";
    let sqlalchemy = "fixtures/stac-fastapi-sqlalchemy/tests/data";
    // An ingest: two collections, six NAIP items, an item with null geometry and one whose
    // bbox crosses the antimeridian.
    let mut first = fixture_docs(&data, &format!("{pgstac}/collections.json"), 1);
    first.extend(fixture_docs(&data, &format!("{sqlalchemy}/test_collection.json"), 1));
    first.extend(fixture_docs(&data, &format!("{pgstac}/items.ndjson"), 6));
    for name in ["test_item", "test_item_geometry_null", "test_item_multipolygon"] {
        first.extend(fixture_docs(&data, &format!("{sqlalchemy}/{name}.json"), 1));
    }
    fixture_write(&conn, first, Mode::Insert);
    // An upsert that changes an item's title and a property.
    let mut changed = common::read_documents(&data.join(format!("{sqlalchemy}/test_item.json")));
    changed[0]["properties"]["title"] = "Updated at schema version 1".into();
    changed[0]["properties"]["platform"] = "landsat-8-upserted".into();
    let changed = document::documents(changed.remove(0), &stacdb::Location::file("upsert"))
        .into_iter()
        .map(|d| d.unwrap())
        .collect();
    fixture_write(&conn, changed, Mode::Upsert);
    // A delete.
    let sixth: Value = common::read_documents(&data.join(format!("{pgstac}/items.ndjson")))
        .into_iter()
        .nth(5)
        .unwrap();
    fixture_delete(&conn, "pgstac-test-collection", sixth["id"].as_str().unwrap());

    fixture_save(conn, &path, &V1);
}

/// Writes `fixtures/schema-v2.stacdb`. Run by hand (see fixtures/README.md):
///
/// ```text
/// cargo test --test migrations -- --ignored --exact write_schema_v2_fixture
/// ```
///
/// It does what stacdb did while its schema had two steps: applies `schema/001_initial.sql`
/// and `schema/002_geopackage.sql` and inserts the catalog row in one transaction that sets
/// `user_version = 2`, as `db::migrate` did for a new file, then writes real collections and
/// items through the library's writer in later transactions (an ingest that also makes a
/// collection from its items, an upsert, a delete). The file has 1 KiB pages: each of its 26
/// tables and indexes takes at least one page, so with stacdb's 16 KiB pages the same content
/// takes 475 KB and with 1 KiB pages under 60 KB (the page size plays no part in an upgrade). Finally it switches to
/// `journal_mode=DELETE` and vacuums, so the fixture is one small self-contained file.
#[test]
#[ignore = "writes fixtures/schema-v2.stacdb; run it by hand when the fixture must be rebuilt"]
fn write_schema_v2_fixture() {
    let data = common::data_dir("write_schema_v2_fixture").expect("the shared data is needed");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(V2.file);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "page_size", 1024).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();

    // Steps 1 and 2, as db::migrate applied them to a new file.
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn.execute_batch(include_str!("../schema/001_initial.sql")).unwrap();
    conn.execute_batch(include_str!("../schema/002_geopackage.sql")).unwrap();
    conn.execute("INSERT INTO catalog (singleton, id) VALUES (1, ?1)", [V2.id]).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    // `stacdb init --title --description`.
    conn.execute(
        "UPDATE catalog SET title = ?1, description = ?2",
        [V2.title, V2.description.unwrap()],
    )
    .unwrap();

    let spec = "fixtures/stac-spec/v1.1.0-beta.1/examples";
    let mosaics = "bench/rustac/sentinel-1-global-mosaics.ndjson.gz";
    // An ingest: the spec's example collection and its simple item (an instant), and three
    // Sentinel-1 monthly mosaics (datetime with a month-long start/end range) whose collection
    // document is not in the data, so it is made from the items (`--create-collections`).
    let mut first = fixture_docs(&data, &format!("{spec}/collection.json"), 1);
    first.extend(fixture_docs(&data, &format!("{spec}/simple-item.json"), 1));
    first.extend(fixture_docs(&data, mosaics, 3));
    fixture_write(&conn, first, Mode::Insert);
    // An upsert: the spec's core item has the same id as the simple item, a title, and a
    // start/end range instead of a datetime.
    fixture_write(&conn, fixture_docs(&data, &format!("{spec}/core-item.json"), 1), Mode::Upsert);
    // A delete: the second mosaic.
    let second: Value = common::read_documents(&data.join(mosaics)).into_iter().nth(1).unwrap();
    fixture_delete(&conn, "sentinel-1-global-mosaics", second["id"].as_str().unwrap());

    fixture_save(conn, &path, &V2);
}

/// Writes `fixtures/schema-v3.stacdb`. Run by hand (see fixtures/README.md):
///
/// ```text
/// cargo test --test migrations -- --ignored --exact write_schema_v3_fixture
/// ```
///
/// It does what stacdb did while its schema had three steps: applies `schema/001_initial.sql`,
/// `002_geopackage.sql` and `003_search.sql`, inserts the catalog row and gives it a token
/// secret in one transaction that sets `user_version = 3`, as `db::migrate` did for a new file;
/// then writes real collections and items through the library's writer in later transactions
/// (an ingest, an upsert, a delete). 1 KiB pages, `journal_mode=DELETE` and a final `VACUUM`,
/// as for v2.
#[test]
#[ignore = "writes fixtures/schema-v3.stacdb; run it by hand when the fixture must be rebuilt"]
fn write_schema_v3_fixture() {
    let data = common::data_dir("write_schema_v3_fixture").expect("the shared data is needed");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(V3.file);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "page_size", 1024).unwrap();
    conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();

    // Steps 1 to 3, as db::migrate applied them to a new file.
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn.execute_batch(include_str!("../schema/001_initial.sql")).unwrap();
    conn.execute_batch(include_str!("../schema/002_geopackage.sql")).unwrap();
    conn.execute_batch(include_str!("../schema/003_search.sql")).unwrap();
    conn.execute("INSERT INTO catalog (singleton, id) VALUES (1, ?1)", [V3.id]).unwrap();
    let secret = stacdb::search::token::generate_secret().unwrap();
    conn.execute("UPDATE catalog SET token_secret = ?1", [&secret[..]]).unwrap();
    conn.pragma_update(None, "user_version", 3).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    // `stacdb init --title --description`.
    conn.execute(
        "UPDATE catalog SET title = ?1, description = ?2",
        [V3.title, V3.description.unwrap()],
    )
    .unwrap();

    let landsat =
        "fixtures/stac-validator/tests/test_data/local_cat/example-catalog/eo/landsat-8-l1";
    let landsat_item = format!(
        "{landsat}/LC08_L1GT_120046_20181012_20181012_01_RT/LC08_L1GT_120046_20181012_20181012_01_RT.json"
    );
    let ohc = "fixtures/stactools-noaa-cdr/examples/noaa-cdr-ocean-heat-content";
    let ohc_item = |name: &str| format!("{ohc}/{name}/{name}.json");
    // An ingest: a Landsat 8 collection and item (STAC 1.0.0-beta.2, with eo:cloud_cover, so
    // step 3's typed column has a value) and the NOAA CDR ocean heat content collection with
    // three of its items (start/end ranges of months and years).
    let mut first = fixture_docs(&data, &format!("{landsat}/collection.json"), 1);
    first.extend(fixture_docs(&data, &landsat_item, 1));
    first.extend(fixture_docs(&data, &format!("{ohc}/collection.json"), 1));
    for name in [
        "ocean-heat-content-1972-03-700m",
        "ocean-heat-content-1972-03-2000m",
        "ocean-heat-content-2017-2021-100m",
    ] {
        first.extend(fixture_docs(&data, &ohc_item(name), 1));
    }
    fixture_write(&conn, first, Mode::Insert);
    // An upsert: the Landsat item with another cloud cover and a title.
    let mut changed = common::read_documents(&data.join(&landsat_item));
    changed[0]["properties"]["eo:cloud_cover"] = 12.5.into();
    changed[0]["properties"]["title"] = "Updated at schema version 3".into();
    let changed = stacdb::document::documents(changed.remove(0), &stacdb::Location::file("upsert"))
        .into_iter()
        .map(|d| d.unwrap())
        .collect();
    fixture_write(&conn, changed, Mode::Upsert);
    // A delete.
    fixture_delete(&conn, "noaa-cdr-ocean-heat-content", "ocean-heat-content-1972-03-700m");

    fixture_save(conn, &path, &V3);
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
