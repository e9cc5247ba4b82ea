//! `stacdb check` finds what is wrong: each test damages one index or stat of a sound
//! catalog through raw SQL and expects check to name the problem (and the CLI to exit 1).

mod common;

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use stacdb::{Catalog, IngestOptions, Input, Silent};

/// A sound catalog of the demo fixtures (13 items, one without geometry) in a temp dir.
fn demo_catalog() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("check.stacdb");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    Catalog::ingest_path(
        &path,
        stacdb::DEFAULT_LOCK_TIMEOUT,
        &[Input::Path(demo)],
        &IngestOptions::default(),
        &Silent,
    )
    .unwrap();
    assert!(Catalog::open(&path).unwrap().check().unwrap().is_ok(), "sound before damage");
    (dir, path)
}

/// Damages the catalog with `sql`, then asserts check reports a problem containing `want`.
fn damaged(sql: &str, want: &str) {
    let (_dir, path) = demo_catalog();
    Connection::open(&path).unwrap().execute_batch(sql).unwrap();
    let report = Catalog::open(&path).unwrap().check().unwrap();
    assert!(!report.is_ok(), "check passed after: {sql}");
    assert!(
        report.problems.iter().any(|p| p.contains(want)),
        "after `{sql}` expected a problem containing {want:?}, got {:?}",
        report.problems
    );
    let out = common::stacdb(["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "stacdb check must exit 1 after: {sql}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(want));
}

const ALPS_1: &str = "(SELECT fid FROM items WHERE id = 'alps-001')";

#[test]
fn a_missing_rtree_entry_is_found() {
    damaged(
        &format!("DELETE FROM rtree_items_geometry WHERE id = {ALPS_1}"),
        "missing from the R-tree",
    );
}

#[test]
fn an_rtree_entry_without_an_item_is_found() {
    damaged(
        "INSERT INTO rtree_items_geometry VALUES (999999, 0, 1, 0, 1)",
        "R-tree entry 999999 has no item",
    );
}

#[test]
fn a_moved_rtree_box_is_found() {
    damaged(
        &format!("UPDATE rtree_items_geometry SET minx = minx - 5 WHERE id = {ALPS_1}"),
        "R-tree box",
    );
}

#[test]
fn a_missing_spacetime_entry_is_found() {
    damaged(
        &format!("DELETE FROM rtree_items_spacetime WHERE id = {ALPS_1}"),
        "space-time R-tree entry does not match",
    );
}

#[test]
fn a_spacetime_entry_with_the_wrong_time_is_found() {
    damaged(
        &format!(
            "UPDATE rtree_items_spacetime SET mint = mint + 3, maxt = maxt + 3 WHERE id = {ALPS_1}"
        ),
        "space-time R-tree entry does not match",
    );
}

#[test]
fn a_spacetime_entry_without_an_item_is_found() {
    damaged(
        "INSERT INTO rtree_items_spacetime VALUES (999999, 0, 1, 0, 1, 0, 1)",
        "space-time R-tree entry 999999 has no item",
    );
}

#[test]
fn a_stale_typed_property_column_is_found() {
    damaged("UPDATE items SET p_gsd = p_gsd + 1 WHERE p_gsd IS NOT NULL", "column p_gsd holds");
}

#[test]
fn a_missing_fts_entry_is_found() {
    damaged(&format!("DELETE FROM items_fts WHERE rowid = {ALPS_1}"), "missing from the FTS index");
}

#[test]
fn stale_fts_text_is_found() {
    damaged(&format!("UPDATE items_fts SET title = 'wrong' WHERE rowid = {ALPS_1}"), "FTS entry");
}

#[test]
fn a_promoted_column_that_disagrees_with_the_document_is_found() {
    damaged(
        "UPDATE items SET datetime_start = datetime_start - 1 WHERE id = 'alps-001'",
        "stored time",
    );
}

#[test]
fn a_stale_geometry_is_found() {
    damaged(
        "UPDATE items SET geometry = (SELECT geometry FROM items WHERE id = 'delta-001') WHERE id = 'alps-001'",
        "stored geometry differs",
    );
}

#[test]
fn stale_collection_stats_are_found() {
    damaged("UPDATE collections SET item_count = item_count + 1", "stored stats");
    damaged("UPDATE collections SET maxy = maxy + 1", "stored stats");
}

#[test]
fn a_property_missing_from_the_queryables_is_found() {
    damaged("DELETE FROM queryables WHERE name = 'gsd'", "property 'gsd' is missing");
}

#[test]
fn a_collection_without_a_document_is_found() {
    damaged("UPDATE collections SET content = NULL", "has no document");
}
