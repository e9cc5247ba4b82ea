//! Importing a static catalog: `stacdb ingest CATALOG path/to/catalog.json` crawls the tree.
//!
//! Real trees from the shared data are crawled and compared with an independent walk of their
//! links written here (serde_json and std only): the same items and collections, stored equal
//! to their files, and the tree of sub-catalogs recorded in the schema step 4 tables. Broken
//! trees from the shared data give the documented report: strict runs fail naming the linking
//! file, the link and the reason and write nothing; `--skip-invalid` imports the rest. Cycles,
//! documents linked twice, non-STAC GeoJSON, collectionless items, absolute and `file://` links
//! and re-imports are tested on small trees written into temporary directories.

mod common;
mod ingest_support;

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::path::{Path, PathBuf};

use ingest_support::*;
use rusqlite::types::Value as SqlValue;
use serde_json::{Value, json};
use stacdb::{Catalog, DocErrorKind, IngestOptions, IngestReport, Input, Mode, Silent};

const PYSTAC: &str = "fixtures/pystac/tests/data-files/catalogs";

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Imports `root` into a new catalog file at `db`, as `stacdb ingest` does.
fn import(db: &Path, root: &Path, options: &IngestOptions) -> stacdb::Result<IngestReport> {
    Catalog::ingest_path(
        db,
        stacdb::DEFAULT_LOCK_TIMEOUT,
        &[Input::Path(root.to_path_buf())],
        options,
        &Silent,
    )
}

fn skip_invalid() -> IngestOptions {
    IngestOptions { skip_invalid: true, ..Default::default() }
}

fn upsert() -> IngestOptions {
    IngestOptions { mode: Mode::Upsert, ..Default::default() }
}

// ---------------------------------------------------------------------------------------------
// The independent walk

/// A document reached from the root by `child` and `item` links.
struct Walked {
    file: PathBuf,
    doc: Value,
    /// The document whose link reached it first (breadth first, in link order).
    parent: Option<usize>,
}

fn is_stac_catalog(doc: &Value) -> bool {
    doc["type"] == "Catalog"
        || (doc.get("type").is_none() && doc.get("extent").is_none() && doc["links"].is_array())
}

/// Follows `child` and `item` links breadth first from `root`, each file once; links that do
/// not lead to a local file are left out.
fn walk_links(root: &Path) -> Vec<Walked> {
    let mut out: Vec<Walked> = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([(root.to_path_buf(), None)]);
    seen.insert(root.canonicalize().unwrap());
    while let Some((file, parent)) = queue.pop_front() {
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let index = out.len();
        if !is_item(&doc) {
            for link in doc["links"].as_array().into_iter().flatten() {
                if !matches!(link["rel"].as_str(), Some("child" | "item")) {
                    continue;
                }
                let href = link["href"].as_str().unwrap();
                if href.starts_with("http://") || href.starts_with("https://") {
                    continue;
                }
                let href = if href.contains('\\') { href.replace('\\', "/") } else { href.into() };
                let target = match href.strip_prefix("file://") {
                    Some(absolute) => PathBuf::from(absolute),
                    None => file.parent().unwrap().join(href),
                };
                let Ok(canonical) = target.canonicalize() else { continue };
                if seen.insert(canonical) {
                    queue.push_back((target, Some(index)));
                }
            }
        }
        out.push(Walked { file, doc, parent });
    }
    out
}

/// The collection a walked item belongs to: its own field, else the nearest collection above.
fn collection_of(walked: &[Walked], index: usize) -> Option<String> {
    if let Some(c) = walked[index].doc["collection"].as_str() {
        return Some(c.to_string());
    }
    let mut at = walked[index].parent;
    while let Some(i) = at {
        if is_collection(&walked[i].doc) {
            return Some(id_of(&walked[i].doc).to_string());
        }
        at = walked[i].parent;
    }
    None
}

/// Every `.json` file under a directory, canonical.
fn json_files(dir: &Path) -> BTreeSet<PathBuf> {
    ingestible_files(dir).into_iter().map(|f| f.canonicalize().unwrap()).collect()
}

