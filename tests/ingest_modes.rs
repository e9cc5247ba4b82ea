//! Ingest modes and inputs: insert / upsert / ignore, strict rollback, --skip-invalid, stdin,
//! gzip, directories, mixed NDJSON, --create-collections, --collection, catalogs as input, the
//! summary and --json output, delete, get, and learned queryables.
//!
//! Small hand-written documents live in fixtures/ingest/; real data is read from the shared
//! data folder.

mod common;
mod ingest_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use ingest_support::*;
use serde_json::{Value, json};
use stacdb::document::JsonType;
use stacdb::{DocErrorKind, Mode};

fn doc(relative: &str) -> Value {
    let mut docs = file_documents(&fixture(relative));
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// A catalog holding collection fx-a with items a1, a2, a3.
fn catalog_a() -> TempCatalog {
    let mut t = temp_catalog();
    let report = ingest(
        &mut t.catalog,
        &[fixture("collection-a.json"), fixture("items")],
        &options(Mode::Insert, false, None),
    )
    .unwrap();
    assert_eq!((report.items.inserted, report.collections.inserted), (3, 1));
    t
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn info_json(path: &Path) -> Value {
    serde_json::from_str(&common::stacdb_ok(["info", &path_str(path), "--json"])).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Modes

#[test]
fn insert_mode_rejects_a_stored_item_and_changes_nothing() {
    let mut t = catalog_a();
    let before = snapshot(&t.catalog);
    let err = doc_error(ingest(
        &mut t.catalog,
        &[fixture("batch.ndjson"), fixture("a1-v2.json")],
        &options(Mode::Insert, false, None),
    ));
    assert_eq!(err.id.as_deref(), Some("a1"));
    assert!(err.location.source.ends_with("a1-v2.json"), "{err}");
    assert!(
        matches!(&err.reason, DocErrorKind::Duplicate { kind: "item", collection: Some(c), id }
            if c == "fx-a" && id == "a1"),
        "{err}"
    );
    assert!(err.to_string().contains("--mode upsert"), "{err}");
    assert_eq!(snapshot(&t.catalog), before, "the batch before the duplicate is rolled back too");
    assert_same_json(&t.catalog.item("fx-a", "a1").unwrap(), &doc("items/a1.json"), "a1");

    // A duplicate within one run is just as much an error.
    let mut t = temp_catalog();
    let err = doc_error(ingest(
        &mut t.catalog,
        &[fixture("collection-a.json"), fixture("items/a1.json"), fixture("a1-v2.json")],
        &options(Mode::Insert, false, None),
    ));
    assert_eq!(err.id.as_deref(), Some("a1"));
    assert!(stored_keys(&t.catalog).is_empty() && stored_collections(&t.catalog).is_empty());

    // A stored collection too.
    let mut t = catalog_a();
    let before = snapshot(&t.catalog);
    let err = doc_error(ingest(
        &mut t.catalog,
        &[fixture("collection-a-v2.json")],
        &options(Mode::Insert, false, None),
    ));
    assert!(matches!(err.reason, DocErrorKind::Duplicate { kind: "collection", .. }), "{err}");
    assert_eq!(snapshot(&t.catalog), before);
}

#[test]
fn upsert_mode_replaces_and_logs_an_update() {
    let mut t = catalog_a();
    let last = t.catalog.info().unwrap().last_change;
    let report =
        ingest(&mut t.catalog, &[fixture("a1-v2.json")], &options(Mode::Upsert, false, None))
            .unwrap();
    assert_eq!(report.items, stacdb::Counts { inserted: 0, updated: 1, skipped: 0 });
    let v2 = doc("a1-v2.json");
    assert_same_json(&t.catalog.item("fx-a", "a1").unwrap(), &v2, "a1 replaced");
    let changes = t.catalog.changes(last, 100).unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].op.as_str(), changes[0].kind.as_str(), changes[0].item_id.as_deref()),
        ("update", "item", Some("a1"))
    );
    // a1 was the south-west and earliest item: the extent shrinks to the others and v2.
    let a2 = doc("items/a2.json");
    let a3 = doc("items/a3.json");
    assert_current_extent(&t.catalog, "fx-a", &[&v2, &a2, &a3]);
    let row = item_row(&t.catalog, "fx-a", "a1");
    assert_eq!(row.bbox, [Some(2.0), Some(2.0), Some(3.0), Some(3.0)]);
    assert_rtree_box(rtree_box(&t.catalog, row.fid).unwrap(), [2.0, 2.0, 3.0, 3.0], "a1 v2");
    assert_eq!(t.catalog.info().unwrap().item_count, 3);
    // The FTS index follows the new title.
    let hits: i64 = t
        .catalog
        .connection()
        .query_row("SELECT count(*) FROM items_fts WHERE items_fts MATCH 'reprocessed'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(hits, 1);

    // A collection: replaced, logged as an update, items untouched.
    let report = ingest(
        &mut t.catalog,
        &[fixture("collection-a-v2.json")],
        &options(Mode::Upsert, false, None),
    )
    .unwrap();
    assert_eq!(report.collections.updated, 1);
    assert_same_json(
        &t.catalog.collection_document("fx-a").unwrap(),
        &doc("collection-a-v2.json"),
        "fx-a v2",
    );
    let last_change = t.catalog.changes(0, 1000).unwrap().pop().unwrap();
    assert_eq!((last_change.op.as_str(), last_change.kind.as_str()), ("update", "collection"));
    assert_eq!(t.catalog.info().unwrap().item_count, 3);
    assert_check_ok(&t.catalog, "upsert");
}

#[test]
fn ignore_mode_keeps_the_stored_documents() {
    let mut t = catalog_a();
    let before = snapshot(&t.catalog);
    let report = ingest(
        &mut t.catalog,
        &[fixture("collection-a-v2.json"), fixture("a1-v2.json"), fixture("batch.ndjson")],
        &options(Mode::Ignore, false, None),
    )
    .unwrap();
    assert_eq!(report.items, stacdb::Counts { inserted: 3, updated: 0, skipped: 1 });
    assert_eq!(report.collections, stacdb::Counts { inserted: 0, updated: 0, skipped: 1 });
    assert_same_json(&t.catalog.item("fx-a", "a1").unwrap(), &doc("items/a1.json"), "a1 kept");
    assert_same_json(
        &t.catalog.collection_document("fx-a").unwrap(),
        &doc("collection-a.json"),
        "fx-a kept",
    );
    let after = snapshot(&t.catalog);
    assert_eq!(after.changes, before.changes + 3, "only the 3 new items are logged");
    assert_eq!(after.items.len(), 6);
    assert_check_ok(&t.catalog, "ignore");
}

// ---------------------------------------------------------------------------------------------
// Strict and --skip-invalid

#[test]
fn strict_mode_rolls_back_the_whole_run() {
    let mut t = catalog_a();
    let before = snapshot(&t.catalog);
    let info_before = t.catalog.info().unwrap();
    let err = doc_error(ingest(
        &mut t.catalog,
        &[fixture("batch.ndjson"), fixture("batch-with-invalid.ndjson")],
        &options(Mode::Insert, false, None),
    ));
    // The first invalid document: line 2, 'c2', its datetime.
    assert!(err.location.source.ends_with("batch-with-invalid.ndjson"), "{err}");
    assert_eq!(err.location.line, Some(2));
    assert_eq!(err.id.as_deref(), Some("c2"));
    assert!(
        matches!(&err.reason, DocErrorKind::InvalidField { field, .. } if field == "properties.datetime")
    );
    let message = err.to_string();
    assert!(message.contains("batch-with-invalid.ndjson:2: 'c2': "), "{message}");
    assert!(message.contains("'yesterday'"), "{message}");
    assert_eq!(snapshot(&t.catalog), before, "b1..b3 and c1 were rolled back");
    let info_after = t.catalog.info().unwrap();
    assert_eq!(info_after.item_count, info_before.item_count);
    assert_eq!(info_after.last_change, info_before.last_change);
    assert_eq!(info_after.collections[0].bbox, info_before.collections[0].bbox);
    assert!(
        t.catalog.queryables("fx-a").unwrap().get("eo:cloud_cover").unwrap().maximum == Some(30.5)
    );

    // Through the CLI: exit 1 and the message on stderr.
    let out = common::stacdb([
        "ingest",
        &path_str(&t.path),
        &path_str(&fixture("batch.ndjson")),
        &path_str(&fixture("batch-with-invalid.ndjson")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("batch-with-invalid.ndjson:2: 'c2'"), "{}", stderr_of(&out));
    assert!(out.stdout.is_empty());
    assert_eq!(snapshot(&t.catalog), before);
    assert_check_ok(&t.catalog, "strict");
}

#[test]
fn skip_invalid_reports_each_rejection_and_stores_the_rest() {
    let t = catalog_a();
    let path = path_str(&t.path);
    let out = common::stacdb([
        "ingest",
        &path,
        &path_str(&fixture("batch-with-invalid.ndjson")),
        "--skip-invalid",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    let skipped: Vec<&str> =
        stderr.lines().filter(|l| l.starts_with("stacdb: skipped: ")).collect();
    assert_eq!(skipped.len(), 2, "{stderr}");
    assert!(skipped[0].contains("batch-with-invalid.ndjson:2: 'c2': field `properties.datetime`"));
    assert!(skipped[1].contains("batch-with-invalid.ndjson:4: invalid JSON"), "{}", skipped[1]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("items: 3 inserted, 0 updated, 0 skipped, 2 failed;"), "{stdout}");
    let catalog = stacdb::Catalog::open(&t.path).unwrap();
    let ids: Vec<String> = stored_keys(&catalog).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids, ["a1", "a2", "a3", "c1", "c3", "c5"]);
    assert_check_ok(&catalog, "skip-invalid");

    // The library report.
    let mut t = temp_catalog();
    let mut opts = options(Mode::Insert, false, None);
    opts.skip_invalid = true;
    let report = ingest(
        &mut t.catalog,
        &[fixture("collection-a.json"), fixture("batch-with-invalid.ndjson")],
        &opts,
    )
    .unwrap();
    assert_eq!((report.items.inserted, report.failed), (3, 2));
    let lines: Vec<Option<u64>> = report.errors.iter().map(|e| e.location.line).collect();
    assert_eq!(lines, [Some(2), Some(4)]);
    assert!(matches!(report.errors[1].reason, DocErrorKind::InvalidJson(_)));

    // Nothing invalid: exit 0 even with --skip-invalid.
    let out =
        common::stacdb(["ingest", &path, &path_str(&fixture("batch.ndjson")), "--skip-invalid"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
}

// ---------------------------------------------------------------------------------------------
// Inputs

#[test]
fn stdin_input_is_read_with_dash() {
    let t = temp_catalog();
    drop(t.catalog);
    let collection = serde_json::to_string(&doc("collection-a.json")).unwrap();
    let mut input = format!("{collection}\n").into_bytes();
    input.extend(std::fs::read(fixture("batch.ndjson")).unwrap());
    let run = |bytes: &[u8], extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stacdb"))
            .args(["ingest", &path_str(&t.path), "-"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(&input, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let catalog = stacdb::Catalog::open(&t.path).unwrap();
    assert_eq!(
        stored_keys(&catalog).into_iter().map(|(_, id)| id).collect::<Vec<_>>(),
        ["b1", "b2", "b3"]
    );
    assert_same_json(&catalog.collection_document("fx-a").unwrap(), &doc("collection-a.json"), "");
    drop(catalog);

    // Errors name <stdin> and the line; gzip on stdin is recognised too.
    let bad = std::fs::read(fixture("batch-with-invalid.ndjson")).unwrap();
    let out = run(&gzip(&bad), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("<stdin>:2: 'c2'"), "{}", stderr_of(&out));
    let out = run(&gzip(&bad), &["--skip-invalid", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["items"]["inserted"], 3);
    assert_eq!(
        report["errors"][1].as_str().unwrap().split(':').take(2).collect::<Vec<_>>(),
        ["<stdin>", "4"]
    );
}

#[test]
fn gzip_files_are_recognised_by_their_bytes() {
    let mut t = temp_catalog();
    let dir = t.dir.path().to_path_buf();
    // A pretty-printed collection, gzipped, and an NDJSON batch, gzipped without a .gz name.
    std::fs::write(
        dir.join("collection.json.gz"),
        gzip(&std::fs::read(fixture("collection-a.json")).unwrap()),
    )
    .unwrap();
    std::fs::write(
        dir.join("batch.ndjson"),
        gzip(&std::fs::read(fixture("batch.ndjson")).unwrap()),
    )
    .unwrap();
    let report = ingest(
        &mut t.catalog,
        &[dir.join("collection.json.gz"), dir.join("batch.ndjson")],
        &options(Mode::Insert, false, None),
    )
    .unwrap();
    assert_eq!((report.collections.inserted, report.items.inserted), (1, 3));
    for item in file_documents(&fixture("batch.ndjson")) {
        assert_same_json(&t.catalog.item("fx-a", id_of(&item)).unwrap(), &item, "gzip");
    }
    // Line numbers inside a gzipped file are those of the uncompressed text.
    let bad = dir.join("bad.ndjson.gz");
    std::fs::write(&bad, gzip(&std::fs::read(fixture("batch-with-invalid.ndjson")).unwrap()))
        .unwrap();
    let err = doc_error(ingest(&mut t.catalog, &[&bad], &options(Mode::Insert, false, None)));
    assert_eq!(err.location.line, Some(2));
    assert!(err.to_string().contains("bad.ndjson.gz:2"), "{err}");
    assert_check_ok(&t.catalog, "gzip");
}

#[test]
fn directories_are_walked_recursively() {
    let mut t = temp_catalog();
    let root = t.dir.path().join("tree");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    let copy = |from: &str, to: &str| std::fs::copy(fixture(from), root.join(to)).unwrap();
    copy("catalog.json", "catalog.json"); // passed over
    copy("collection-a.json", "collection.json");
    copy("items/a1.json", "sub/a1.geojson");
    copy("items/a2.json", "sub/deeper/a2.JSON");
    copy("batch.ndjson", "sub/deeper/batch.jsonl");
    copy("mixed.ndjson", "sub/mixed.ndjson");
    std::fs::write(
        root.join("sub/a3.json.gz"),
        gzip(&std::fs::read(fixture("items/a3.json")).unwrap()),
    )
    .unwrap();
    // Not picked up: other extensions (their content would be rejected).
    std::fs::write(root.join("README.md"), "# not STAC").unwrap();
    std::fs::write(root.join("sub/notes.txt"), "{ not json").unwrap();
    std::fs::write(root.join("sub/deeper/items.parquet"), b"PAR1").unwrap();

    let report = ingest(&mut t.catalog, &[&root], &options(Mode::Insert, false, None)).unwrap();
    assert_eq!(report.files, 7);
    assert_eq!(report.catalogs_passed_over, 1);
    assert_eq!(report.items.inserted, 3 + 3 + 3);
    assert_eq!(report.collections.inserted, 3);
    let ids: Vec<String> = stored_keys(&t.catalog).into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids, ["a1", "a2", "a3", "b1", "b2", "b3", "m1", "m2", "n1"]);
    assert!(t.catalog.collection_document("fx-root").is_err(), "a catalog is not a collection");
    assert_check_ok(&t.catalog, "directory");

    // The CLI notes the catalog it passed over.
    let t2 = temp_catalog();
    drop(t2.catalog);
    let out = common::stacdb(["ingest", &path_str(&t2.path), &path_str(&root)]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("passed over catalog 'fx-root'"), "{}", stderr_of(&out));
}

#[test]
fn mixed_ndjson_with_collections_after_their_items() {
    let mut t = temp_catalog();
    let report =
        ingest(&mut t.catalog, &[fixture("mixed.ndjson")], &options(Mode::Insert, false, None))
            .unwrap();
    assert_eq!((report.items.inserted, report.collections.inserted), (3, 2));
    assert_eq!(report.collections_created, 0);
    let docs = file_documents(&fixture("mixed.ndjson"));
    for d in &docs {
        if is_item(d) {
            let stored = t.catalog.item(d["collection"].as_str().unwrap(), id_of(d)).unwrap();
            assert_same_json(&stored, d, id_of(d));
        } else {
            assert_same_json(&t.catalog.collection_document(id_of(d)).unwrap(), d, id_of(d));
        }
    }
    assert_current_extent(&t.catalog, "fx-m", &[&docs[0], &docs[3]]);
    assert_current_extent(&t.catalog, "fx-n", &[&docs[2]]);
    let kinds: Vec<(String, String)> =
        t.catalog.changes(0, 100).unwrap().into_iter().map(|c| (c.op, c.kind)).collect();
    assert_eq!(kinds.iter().filter(|(op, k)| op == "insert" && k == "collection").count(), 2);
    assert_check_ok(&t.catalog, "mixed");

    // A collection that never arrives is an error naming it and how many items wait for it.
    let before = snapshot(&t.catalog);
    let err = doc_error(ingest(
        &mut t.catalog,
        &[fixture("batch.ndjson"), fixture("orphans.ndjson")],
        &options(Mode::Insert, false, None),
    ));
    // batch.ndjson names fx-a, which is not in this catalog either: its first item is named.
    assert!(
        matches!(&err.reason, DocErrorKind::UnknownCollection { collection, items: 3 } if collection == "fx-a"),
        "{err}"
    );
    assert!(err.to_string().contains("--create-collections"), "{err}");
    assert_eq!(err.location.line, Some(1));
    assert_eq!(snapshot(&t.catalog), before);
}

#[test]
fn create_collections_builds_missing_collections_from_their_items() {
    let t = temp_catalog();
    drop(t.catalog);
    let path = path_str(&t.path);
    let out = common::stacdb(["ingest", &path, &path_str(&fixture("orphans.ndjson"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("collection 'fx-orphan' is not in the catalog"));

    let stdout = common::stacdb_ok([
        "ingest",
        &path,
        &path_str(&fixture("orphans.ndjson")),
        "--create-collections",
    ]);
    assert!(stdout.contains(", 1 created from items;"), "{stdout}");
    let catalog = stacdb::Catalog::open(&t.path).unwrap();
    let created = catalog.collection_document("fx-orphan").unwrap();
    assert_eq!(created["type"], "Collection");
    assert_eq!(created["id"], "fx-orphan");
    assert_eq!(created["extent"]["spatial"]["bbox"], json!([[-5.0, -5.0, -2.0, -2.0]]));
    assert_eq!(
        created["extent"]["temporal"]["interval"],
        json!([["2019-01-01T00:00:00Z", "2019-02-01T12:30:00Z"]])
    );
    let orphans = file_documents(&fixture("orphans.ndjson"));
    assert_current_extent(&catalog, "fx-orphan", &orphans.iter().collect::<Vec<_>>());
    assert_check_ok(&catalog, "create-collections");
}

#[test]
fn collection_option_places_collectionless_items() {
    let mut t = temp_catalog();
    let file = fixture("collectionless.ndjson");
    let err = doc_error(ingest(
        &mut t.catalog,
        &[fixture("collection-a.json"), file.clone()],
        &options(Mode::Insert, false, None),
    ));
    assert!(matches!(err.reason, DocErrorKind::NoCollection), "{err}");
    assert_eq!((err.location.line, err.id.as_deref()), (Some(1), Some("l1")));
    assert!(err.to_string().contains("--collection"), "{err}");

    let err = doc_error(ingest(
        &mut t.catalog,
        &[fixture("collection-a.json"), file.clone()],
        &options(Mode::Insert, false, Some("fx-l")),
    ));
    assert!(
        matches!(&err.reason, DocErrorKind::UnknownCollection { collection, items: 2 } if collection == "fx-l"),
        "{err}"
    );
    assert!(stored_keys(&t.catalog).is_empty());

    let report = ingest(
        &mut t.catalog,
        &[fixture("collection-a.json"), file.clone()],
        &options(Mode::Insert, true, Some("fx-l")),
    )
    .unwrap();
    assert_eq!((report.items.inserted, report.collections_created), (3, 1));
    assert_eq!(
        stored_keys(&t.catalog),
        [
            ("fx-a".to_string(), "l3".to_string()),
            ("fx-l".to_string(), "l1".to_string()),
            ("fx-l".to_string(), "l2".to_string()),
        ]
    );
    // The stored document is as given: no `collection` member is added.
    let l1 = t.catalog.item("fx-l", "l1").unwrap();
    assert!(l1.get("collection").is_none());
    assert_same_json(&l1, &file_documents(&file)[0], "l1");
    assert_check_ok(&t.catalog, "--collection");
}

/// A Catalog file given as an input is crawled (tests/import.rs); one that cannot be crawled,
/// because it comes inside a larger document or from standard input (its links would have
/// nothing to be relative to), is an error.
#[test]
fn a_catalog_that_cannot_be_crawled_is_an_error() {
    let mut t = catalog_a();
    let before = snapshot(&t.catalog);
    let dir = tempfile::tempdir().unwrap();
    let array = dir.path().join("catalogs.json");
    std::fs::write(
        &array,
        format!("[{}]", std::fs::read_to_string(fixture("catalog.json")).unwrap()),
    )
    .unwrap();
    let err = doc_error(ingest(
        &mut t.catalog,
        &[fixture("batch.ndjson"), array],
        &options(Mode::Insert, false, None),
    ));
    assert!(matches!(err.reason, DocErrorKind::CatalogNotSupported), "{err}");
    assert_eq!(err.id.as_deref(), Some("fx-root"));
    assert_eq!(err.location.pointer.as_deref(), Some("/0"));
    assert_eq!(snapshot(&t.catalog), before);

    let mut child = Command::new(env!("CARGO_BIN_EXE_stacdb"))
        .args(["ingest", &path_str(&t.path), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(fixture("catalog.json")).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    assert!(stderr.contains("<stdin>: 'fx-root': this is a STAC Catalog"), "{stderr}");
    assert_eq!(snapshot(&t.catalog), before);

    // The same catalog as a file of its own is a root to crawl; it has no links.
    let report = ingest(
        &mut t.catalog,
        &[fixture("batch.ndjson"), fixture("catalog.json")],
        &options(Mode::Insert, false, None),
    )
    .unwrap();
    assert_eq!(report.crawl.roots, 1);
    assert_eq!(report.items.inserted, 3);
}

// ---------------------------------------------------------------------------------------------
// Output

#[test]
fn summary_line_and_json_report() {
    let t = temp_catalog();
    drop(t.catalog);
    let path = path_str(&t.path);
    let files = [fixture("collection-a.json"), fixture("batch.ndjson")];
    let stdout = common::stacdb_ok(["ingest", &path, &path_str(&files[0]), &path_str(&files[1])]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let prefix = "items: 3 inserted, 0 updated, 0 skipped, 0 failed; \
                  collections: 1 inserted, 0 updated, 0 skipped; ";
    assert!(lines[0].starts_with(prefix), "{stdout}");
    let rest: Vec<&str> = lines[0][prefix.len()..].split(", ").collect();
    assert_eq!(rest.len(), 3, "{stdout}");
    assert!(rest[0].ends_with(" s") && rest[1].ends_with(" items/s") && rest[2].ends_with(" MB/s"));
    assert!(rest[0].trim_end_matches(" s").parse::<f64>().is_ok(), "{stdout}");

    let stdout = common::stacdb_ok([
        "ingest",
        &path,
        &path_str(&files[0]),
        &path_str(&files[1]),
        "--json",
        "--mode",
        "upsert",
    ]);
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["items"], json!({"inserted": 0, "updated": 3, "skipped": 0}));
    assert_eq!(report["collections"], json!({"inserted": 0, "updated": 1, "skipped": 0}));
    assert_eq!(report["collections_created"], 0);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["catalogs_passed_over"], 0);
    assert_eq!(report["files"], 2);
    let bytes: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert_eq!(report["bytes"], bytes);
    assert!(report["elapsed"].as_f64().unwrap() >= 0.0);
    assert_eq!(report["errors"], json!([]));

    let out = common::stacdb([
        "ingest",
        &path,
        &path_str(&fixture("batch-with-invalid.ndjson")),
        "--json",
        "--skip-invalid",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors: Vec<&str> =
        report["errors"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
    assert_eq!(errors.len(), 2);
    assert!(errors[0].contains("batch-with-invalid.ndjson:2: 'c2'"), "{errors:?}");
    assert_eq!(report["failed"], 2);
}

// ---------------------------------------------------------------------------------------------
// Delete and get

#[test]
fn delete_items_and_collections_shrinks_extents() {
    let t = catalog_a();
    let path = path_str(&t.path);
    drop(t.catalog);
    let info = info_json(&t.path);
    assert_eq!(info["item_count"], 3);
    let fx_a = &info["collections"][0];
    assert_eq!(fx_a["bbox"], json!([0.0, 0.0, 10.0, 10.0]));
    assert_eq!(
        (fx_a["start"].as_str(), fx_a["end"].as_str()),
        (Some("2020-01-01T00:00:00Z"), Some("2021-01-01T00:00:00Z"))
    );

    // a3 holds the north-east corner and the latest time.
    let out = common::stacdb_ok(["delete", &path, "fx-a", "a3"]);
    assert_eq!(out.trim(), "deleted 1 item(s) from 'fx-a'");
    let info = info_json(&t.path);
    assert_eq!(info["item_count"], 2);
    let fx_a = &info["collections"][0];
    assert_eq!(fx_a["item_count"], 2);
    assert_eq!(fx_a["bbox"], json!([0.0, 0.0, 6.0, 6.0]));
    assert_eq!(fx_a["end"], "2020-06-01T00:00:00Z");
    let catalog = stacdb::Catalog::open(&t.path).unwrap();
    let last = catalog.changes(0, 100).unwrap().pop().unwrap();
    assert_eq!((last.op.as_str(), last.item_id.as_deref()), ("delete", Some("a3")));
    let rtree: i64 = catalog
        .connection()
        .query_row("SELECT count(*) FROM rtree_items_geometry", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rtree, 2);
    assert_check_ok(&catalog, "after delete");
    drop(catalog);

    // An unknown id fails the whole command: a1 is still there.
    let out = common::stacdb(["delete", &path, "fx-a", "a1", "zz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("no item 'zz' in collection 'fx-a'"), "{}", stderr_of(&out));
    assert_eq!(info_json(&t.path)["item_count"], 2);
    let out = common::stacdb_ok(["delete", &path, "fx-a", "a1", "zz", "--missing-ok"]);
    assert_eq!(out.trim(), "deleted 1 item(s) from 'fx-a'");
    let fx_a = &info_json(&t.path)["collections"][0];
    assert_eq!(fx_a["bbox"], json!([5.0, 5.0, 6.0, 6.0]));
    assert_eq!(
        (fx_a["start"].as_str(), fx_a["end"].as_str()),
        (Some("2020-06-01T00:00:00Z"), Some("2020-06-01T00:00:00Z"))
    );

    // --all: the collection and its last item.
    let out = common::stacdb_ok(["delete", &path, "fx-a", "--all"]);
    assert_eq!(out.trim(), "deleted collection 'fx-a' and its 1 item(s)");
    let info = info_json(&t.path);
    assert_eq!(
        (info["item_count"].as_i64(), info["collections"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
    let out = common::stacdb(["get", &path, "fx-a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("no collection 'fx-a'"));
    let out = common::stacdb(["delete", &path, "fx-a", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert_check_ok(&stacdb::Catalog::open(&t.path).unwrap(), "after delete --all");
}

#[test]
fn delete_on_real_data_recomputes_the_extent() {
    let Some(data) = common::data_dir("delete_on_real_data") else { return };
    let dir = "fixtures/stac-fastapi-pgstac/testdata/joplin";
    let items_file = common::data_file(&data, &format!("{dir}/index.geojson"));
    let mut t = temp_catalog();
    ingest(
        &mut t.catalog,
        &[common::data_file(&data, &format!("{dir}/collection.json")), items_file.clone()],
        &options(Mode::Insert, false, None),
    )
    .unwrap();
    let mut items = file_documents(&items_file);
    // Delete the westernmost and the easternmost items.
    items.sort_by(|a, b| item_bbox(a).unwrap()[0].total_cmp(&item_bbox(b).unwrap()[0]));
    let west = items.remove(0);
    items.sort_by(|a, b| item_bbox(a).unwrap()[2].total_cmp(&item_bbox(b).unwrap()[2]));
    let east = items.pop().unwrap();
    let before = t.catalog.info().unwrap().collections[0].bbox.unwrap();
    drop(t.catalog);
    common::stacdb_ok(["delete", &path_str(&t.path), "joplin", id_of(&west), id_of(&east)]);
    let catalog = stacdb::Catalog::open(&t.path).unwrap();
    let after = catalog.info().unwrap().collections[0].bbox.unwrap();
    let union = union_of(items.iter()).unwrap();
    assert_eq!(after, union.bbox.unwrap());
    // The west edge was that item's alone; several items share the east edge.
    assert!(after[0] > before[0], "{before:?} -> {after:?}");
    assert_current_extent(&catalog, "joplin", &items.iter().collect::<Vec<_>>());
    assert_check_ok(&catalog, "joplin delete");
}

#[test]
fn get_prints_documents_and_fails_clearly_on_unknown_ids() {
    let t = catalog_a();
    drop(t.catalog);
    let path = path_str(&t.path);
    let item: Value =
        serde_json::from_str(&common::stacdb_ok(["get", &path, "fx-a", "a2"])).unwrap();
    assert_same_json(&item, &doc("items/a2.json"), "get a2");
    let current: Value = serde_json::from_str(&common::stacdb_ok(["get", &path, "fx-a"])).unwrap();
    assert_eq!(current["extent"]["spatial"]["bbox"][0], json!([0.0, 0.0, 10.0, 10.0]));
    assert_eq!(
        current["extent"]["temporal"]["interval"][0],
        json!(["2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"])
    );
    let as_ingested: Value =
        serde_json::from_str(&common::stacdb_ok(["get", &path, "fx-a", "--as-ingested"])).unwrap();
    assert_same_json(&as_ingested, &doc("collection-a.json"), "get --as-ingested");

    for (args, message) in [
        (vec!["get", &path, "nope"], "no collection 'nope' in the catalog"),
        (vec!["get", &path, "nope", "a1"], "no collection 'nope' in the catalog"),
        (vec!["get", &path, "fx-a", "nope"], "no item 'nope' in collection 'fx-a'"),
    ] {
        let out = common::stacdb(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(stderr_of(&out).contains(message), "{args:?}: {}", stderr_of(&out));
    }
    let out = common::stacdb(["get", &path_str(&t.dir.path().join("missing.stacdb")), "fx-a"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_of(&out).contains("no such catalog file"), "{}", stderr_of(&out));
}

// ---------------------------------------------------------------------------------------------
// Queryables

#[test]
fn queryables_are_learned_from_items() {
    // Fixtures first: integer and fractional cloud cover.
    let t = catalog_a();
    let q = t.catalog.queryables("fx-a").unwrap();
    let cloud = &q["eo:cloud_cover"];
    assert_eq!(
        cloud.types.iter().copied().collect::<Vec<_>>(),
        [JsonType::Integer, JsonType::Number]
    );
    assert_eq!((cloud.minimum, cloud.maximum), (Some(10.0), Some(30.5)));
    let platform = &q["platform"];
    assert_eq!(
        platform.values.as_ref().unwrap().iter().cloned().collect::<Vec<_>>(),
        ["\"sat-1\"", "\"sat-2\""]
    );

    let Some(data) = common::data_dir("queryables_naip") else { return };
    let collection = common::data_file(&data, "bench/pgstac/pc-naip.collection.json");
    let alabama = common::data_file(&data, "bench/pgstac/pc-naip-1000.items.ndjson.gz");
    let west = common::data_file(&data, "bench/stac-fastapi-geoparquet/naip.ndjson.gz");
    let mut t = temp_catalog();
    // Two runs, so the second merges with what the first stored.
    ingest(&mut t.catalog, &[&collection, &alabama], &options(Mode::Insert, false, None)).unwrap();
    ingest(&mut t.catalog, &[&west], &options(Mode::Insert, false, None)).unwrap();

    let items: Vec<Value> = [&alabama, &west].iter().flat_map(|f| file_documents(f)).collect();
    assert_eq!(items.len(), 11_000);
    let gsd: Vec<f64> = items.iter().map(|i| i["properties"]["gsd"].as_f64().unwrap()).collect();
    let states: std::collections::BTreeSet<String> =
        items.iter().map(|i| i["properties"]["naip:state"].to_string()).collect();
    let q = t.catalog.queryables("naip").unwrap();
    let learned = &q["gsd"];
    assert_eq!(learned.types.iter().copied().collect::<Vec<_>>(), [JsonType::Number]);
    assert_eq!(learned.minimum, gsd.iter().copied().reduce(f64::min));
    assert_eq!(learned.maximum, gsd.iter().copied().reduce(f64::max));
    assert_eq!((learned.minimum, learned.maximum), (Some(0.3), Some(1.0)));
    let state = &q["naip:state"];
    assert_eq!(state.types.iter().copied().collect::<Vec<_>>(), [JsonType::String]);
    assert_eq!(state.values.as_ref(), Some(&states));
    assert_eq!(states.len(), 9, "al + 8 western states");
    // Too many distinct values to be an enumeration.
    assert_eq!(q["datetime"].values, None);
    assert_eq!(info_counts(&t.catalog)["naip"], 11_000);
    assert_check_ok(&t.catalog, "naip");
}

#[test]
fn errors_inside_a_feature_collection_name_its_json_pointer() {
    let mut t = catalog_a();
    let before = snapshot(&t.catalog);
    let file = fixture("feature-collection.geojson");
    let err = doc_error(ingest(&mut t.catalog, &[&file], &options(Mode::Insert, false, None)));
    assert_eq!(err.location.pointer.as_deref(), Some("/features/1"));
    assert_eq!(err.location.line, None);
    assert_eq!(err.id.as_deref(), Some("f2"));
    assert!(matches!(&err.reason, DocErrorKind::InvalidField { field, .. } if field == "geometry"));
    assert!(
        err.to_string()
            .contains("feature-collection.geojson at /features/1: 'f2': field `geometry`"),
        "{err}"
    );
    assert_eq!(snapshot(&t.catalog), before);

    let mut opts = options(Mode::Insert, false, None);
    opts.skip_invalid = true;
    let report = ingest(&mut t.catalog, &[&file], &opts).unwrap();
    assert_eq!((report.items.inserted, report.failed), (2, 1));
    let features = file_documents(&file);
    for f in [&features[0], &features[2]] {
        assert_same_json(&t.catalog.item("fx-a", id_of(f)).unwrap(), f, id_of(f));
    }
    assert_check_ok(&t.catalog, "feature collection");
}

// ---------------------------------------------------------------------------------------------
// Small input details

#[test]
fn a_utf8_byte_order_mark_is_accepted() {
    let mut t = temp_catalog();
    let dir = tempfile::tempdir().unwrap();
    let bom = dir.path().join("collection-with-bom.json");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(std::fs::read(fixture("collection-a.json")).unwrap());
    std::fs::write(&bom, bytes).unwrap();
    let report = ingest(&mut t.catalog, &[&bom], &options(Mode::Insert, false, None)).unwrap();
    assert_eq!(report.collections.inserted, 1);
    assert_eq!(t.catalog.collection_document("fx-a").unwrap(), doc("collection-a.json"));
}

#[test]
fn a_failed_ingest_into_a_new_file_leaves_no_file_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.stacdb");
    // An item whose collection never arrives: the run fails.
    let items = fixture("items");
    let out = common::stacdb(["ingest", &path_str(&path), &path_str(&items)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("fx-a"), "{}", stderr_of(&out));
    let left: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "files left behind: {left:?}");

    // An existing catalog is never removed, even when empty and the run fails.
    common::stacdb_ok(["init", &path_str(&path)]);
    let out = common::stacdb(["ingest", &path_str(&path), &path_str(&items)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(path.exists());
}