/// The rows of the three tree tables, for comparing two imports.
fn tree_rows(catalog: &Catalog) -> BTreeMap<&'static str, Vec<Vec<SqlValue>>> {
    let conn = catalog.connection();
    [
        ("subcatalogs", "SELECT * FROM subcatalogs ORDER BY node"),
        ("collection_parents", "SELECT * FROM collection_parents ORDER BY collection"),
        ("item_parents", "SELECT * FROM item_parents ORDER BY collection, id"),
    ]
    .into_iter()
    .map(|(name, sql)| {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| (0..n).map(|i| r.get::<_, SqlValue>(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (name, rows)
    })
    .collect()
}

fn count(catalog: &Catalog, sql: &str) -> i64 {
    catalog.connection().query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Imports a good tree and checks it against the independent walk: counts, every document
/// equal to its file, the tree rows, the root's metadata on the new file, `check`, a directory
/// walk (every file not linked is named in `unlinked`) and an upsert re-import that leaves the
/// tree rows as they were.
fn assert_good_tree(test: &str, relative: &str, unlinked: &[&str]) -> Option<Catalog> {
    let data = common::data_dir(test)?;
    let dir = common::data_file(&data, relative);
    let root = dir.join("catalog.json");
    let walked = walk_links(&root);

    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("imported.stacdb");
    let report = import(&db, &root, &IngestOptions::default())
        .unwrap_or_else(|e| panic!("{relative}: import failed: {e}"));
    let items: Vec<usize> = (0..walked.len()).filter(|&i| is_item(&walked[i].doc)).collect();
    let collections: Vec<usize> =
        (0..walked.len()).filter(|&i| is_collection(&walked[i].doc)).collect();
    let catalogs: Vec<usize> =
        (1..walked.len()).filter(|&i| is_stac_catalog(&walked[i].doc)).collect();
    assert_eq!(items.len() + collections.len() + catalogs.len() + 1, walked.len(), "{relative}");
    assert_eq!(report.items.inserted as usize, items.len(), "{relative}: items");
    assert_eq!(report.collections.inserted as usize, collections.len(), "{relative}");
    assert_eq!((report.failed, report.collections_created), (0, 0), "{relative}");
    assert_eq!(report.crawl.roots, 1);
    assert_eq!(report.crawl.files as usize, walked.len(), "{relative}: files crawled");
    assert_eq!(report.crawl.catalogs as usize, catalogs.len(), "{relative}: sub-catalogs");
    assert_eq!(report.crawl.broken_link_count, 0, "{relative}: {:?}", report.crawl.broken_links);
    assert_eq!(report.crawl.not_stac_count, 0, "{relative}");

    let catalog = Catalog::open(&db).unwrap();
    assert_eq!(stored_keys(&catalog).len(), items.len(), "{relative}");
    assert_eq!(stored_collections(&catalog).len(), collections.len(), "{relative}");
    for &i in &items {
        let context = format!("{}", walked[i].file.display());
        let collection = collection_of(&walked, i).expect("the walk finds every item a collection");
        let stored = catalog.item(&collection, id_of(&walked[i].doc)).unwrap();
        assert_same_json(&stored, &walked[i].doc, &context);
    }
    for &i in &collections {
        let context = format!("{}", walked[i].file.display());
        let stored = catalog.collection_document(id_of(&walked[i].doc)).unwrap();
        assert_same_json(&stored, &walked[i].doc, &context);
    }
    assert_check_ok(&catalog, relative);

    // The root's metadata is the new catalog's.
    let meta = catalog.metadata().unwrap();
    let root_doc = &walked[0].doc;
    assert_eq!(meta.id, id_of(root_doc), "{relative}");
    assert_eq!(meta.title.as_deref(), root_doc["title"].as_str(), "{relative}");
    assert_eq!(meta.description.as_deref(), root_doc["description"].as_str(), "{relative}");

    // The tree: one row per sub-catalog (at its path, stored without its links), per
    // collection, and per item that hung from a sub-catalog.
    let root_dir = dir.canonicalize().unwrap();
    let relative_path = |file: &Path| {
        let canonical = file.canonicalize().unwrap();
        let parts: Vec<String> = canonical
            .strip_prefix(&root_dir)
            .unwrap()
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.join("/")
    };
    let mut want: BTreeMap<String, Value> = BTreeMap::new();
    for &i in &catalogs {
        let mut doc = walked[i].doc.clone();
        doc.as_object_mut().unwrap().remove("links");
        want.insert(relative_path(&walked[i].file), doc);
    }
    let mut stmt = catalog.connection().prepare("SELECT href, content FROM subcatalogs").unwrap();
    let have: BTreeMap<String, Value> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (href, content) = row.unwrap();
            (href, serde_json::from_str(&content).unwrap())
        })
        .collect();
    drop(stmt);
    assert_eq!(have, want, "{relative}: sub-catalogs");
    let mut stmt =
        catalog.connection().prepare("SELECT collection, href FROM collection_parents").unwrap();
    let have: BTreeMap<String, String> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    drop(stmt);
    let want: BTreeMap<String, String> = collections
        .iter()
        .map(|&i| (id_of(&walked[i].doc).to_string(), relative_path(&walked[i].file)))
        .collect();
    assert_eq!(have, want, "{relative}: collection paths");
    let under_catalogs: BTreeSet<(String, String, String)> = items
        .iter()
        .filter(|&&i| walked[i].parent.is_some_and(|p| p > 0 && is_stac_catalog(&walked[p].doc)))
        .map(|&i| {
            let collection = collection_of(&walked, i).unwrap();
            (collection, id_of(&walked[i].doc).to_string(), relative_path(&walked[i].file))
        })
        .collect();
    let mut stmt =
        catalog.connection().prepare("SELECT collection, id, href FROM item_parents").unwrap();
    let have: BTreeSet<(String, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    drop(stmt);
    assert_eq!(have, under_catalogs, "{relative}: items under sub-catalogs");

    // A directory walk finds the same files, but for those no link leads to.
    let linked: BTreeSet<PathBuf> = walked.iter().map(|w| w.file.canonicalize().unwrap()).collect();
    let not_linked: Vec<String> =
        json_files(&dir).difference(&linked).map(|f| relative_path(f)).collect();
    assert_eq!(not_linked, unlinked, "{relative}: files no link leads to");

    // Re-importing the same tree replaces the rows: nothing is duplicated.
    let before = tree_rows(&catalog);
    drop(catalog);
    let again = import(&db, &root, &upsert()).unwrap();
    assert_eq!(again.items.updated as usize, items.len());
    assert_eq!(again.collections.updated as usize, collections.len());
    let catalog = Catalog::open(&db).unwrap();
    assert_eq!(tree_rows(&catalog), before, "{relative}: a re-import changed the tree rows");
    assert_eq!(stored_keys(&catalog).len(), items.len());
    assert_check_ok(&catalog, relative);
    Some(catalog)
}

// ---------------------------------------------------------------------------------------------
// Real trees

#[test]
fn pystac_test_case_1() {
    let Some(catalog) =
        assert_good_tree("pystac_test_case_1", &format!("{PYSTAC}/test-case-1"), &[])
    else {
        return;
    };
    // Two country sub-catalogs below the root, each with two collections.
    let countries = count(&catalog, "SELECT count(*) FROM subcatalogs WHERE parent IS NULL");
    assert_eq!(countries, 2);
    let under = count(&catalog, "SELECT count(*) FROM collection_parents WHERE parent IS NOT NULL");
    assert_eq!(under, 4);
}

#[test]
fn pystac_test_case_4() {
    assert_good_tree("pystac_test_case_4", &format!("{PYSTAC}/test-case-4"), &[]);
}

#[test]
fn pystac_test_case_5_catalogs_below_a_collection() {
    // CBERS4-MUX-027/CBERS4-MUX-027/collection.json is linked from nothing: it is not imported.
    let Some(catalog) = assert_good_tree(
        "pystac_test_case_5",
        &format!("{PYSTAC}/test-case-5"),
        &["CBERS4/CBERS4MUX/CBERS4-MUX-027/CBERS4-MUX-027/collection.json"],
    ) else {
        return;
    };
    // The collection CBERS4MUX links to a sub-catalog, whose sub-catalog holds the item.
    let (node, parent_collection): (i64, String) = catalog
        .connection()
        .query_row(
            "SELECT node, parent_collection FROM subcatalogs WHERE parent_collection IS NOT NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(parent_collection, "CBERS4MUX");
    let item_parent: i64 = catalog
        .connection()
        .query_row(
            "SELECT s.parent FROM item_parents i JOIN subcatalogs s ON s.node = i.parent",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(item_parent, node);
    // The collection hangs from the CBERS4 sub-catalog.
    let parent: Option<i64> = catalog
        .connection()
        .query_row(
            "SELECT parent FROM collection_parents WHERE collection = 'CBERS4MUX'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let cbers4: i64 = catalog
        .connection()
        .query_row("SELECT node FROM subcatalogs WHERE href = 'CBERS4/catalog.json'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(parent, Some(cbers4));
}

#[test]
fn mixed_stac_versions_label_catalog_v0_8_1() {
    let relative = format!("{PYSTAC}/label_catalog-v0.8.1");
    let Some(catalog) = assert_good_tree("mixed_stac_versions", &relative, &[]) else { return };
    // The root is a 0.8.1 catalog without `type`; the tree mixes 0.8.1 and 1.0.0-rc.3.
    let mut stmt = catalog
        .connection()
        .prepare(
            "SELECT DISTINCT json_extract(content, '$.stac_version') FROM items
             UNION SELECT json_extract(content, '$.stac_version') FROM collections ORDER BY 1",
        )
        .unwrap();
    let versions: Vec<String> =
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(versions, ["0.8.1", "1.0.0-rc.3"]);
}

#[test]
fn noaa_cdr_examples_collectionless_items_join_their_collection() {
    // Two sea-ice items of the south hemisphere are in the folder but not linked.
    let Some(catalog) = assert_good_tree(
        "noaa_cdr_examples",
        "fixtures/stactools-noaa-cdr/examples",
        &[
            "noaa-cdr-sea-ice-concentration/south/seaice_conc_daily_sh_2006_v04r00.json",
            "noaa-cdr-sea-ice-concentration/south/seaice_conc_daily_sh_2007_v04r00.json",
        ],
    ) else {
        return;
    };
    // Most items have no `collection` field: each is stored in the collection linking it, and
    // its document is left as it was.
    let without = count(
        &catalog,
        "SELECT count(*) FROM items WHERE json_extract(content, '$.collection') IS NULL",
    );
    assert!(without > 90, "{without}");
    let counts = info_counts(&catalog);
    assert_eq!(counts.values().sum::<i64>(), 113);
    assert_eq!(counts.len(), 4);
}

#[test]
fn stac_validator_local_catalog() {
    let Some(catalog) = assert_good_tree(
        "stac_validator_local_catalog",
        "fixtures/stac-validator/tests/test_data/local_cat/example-catalog",
        &[],
    ) else {
        return;
    };
    // The Sentinel-2 item has no top-level `collection`; it hangs from the sentinel-2a
    // sub-catalog, below the sentinel-2 collection, and joins that collection.
    let row: (String, String) = catalog
        .connection()
        .query_row(
            "SELECT i.collection, s.href FROM item_parents i JOIN subcatalogs s ON s.node = i.parent",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(row, ("sentinel-2".into(), "eo/sentinel-2/sentinel-2a/catalog.json".into()));
}

#[test]
fn stactools_catalogs() {
    assert_good_tree(
        "stactools_catalogs",
        "fixtures/stactools/tests/data-files/catalogs/collection-assets",
        &[],
    );
    // Two invalid variants sit beside the files they vary, linked from nothing.
    assert_good_tree(
        "stactools_basic",
        "fixtures/stactools/tests/data-files/basic",
        &[
            "country-1/area-1-1/area-1-1-imagery/area-1-1-imagery-invalid.json",
            "country-1/area-1-1/collection-invalid.json",
        ],
    );
}

/// The Planet disaster tree's root is a Collection, which is ingested as a file of its own (a
/// Collection input is not crawled), with the Catalog below it as the root to crawl.
#[test]
fn stactools_planet_disaster_collection_and_catalog() {
    let Some(data) = common::data_dir("stactools_planet_disaster") else { return };
    for set in ["planet-disaster", "planet-disaster-v1.0.0-beta.2"] {
        let dir = common::data_file(&data, &format!("fixtures/stactools/tests/data-files/{set}"));
        let collection = dir.join("collection.json");
        let root = dir.join("hurricane-harvey/catalog.json");
        let walked = walk_links(&root);
        let items: Vec<&Walked> = walked.iter().filter(|w| is_item(&w.doc)).collect();
        assert_eq!(items.len(), 5, "{set}");
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("c.stacdb");
        let report = Catalog::ingest_path(
            &db,
            stacdb::DEFAULT_LOCK_TIMEOUT,
            &[Input::Path(collection.clone()), Input::Path(root.clone())],
            &IngestOptions::default(),
            &Silent,
        )
        .unwrap();
        assert_eq!((report.items.inserted, report.collections.inserted), (5, 1), "{set}");
        assert_eq!((report.crawl.roots, report.crawl.catalogs), (1, 1), "{set}");
        let catalog = Catalog::open(&db).unwrap();
        let stored = common::read_documents(&collection).remove(0);
        assert_same_json(&catalog.collection_document(id_of(&stored)).unwrap(), &stored, set);
        for w in &items {
            let collection = w.doc["collection"].as_str().unwrap();
            let context = w.file.display().to_string();
            assert_same_json(&catalog.item(collection, id_of(&w.doc)).unwrap(), &w.doc, &context);
        }
        // The items hang from the 8/31 sub-catalog, below the root hurricane-harvey.
        assert_eq!(count(&catalog, "SELECT count(*) FROM item_parents"), 5);
        let href: String = catalog
            .connection()
            .query_row("SELECT href FROM subcatalogs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(href, "hurricane-harvey-0831/catalog.json");
        assert_eq!(catalog.metadata().unwrap().id, "hurricane-harvey");
        assert_check_ok(&catalog, set);
    }
}

#[test]
fn windows_hrefs_are_followed() {
    // Hrefs written with backslashes (`.\\test-collection\\collection.json`).
    assert_good_tree("windows_hrefs", "fixtures/pystac/tests/data-files/windows_hrefs", &[]);
}

// ---------------------------------------------------------------------------------------------
// Broken trees

/// The run failed with a rejection; returns it.
fn rejection(result: stacdb::Result<IngestReport>) -> Box<stacdb::DocError> {
    doc_error(result)
}

#[test]
fn invalid_catalog_without_stac_version() {
    let Some(data) = common::data_dir("invalid_catalog") else { return };
    let root = common::data_file(&data, &format!("{PYSTAC}/invalid-catalog/catalog.json"));
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.stacdb");
    let err = rejection(import(&db, &root, &IngestOptions::default()));
    assert_eq!(&*err.location.source, path_str(&root));
    assert_eq!(err.id.as_deref(), Some("broken_cat"));
    assert!(matches!(&err.reason, DocErrorKind::NotStac(r) if r.contains("stac_version")), "{err}");
    assert!(!db.exists(), "a failed import left a catalog file");

    let report = import(&db, &root, &skip_invalid()).unwrap();
    assert_eq!(report.failed, 1);
    assert_eq!((report.items.inserted, report.collections.inserted), (0, 0));
    assert_eq!(report.errors[0], *err);

    let out =
        common::stacdb(["ingest", &path_str(&tmp.path().join("cli.stacdb")), &path_str(&root)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    assert!(
        stderr.contains("invalid-catalog/catalog.json: 'broken_cat': not a STAC document: a Catalog without `stac_version`"),
        "{stderr}"
    );
}

#[test]
fn cbers_partial_has_collections_without_items() {
    // The shared data's notes say its child links lead to missing files; in the copy we have,
    // all four collection files are there and they link no items: the import stores the four
    // collections and reports nothing broken.
    let Some(data) = common::data_dir("cbers_partial") else { return };
    let root = common::data_file(&data, &format!("{PYSTAC}/cbers-partial/catalog.json"));
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.stacdb");
    let report = import(&db, &root, &IngestOptions::default()).unwrap();
    assert_eq!((report.items.inserted, report.collections.inserted), (0, 4));
    assert_eq!(report.crawl.broken_link_count, 0);
    let catalog = Catalog::open(&db).unwrap();
    assert_eq!(
        stored_collections(&catalog),
        ["CBERS4AWFI", "CBERS4MUX", "CBERS4PAN10M", "CBERS4PAN5M"]
    );
    assert_eq!(count(&catalog, "SELECT count(*) FROM collection_parents WHERE parent IS NULL"), 4);
}

#[test]
fn external_child_link_is_broken() {
    let Some(data) = common::data_dir("external_child") else { return };
    let root =
        common::data_file(&data, "fixtures/stactools/tests/data-files/external-child/catalog.json");
    let href =
        "https://raw.githubusercontent.com/radiantearth/stac-spec/v1.0.0/examples/collection.json";
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.stacdb");
    let err = rejection(import(&db, &root, &IngestOptions::default()));
    assert_eq!(&*err.location.source, path_str(&root));
    match &err.reason {
        DocErrorKind::BrokenLink { rel, href: h, reason } => {
            assert_eq!((*rel, h.as_str()), ("child", href));
            assert!(reason.contains("http(s) URL"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!db.exists());

    // The CLI names the linking file, the link and the reason, and exits 1.
    let cli_db = tmp.path().join("cli.stacdb");
    let out = common::stacdb(["ingest", &path_str(&cli_db), &path_str(&root)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    let want = format!("{}: 'test': broken child link '{href}': an http(s) URL", root.display());
    assert!(stderr.contains(&want), "{stderr}");
    assert!(!cli_db.exists());

    // --skip-invalid stores the rest (here: the root's metadata) and lists the link, also in
    // the JSON report, exiting 3.
    let out = common::stacdb([
        "ingest",
        &path_str(&cli_db),
        &path_str(&root),
        "--skip-invalid",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr_of(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 1);
    assert_eq!(report["crawl"]["broken_link_count"], 1);
    assert_eq!(
        report["crawl"]["broken_links"],
        json!([{"file": path_str(&root), "rel": "child", "href": href,
                "reason": "an http(s) URL: stacdb follows links to local files only"}])
    );
    assert!(stderr_of(&out).contains("stacdb: skipped: "), "{}", stderr_of(&out));
    let catalog = Catalog::open(&cli_db).unwrap();
    assert_eq!(catalog.metadata().unwrap().id, "test");
}

/// A root catalog in a temporary directory whose child links lead to the LINZ collections in
/// the shared data by absolute path (and one by a `file://` URL). Their item links name files
/// that are not shipped.
#[test]
fn linz_collections_with_items_not_shipped() {
    let Some(data) = common::data_dir("linz_imagery") else { return };
    let dir = common::data_file(&data, "fixtures/linz-imagery/stac").canonicalize().unwrap();
    let mut collections: Vec<PathBuf> =
        ingestible_files(&dir).into_iter().filter(|f| f.ends_with("collection.json")).collect();
    collections.sort();
    assert_eq!(collections.len(), 6);
    let tmp = tempfile::tempdir().unwrap();
    let links: Vec<Value> = collections
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let href = if i == 0 { format!("file://{}", c.display()) } else { path_str(c) };
            json!({"rel": "child", "href": href})
        })
        .collect();
    let root = tmp.path().join("catalog.json");
    let doc = json!({"type": "Catalog", "stac_version": "1.1.0", "id": "linz",
                     "description": "LINZ imagery collections", "links": links});
    std::fs::write(&root, doc.to_string()).unwrap();
    // Every item link, as an independent reading of the collections gives them.
    let mut item_links = Vec::new();
    for c in &collections {
        let doc: Value = serde_json::from_slice(&std::fs::read(c).unwrap()).unwrap();
        for link in doc["links"].as_array().unwrap() {
            if link["rel"] == "item" {
                item_links.push((path_str(c), link["href"].as_str().unwrap().to_string()));
            }
        }
    }
    assert!(item_links.len() > 1000, "{}", item_links.len());

    // Strict: the first broken link stops the run; nothing is written.
    let db = tmp.path().join("linz.stacdb");
    let err = rejection(import(&db, &root, &IngestOptions::default()));
    let (first_file, first_href) = &item_links[0];
    assert_eq!(&*err.location.source, first_file.as_str());
    let message = err.to_string();
    assert!(
        message.contains(&format!("broken item link '{first_href}': no such file: ")),
        "{message}"
    );
    assert!(!db.exists());

    // --skip-invalid: the six collections are stored, every item link is listed.
    let report = import(&db, &root, &skip_invalid()).unwrap();
    assert_eq!((report.collections.inserted, report.items.inserted), (6, 0));
    assert_eq!(report.crawl.broken_link_count as usize, item_links.len());
    assert_eq!(report.failed as usize, item_links.len());
    let listed: Vec<(String, String)> =
        report.crawl.broken_links.iter().map(|b| (b.file.clone(), b.href.clone())).collect();
    assert_eq!(listed, item_links[..listed.len()]);
    assert!(
        report
            .crawl
            .broken_links
            .iter()
            .all(|b| b.rel == "item" && b.reason.starts_with("no such file: "))
    );
    // The collections lie outside the root's directory: they are placed at <id>/collection.json.
    let catalog = Catalog::open(&db).unwrap();
    let hrefs: Vec<String> = {
        let mut stmt = catalog
            .connection()
            .prepare("SELECT href FROM collection_parents ORDER BY position")
            .unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let ids: Vec<String> = collections
        .iter()
        .map(|c| {
            let doc: Value = serde_json::from_slice(&std::fs::read(c).unwrap()).unwrap();
            format!("{}/collection.json", id_of(&doc))
        })
        .collect();
    assert_eq!(hrefs, ids);
    assert_check_ok(&catalog, "linz");
}

// ---------------------------------------------------------------------------------------------
// Small trees written here

/// Writes JSON documents under `dir`, at their relative paths.
fn write_tree(dir: &Path, files: &[(&str, Value)]) {
    for (path, doc) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
    }
}

fn catalog_doc(id: &str, links: &[(&str, &str)]) -> Value {
    let links: Vec<Value> =
        links.iter().map(|(rel, href)| json!({"rel": rel, "href": href})).collect();
    json!({"type": "Catalog", "stac_version": "1.1.0", "id": id, "description": format!("catalog {id}"),
           "links": links})
}

fn collection_doc(id: &str, links: &[(&str, &str)]) -> Value {
    let links: Vec<Value> =
        links.iter().map(|(rel, href)| json!({"rel": rel, "href": href})).collect();
    json!({"type": "Collection", "stac_version": "1.1.0", "id": id, "description": "d",
           "license": "other",
           "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                      "temporal": {"interval": [["2020-01-01T00:00:00Z", null]]}},
           "links": links})
}

fn item_doc(id: &str, collection: Option<&str>) -> Value {
    let mut item = json!({"type": "Feature", "stac_version": "1.1.0", "id": id,
        "geometry": {"type": "Point", "coordinates": [7, 46]}, "bbox": [7, 46, 7, 46],
        "properties": {"datetime": "2021-06-01T00:00:00Z"},
        "links": [{"rel": "parent", "href": "../catalog.json"}], "assets": {}});
    if let Some(c) = collection {
        item["collection"] = json!(c);
    }
    item
}

#[test]
fn cycles_and_documents_linked_twice_are_read_once() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write_tree(
        &tree,
        &[
            (
                "catalog.json",
                catalog_doc(
                    "root",
                    &[
                        ("child", "./a/catalog.json"),
                        ("child", "./c/collection.json"),
                        ("item", "./c/x.json"),
                    ],
                ),
            ),
            // a links back to the root, to itself, and to the collection again.
            (
                "a/catalog.json",
                catalog_doc(
                    "a",
                    &[
                        ("child", "../catalog.json"),
                        ("child", "./catalog.json"),
                        ("child", "../c/collection.json"),
                        ("item", "../c/x.json"),
                        ("item", "./y.json"),
                    ],
                ),
            ),
            ("a/y.json", item_doc("y", Some("c"))),
            (
                "c/collection.json",
                collection_doc("c", &[("item", "./x.json"), ("child", "../catalog.json")]),
            ),
            ("c/x.json", item_doc("x", Some("c"))),
        ],
    );
    let db = tmp.path().join("c.stacdb");
    let report = import(&db, &tree.join("catalog.json"), &IngestOptions::default()).unwrap();
    assert_eq!((report.items.inserted, report.collections.inserted), (2, 1));
    assert_eq!(report.crawl.files, 5);
    assert_eq!(report.crawl.catalogs, 1);
    // a: root, itself, the collection, x; c: x, root.
    assert_eq!(report.crawl.links_revisited, 6);
    let catalog = Catalog::open(&db).unwrap();
    assert_eq!(
        stored_keys(&catalog),
        [("c".to_string(), "x".to_string()), ("c".into(), "y".into())]
    );
    // x was reached first from the root (breadth first): it hangs from its collection's
    // level, not from a; y hangs from a.
    let rows: Vec<(String, String)> = {
        let mut stmt = catalog.connection().prepare("SELECT id, href FROM item_parents").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(rows, [("y".to_string(), "a/y.json".to_string())]);
    assert_check_ok(&catalog, "cycles");
}

#[test]
fn collectionless_items() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write_tree(
        &tree,
        &[
            (
                "catalog.json",
                catalog_doc(
                    "root",
                    &[("child", "./c/collection.json"), ("child", "./loose/catalog.json")],
                ),
            ),
            (
                "c/collection.json",
                collection_doc("c", &[("child", "./2021/catalog.json"), ("item", "./in-c.json")]),
            ),
            ("c/in-c.json", item_doc("in-c", None)),
            ("c/2021/catalog.json", catalog_doc("2021", &[("item", "./deep.json")])),
            ("c/2021/deep.json", item_doc("deep", None)),
            ("loose/catalog.json", catalog_doc("loose", &[("item", "./orphan.json")])),
            ("loose/orphan.json", item_doc("orphan", None)),
        ],
    );
    let root = tree.join("catalog.json");
    // Below a collection (directly or through a sub-catalog) an item joins it; under catalogs
    // only, it needs --collection.
    let db = tmp.path().join("strict.stacdb");
    let err = rejection(import(&db, &root, &IngestOptions::default()));
    assert!(matches!(err.reason, DocErrorKind::NoCollectionAbove), "{err}");
    assert_eq!(err.id.as_deref(), Some("orphan"));
    assert!(err.location.source.ends_with("loose/orphan.json"), "{err}");
    assert!(
        err.to_string()
            .contains("no collection above it in the catalog tree (pass --collection ID"),
        "{err}"
    );
    assert!(!db.exists());

    let options = IngestOptions { collection: Some("c".into()), ..Default::default() };
    let report = import(&db, &root, &options).unwrap();
    assert_eq!(report.items.inserted, 3);
    let catalog = Catalog::open(&db).unwrap();
    assert_eq!(
        stored_keys(&catalog),
        [
            ("c".to_string(), "deep".to_string()),
            ("c".into(), "in-c".into()),
            ("c".into(), "orphan".into())
        ]
    );
    // Stored as given: no `collection` member is added.
    assert!(catalog.item("c", "deep").unwrap().get("collection").is_none());
    let rows: Vec<(String, String)> = {
        let mut stmt =
            catalog.connection().prepare("SELECT id, href FROM item_parents ORDER BY id").unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(
        rows,
        [
            ("deep".to_string(), "c/2021/catalog.json".replace("catalog.json", "deep.json")),
            ("orphan".into(), "loose/orphan.json".into())
        ]
    );
    let parent: String = catalog
        .connection()
        .query_row(
            "SELECT parent_collection FROM subcatalogs WHERE href = 'c/2021/catalog.json'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(parent, "c");
    assert_check_ok(&catalog, "collectionless");

    // --skip-invalid without --collection: the orphan is listed, the rest stored.
    let db = tmp.path().join("skip.stacdb");
    let report = import(&db, &root, &skip_invalid()).unwrap();
    assert_eq!((report.items.inserted, report.failed), (2, 1));
    assert!(report.errors[0].to_string().contains("'orphan'"));
}

#[test]
fn geojson_that_is_not_stac_is_reported_and_not_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let plain =
        json!({"type": "Feature", "id": "label-1", "geometry": null, "properties": {"class": 1}});
    let labels = json!({"type": "FeatureCollection", "features": [plain.clone()]});
    write_tree(
        &tree,
        &[
            ("catalog.json", catalog_doc("root", &[("child", "./c/collection.json")])),
            (
                "c/collection.json",
                collection_doc(
                    "c",
                    &[("item", "./a.json"), ("item", "./labels.geojson"), ("item", "./plain.json")],
                ),
            ),
            ("c/a.json", item_doc("a", Some("c"))),
            ("c/labels.geojson", labels),
            ("c/plain.json", plain),
        ],
    );
    let db = tmp.path().join("c.stacdb");
    let root = tree.join("catalog.json");
    let report = import(&db, &root, &IngestOptions::default()).unwrap();
    assert_eq!((report.items.inserted, report.failed), (1, 0));
    assert_eq!(report.crawl.not_stac_count, 2);
    let files: Vec<&str> = report.crawl.not_stac.iter().map(|n| n.file.as_str()).collect();
    assert!(
        files[0].ends_with("c/labels.geojson") && files[1].ends_with("c/plain.json"),
        "{files:?}"
    );
    assert!(report.crawl.not_stac.iter().all(|n| n.linked_from.ends_with("c/collection.json")));
    assert!(
        report.crawl.not_stac[1].reason.contains("without `stac_version`"),
        "{:?}",
        report.crawl.not_stac
    );

    // The CLI says so on stderr and succeeds.
    let out = common::stacdb([
        "ingest",
        &path_str(&tmp.path().join("cli.stacdb")),
        &path_str(&root),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("plain.json: not a STAC document, not imported"),
        "{}",
        stderr_of(&out)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["crawl"]["not_stac_count"], 2);
}

#[test]
fn absolute_and_file_url_links() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let elsewhere = tmp.path().join("else where");
    write_tree(
        &elsewhere,
        &[("b.json", item_doc("b", Some("c"))), ("d.json", item_doc("d", Some("c")))],
    );
    let encoded = path_str(&elsewhere.join("d.json")).replace(' ', "%20");
    write_tree(
        &tree,
        &[
            ("catalog.json", catalog_doc("root", &[("child", "./c/collection.json")])),
            (
                "c/collection.json",
                collection_doc(
                    "c",
                    &[
                        ("item", &path_str(&tree.join("c/a.json"))),
                        ("item", &path_str(&elsewhere.join("b.json"))),
                        ("item", &format!("file://{encoded}")),
                    ],
                ),
            ),
            ("c/a.json", item_doc("a", Some("c"))),
        ],
    );
    let db = tmp.path().join("c.stacdb");
    let report = import(&db, &tree.join("catalog.json"), &IngestOptions::default()).unwrap();
    assert_eq!(report.items.inserted, 3);
    assert_check_ok(&Catalog::open(&db).unwrap(), "absolute links");
}

#[test]
fn a_broken_local_link_names_the_linking_file_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write_tree(
        &tree,
        &[
            ("catalog.json", catalog_doc("root", &[("child", "./c/collection.json")])),
            (
                "c/collection.json",
                collection_doc("c", &[("item", "./a.json"), ("item", "./missing.json")]),
            ),
            ("c/a.json", item_doc("a", Some("c"))),
        ],
    );
    let root = tree.join("catalog.json");
    // An existing catalog with its own content and metadata.
    let db = tmp.path().join("c.stacdb");
    common::stacdb_ok(["init", &path_str(&db), "--id", "mine", "--title", "Mine"]);
    common::stacdb_ok([
        "ingest",
        &path_str(&db),
        &path_str(&fixture("collection-a.json")),
        &path_str(&fixture("items")),
    ]);
    let before = snapshot(&Catalog::open(&db).unwrap());

    let out = common::stacdb(["ingest", &path_str(&db), &path_str(&root)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = stderr_of(&out);
    let linking = tree.join("c/collection.json");
    let want = format!(
        "{}: 'c': broken item link './missing.json': no such file: {}",
        linking.display(),
        tree.join("c/missing.json").display()
    );
    assert!(stderr.contains(&want), "{stderr}");
    let catalog = Catalog::open(&db).unwrap();
    assert_eq!(snapshot(&catalog), before, "a failed import changed the catalog");
    assert_eq!(
        count(&catalog, "SELECT count(*) FROM subcatalogs")
            + count(&catalog, "SELECT count(*) FROM collection_parents"),
        0
    );
    drop(catalog);

    // --skip-invalid: the rest is imported; the existing catalog keeps its own metadata.
    let out = common::stacdb(["ingest", &path_str(&db), &path_str(&root), "--skip-invalid"]);
    assert_eq!(out.status.code(), Some(3));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("1 failed") && summary.contains("1 broken link(s)"), "{summary}");
    let catalog = Catalog::open(&db).unwrap();
    assert_eq!(catalog.metadata().unwrap().id, "mine");
    assert!(catalog.item("c", "a").is_ok());
    assert_check_ok(&catalog, "skip");
}

#[test]
fn reimporting_a_changed_tree_replaces_its_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write_tree(
        &tree,
        &[
            ("catalog.json", catalog_doc("root", &[("child", "./c/collection.json")])),
            (
                "c/collection.json",
                collection_doc(
                    "c",
                    &[("child", "./2020/catalog.json"), ("child", "./2021/catalog.json")],
                ),
            ),
            ("c/2020/catalog.json", catalog_doc("2020", &[("item", "./a.json")])),
            ("c/2020/a.json", item_doc("a", Some("c"))),
            ("c/2021/catalog.json", catalog_doc("2021", &[("item", "./b.json")])),
            ("c/2021/b.json", item_doc("b", Some("c"))),
        ],
    );
    let root = tree.join("catalog.json");
    let db = tmp.path().join("c.stacdb");
    import(&db, &root, &IngestOptions::default()).unwrap();
    let catalog = Catalog::open(&db).unwrap();
    let first = tree_rows(&catalog);
    assert_eq!(first["subcatalogs"].len(), 2);
    assert_eq!(first["item_parents"].len(), 2);
    drop(catalog);

    // The 2021 sub-catalog goes; b now hangs straight from the collection, a is re-titled.
    let mut c2020 = catalog_doc("2020", &[("item", "./a.json")]);
    c2020["title"] = json!("The year 2020");
    write_tree(
        &tree,
        &[
            (
                "c/collection.json",
                collection_doc("c", &[("child", "./2020/catalog.json"), ("item", "./2021/b.json")]),
            ),
            ("c/2020/catalog.json", c2020),
        ],
    );
    import(&db, &root, &upsert()).unwrap();
    let catalog = Catalog::open(&db).unwrap();
    let rows = tree_rows(&catalog);
    assert_eq!(rows["subcatalogs"].len(), 1, "{rows:?}");
    // The 2020 row is the same row, updated in place.
    assert_eq!(rows["subcatalogs"][0][0], first["subcatalogs"][0][0]);
    let content: Value = serde_json::from_str(
        &catalog
            .connection()
            .query_row("SELECT content FROM subcatalogs", [], |r| r.get::<_, String>(0))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(content["title"], "The year 2020");
    assert_eq!(rows["item_parents"].len(), 1);
    assert_eq!(rows["collection_parents"].len(), 1);
    assert_check_ok(&catalog, "re-import");
}

#[test]
fn deleting_items_and_collections_deletes_their_tree_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write_tree(
        &tree,
        &[
            (
                "catalog.json",
                catalog_doc(
                    "root",
                    &[("child", "./c/collection.json"), ("child", "./d/collection.json")],
                ),
            ),
            ("c/collection.json", collection_doc("c", &[("child", "./sub/catalog.json")])),
            (
                "c/sub/catalog.json",
                catalog_doc("sub", &[("item", "./a.json"), ("item", "./b.json")]),
            ),
            ("c/sub/a.json", item_doc("a", Some("c"))),
            ("c/sub/b.json", item_doc("b", Some("c"))),
            ("d/collection.json", collection_doc("d", &[("item", "./x.json")])),
            ("d/x.json", item_doc("x", Some("d"))),
        ],
    );
    let db = tmp.path().join("c.stacdb");
    import(&db, &tree.join("catalog.json"), &IngestOptions::default()).unwrap();
    let mut catalog = Catalog::open(&db).unwrap();
    assert_eq!(count(&catalog, "SELECT count(*) FROM item_parents"), 2);
    catalog.delete_items("c", &["a".to_string()], false).unwrap();
    assert_eq!(count(&catalog, "SELECT count(*) FROM item_parents"), 1);
    assert_check_ok(&catalog, "after deleting an item");
    catalog.delete_collection("c").unwrap();
    for table in ["item_parents", "subcatalogs"] {
        assert_eq!(count(&catalog, &format!("SELECT count(*) FROM {table}")), 0, "{table}");
    }
    assert_eq!(count(&catalog, "SELECT count(*) FROM collection_parents"), 1);
    assert_check_ok(&catalog, "after deleting a collection");
}

#[test]
fn check_finds_broken_tree_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("c.stacdb");
    common::stacdb_ok([
        "ingest",
        &path_str(&db),
        &path_str(&fixture("collection-a.json")),
        &path_str(&fixture("items")),
    ]);
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO subcatalogs (node, parent, position, href, content) VALUES (1, NULL, 0, '../up/catalog.json', '{\"id\": \"up\"}');
         INSERT INTO subcatalogs (node, parent, position, href, content) VALUES (2, 3, 0, 'x/catalog.json', '{\"id\": \"x\", \"links\": []}');
         INSERT INTO subcatalogs (node, parent, position, href, content) VALUES (3, 2, 0, 'y/catalog.json', '{\"id\": \"y\"}');
         INSERT INTO item_parents (collection, id, parent, href) VALUES ('fx-a', 'gone', 1, 'up/gone.json');",
    )
    .unwrap();
    drop(conn);
    let report = Catalog::open(&db).unwrap().check().unwrap();
    let problems = report.problems.join("\n");
    assert!(
        problems.contains("item_parents: item 'gone' in 'fx-a' is not in the catalog"),
        "{problems}"
    );
    assert!(
        problems.contains("path '../up/catalog.json' is not a plain relative path"),
        "{problems}"
    );
    assert!(problems.contains("still has links"), "{problems}");
    assert!(problems.contains("cycle"), "{problems}");
}

#[test]
fn a_root_given_by_a_relative_path() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    write_tree(
        &tree,
        &[
            ("catalog.json", catalog_doc("root", &[("child", "./sub/catalog.json")])),
            ("sub/catalog.json", catalog_doc("sub", &[("child", "../c/collection.json")])),
            ("c/collection.json", collection_doc("c", &[("item", "./a.json")])),
            ("c/a.json", item_doc("a", Some("c"))),
        ],
    );
    let out = common::bin()
        .current_dir(tmp.path())
        .args(["ingest", "c.stacdb", "tree/catalog.json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let catalog = Catalog::open(tmp.path().join("c.stacdb")).unwrap();
    let hrefs: (String, String) = catalog
        .connection()
        .query_row(
            "SELECT s.href, c.href FROM collection_parents c JOIN subcatalogs s ON s.node = c.parent",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(hrefs, ("sub/catalog.json".into(), "c/collection.json".into()));
    assert_eq!(catalog.metadata().unwrap().id, "root");
}

#[test]
fn root_metadata_goes_to_new_and_empty_files_only() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let mut root = catalog_doc("root-id", &[]);
    root["title"] = json!("Root title");
    write_tree(&tree, &[("catalog.json", root)]);
    let root = tree.join("catalog.json");
    // A file made empty by `touch` is turned into a catalog by the run: it takes the root's.
    let empty = tmp.path().join("empty.stacdb");
    std::fs::write(&empty, b"").unwrap();
    import(&empty, &root, &IngestOptions::default()).unwrap();
    let meta = Catalog::open(&empty).unwrap().metadata().unwrap();
    assert_eq!((meta.id.as_str(), meta.title.as_deref()), ("root-id", Some("Root title")));
    assert_eq!(meta.description.as_deref(), Some("catalog root-id"));
    // A catalog that existed keeps its own, through the library too.
    let existing = tmp.path().join("existing.stacdb");
    let mut catalog = Catalog::create(&existing).unwrap();
    catalog.ingest(&[Input::Path(root)], &IngestOptions::default(), &Silent).unwrap();
    let meta = catalog.metadata().unwrap();
    assert_eq!((meta.id.as_str(), meta.title), ("existing", None));
}
