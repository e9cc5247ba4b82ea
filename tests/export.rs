//! `stacdb export`: static catalogs from real data, checked by walking their links; layouts,
//! catalog types and parts; hostile ids; incremental == fresh, byte for byte; NDJSON back in;
//! atomicity.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use common::file_tree as tree;
use serde_json::{Value, json};
use stacdb::export::{CatalogType, ExportFormat, ExportOptions, ExportReport, Layout, Quiet};
use stacdb::{Catalog, IngestOptions, Input, Mode, Silent};

const BASE: &str = "https://example.org/stac/";

/// A catalog of joplin (30 items) and the pgstac test collection (100 items).
fn real_catalog(test: &str, dir: &Path) -> Option<PathBuf> {
    let data = common::data_dir(test)?;
    let path = dir.join("real.stacdb");
    let inputs = [
        "fixtures/stac-fastapi-pgstac/testdata/joplin/collection.json",
        "fixtures/stac-fastapi-pgstac/testdata/joplin/index.geojson",
        "fixtures/pgstac/src/pgstac/tests/testdata/collections.ndjson",
        "fixtures/pgstac/src/pgstac/tests/testdata/items.ndjson",
    ];
    let inputs: Vec<Input> =
        inputs.iter().map(|i| Input::Path(common::data_file(&data, i))).collect();
    ingest(&path, &inputs, Mode::Insert);
    Some(path)
}

/// [`real_catalog`] exported once (self-contained, default layout) into `DIR/site/out`: the
/// catalog, `site`, `out` and the options used.
fn exported_once(test: &str, dir: &Path) -> Option<(PathBuf, PathBuf, PathBuf, ExportOptions)> {
    let catalog = real_catalog(test, dir)?;
    let parent = dir.join("site");
    std::fs::create_dir(&parent).unwrap();
    let out = parent.join("out");
    let opts = options(CatalogType::SelfContained, Layout::Default, 10_000);
    export(&catalog, &out, &opts).unwrap();
    Some((catalog, parent, out, opts))
}

fn ingest(path: &Path, inputs: &[Input], mode: Mode) {
    let options = IngestOptions { mode, create_collections: true, ..Default::default() };
    Catalog::ingest_path(path, stacdb::DEFAULT_LOCK_TIMEOUT, inputs, &options, &Silent)
        .unwrap_or_else(|e| panic!("ingest into {}: {e}", path.display()));
}

fn ingest_lines(path: &Path, lines: &[String], mode: Mode) {
    let file = path.with_extension(format!("in{}.ndjson", lines.len()));
    common::write_ndjson(&file, lines);
    ingest(path, &[Input::Path(file)], mode);
}

fn options(catalog_type: CatalogType, layout: Layout, max_links: usize) -> ExportOptions {
    ExportOptions {
        catalog_type,
        base_url: (catalog_type != CatalogType::SelfContained).then(|| BASE.to_string()),
        layout,
        max_links,
        threads: Some(2),
        ..Default::default()
    }
}

fn export(catalog: &Path, out: &Path, options: &ExportOptions) -> stacdb::Result<ExportReport> {
    let catalog = Catalog::open_read_only(catalog).unwrap();
    stacdb::export::export(&catalog, out, options, &Quiet)
}

fn all_types() -> [CatalogType; 3] {
    [CatalogType::SelfContained, CatalogType::RelativePublished, CatalogType::AbsolutePublished]
}

/// What walking an export from its catalog.json found.
#[derive(Debug, Default)]
struct Walk {
    /// Catalog, collection and part documents by file.
    nodes: BTreeMap<PathBuf, Value>,
    /// Item documents by file.
    items: BTreeMap<PathBuf, Value>,
}

/// The file an href of the document at `from` names, checked to lie inside `out` and exist.
fn resolve(out: &Path, from: &Path, href: &str, kind: CatalogType) -> PathBuf {
    let path = if let Some(rest) = href.strip_prefix(BASE) {
        assert_eq!(
            kind,
            CatalogType::AbsolutePublished,
            "{}: absolute href {href}",
            from.display()
        );
        out.join(rest)
    } else {
        assert_ne!(
            kind,
            CatalogType::AbsolutePublished,
            "{}: relative href {href}",
            from.display()
        );
        assert!(!href.contains("://"), "{}: foreign href {href}", from.display());
        from.parent().unwrap().join(href)
    };
    let canonical = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("{}: href {href} -> {}: {e}", from.display(), path.display()));
    assert!(canonical.starts_with(out.canonicalize().unwrap()), "{href} leaves the export");
    canonical
}

fn links<'a>(doc: &'a Value, rel: &str) -> Vec<&'a str> {
    doc["links"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["rel"] == rel)
        .map(|l| l["href"].as_str().unwrap())
        .collect()
}

fn one_link<'a>(doc: &'a Value, rel: &str, file: &Path) -> &'a str {
    let found = links(doc, rel);
    assert_eq!(found.len(), 1, "{}: {} '{rel}' links", file.display(), found.len());
    found[0]
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Walks the export from catalog.json and checks every structural link: each href resolves
/// inside `out`; root links lead to catalog.json; each child's and item's parent is the
/// document that listed it; each item's collection link leads to its collection; self links
/// (published types only) are the document's URL; no document lists more than `max_links`.
fn walk(out: &Path, kind: CatalogType, max_links: usize) -> Walk {
    let out = out.canonicalize().unwrap();
    let root = out.join("catalog.json");
    let mut walk = Walk::default();
    let mut queue = vec![(root.clone(), None::<PathBuf>)];
    let self_check = |doc: &Value, file: &Path| {
        let own = links(doc, "self");
        if kind == CatalogType::SelfContained {
            assert!(own.is_empty(), "{}: a self link in a self-contained catalog", file.display());
        } else {
            let rel = file.strip_prefix(&out).unwrap().to_str().unwrap();
            assert_eq!(own, [format!("{BASE}{rel}")], "{}", file.display());
        }
    };
    while let Some((file, parent)) = queue.pop() {
        let doc = read_json(&file);
        assert_ne!(doc["type"], "Feature");
        assert_eq!(resolve(&out, &file, one_link(&doc, "root", &file), kind), root);
        match &parent {
            Some(p) => assert_eq!(&resolve(&out, &file, one_link(&doc, "parent", &file), kind), p),
            None => assert!(links(&doc, "parent").is_empty()),
        }
        self_check(&doc, &file);
        let children = links(&doc, "child");
        let items = links(&doc, "item");
        assert!(
            children.len() + items.len() <= max_links,
            "{} lists {} entries (max {max_links})",
            file.display(),
            children.len() + items.len()
        );
        for href in children {
            let child = resolve(&out, &file, href, kind);
            queue.push((child, Some(file.clone())));
        }
        for href in items {
            let item_file = resolve(&out, &file, href, kind);
            let item = read_json(&item_file);
            assert_eq!(item["type"], "Feature");
            assert_eq!(resolve(&out, &item_file, one_link(&item, "root", &item_file), kind), root);
            assert_eq!(
                resolve(&out, &item_file, one_link(&item, "parent", &item_file), kind),
                file
            );
            let collection =
                resolve(&out, &item_file, one_link(&item, "collection", &item_file), kind);
            assert_eq!(read_json(&collection)["id"], item["collection"], "{}", item_file.display());
            self_check(&item, &item_file);
            assert!(walk.items.insert(item_file, item).is_none(), "an item listed twice");
        }
        assert!(walk.nodes.insert(file, doc).is_none(), "a catalog listed twice");
    }
    walk
}

/// Every stored item of the catalog, by (collection, id).
fn stored_items(catalog: &Path) -> HashMap<(String, String), Value> {
    let catalog = Catalog::open_read_only(catalog).unwrap();
    let mut stmt =
        catalog.connection().prepare("SELECT collection, id, content FROM items").unwrap();
    stmt.query_map([], |r| {
        let content: String = r.get(2)?;
        Ok(((r.get(0)?, r.get(1)?), serde_json::from_str(&content).unwrap()))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// A document without its links (and with its collection field, which an export adds).
fn without_links(doc: &Value, collection: &str) -> Value {
    let mut doc = doc.clone();
    let map = doc.as_object_mut().unwrap();
    map.remove("links");
    map.entry("collection").or_insert(json!(collection));
    doc
}

/// Checks that the walk found exactly the stored items, each equal to its stored document
/// apart from links, and that item files keep every stored link that is not structural.
fn assert_items_match(catalog: &Path, walk: &Walk) {
    let stored = stored_items(catalog);
    assert_eq!(walk.items.len(), stored.len(), "items reachable from catalog.json");
    let mut seen = HashSet::new();
    for (file, item) in &walk.items {
        let key = (
            item["collection"].as_str().unwrap().to_string(),
            item["id"].as_str().unwrap().to_string(),
        );
        let original = stored.get(&key).unwrap_or_else(|| panic!("{}: not stored", file.display()));
        assert_eq!(
            without_links(item, &key.0),
            without_links(original, &key.0),
            "{}",
            file.display()
        );
        let kept: Vec<&Value> = original["links"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|l| {
                        !["root", "parent", "self", "collection"]
                            .contains(&l["rel"].as_str().unwrap_or(""))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let written: Vec<&Value> = item["links"].as_array().unwrap().iter().collect();
        for link in kept {
            assert!(written.contains(&link), "{}: stored link {link} lost", file.display());
        }
        assert!(seen.insert(key), "an item written twice");
    }
}

fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (tree(a), tree(b));
    let only_a: Vec<&String> = ta.keys().filter(|k| !tb.contains_key(*k)).collect();
    let only_b: Vec<&String> = tb.keys().filter(|k| !ta.contains_key(*k)).collect();
    let differ: Vec<&String> =
        ta.keys().filter(|k| tb.get(*k).is_some_and(|v| v != &ta[*k])).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty() && differ.is_empty(),
        "{} and {} differ: only in the first {only_a:?}, only in the second {only_b:?}, different {differ:?}",
        a.display(),
        b.display()
    );
}

#[test]
fn every_catalog_type_links_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let Some(catalog) = real_catalog("every_catalog_type_links_every_item", dir.path()) else {
        return;
    };
    for kind in all_types() {
        let out = dir.path().join(format!("out-{}", kind.name()));
        let report = export(&catalog, &out, &options(kind, Layout::Default, 10_000)).unwrap();
        assert_eq!((report.items, report.items_written), (130, 130));
        let walk = walk(&out, kind, 10_000);
        assert_items_match(&catalog, &walk);
        // The default layout: COLLECTION/ITEM/ITEM.json, collections with current extents.
        let joplin = read_json(&out.join("joplin/collection.json"));
        let stored = Catalog::open_read_only(&catalog).unwrap().collection("joplin").unwrap();
        assert_eq!(joplin["extent"], stored["extent"]);
        let id = "f7f164c9-cfdf-436d-a3f0-69864c38ba2a";
        assert!(out.join(format!("joplin/{id}/{id}.json")).is_file());
        let root = read_json(&out.join("catalog.json"));
        assert_eq!(root["id"], "real");
        // joplin, and the two collections of the pgstac test set.
        assert_eq!(links(&root, "child").len(), 3);
    }
}

#[test]
fn layouts_make_sub_catalogs_per_value() {
    let dir = tempfile::tempdir().unwrap();
    let Some(catalog) = real_catalog("layouts_make_sub_catalogs_per_value", dir.path()) else {
        return;
    };
    let out = dir.path().join("by-month");
    let layout = Layout::Template("${collection}/${year}/${month}".into());
    export(&catalog, &out, &options(CatalogType::SelfContained, layout, 10_000)).unwrap();
    let w = walk(&out, CatalogType::SelfContained, 10_000);
    assert_items_match(&catalog, &w);
    for (file, item) in &w.items {
        let datetime = item["properties"]["datetime"].as_str().unwrap();
        let rel = file.strip_prefix(out.canonicalize().unwrap()).unwrap();
        let parts: Vec<&str> = rel.iter().map(|p| p.to_str().unwrap()).collect();
        assert_eq!(parts.len(), 5, "{}", rel.display());
        assert_eq!((parts[1], parts[2]), (&datetime[..4], &datetime[5..7]), "{}", rel.display());
        let month = read_json(&file.parent().unwrap().parent().unwrap().join("catalog.json"));
        assert_eq!(month["id"], &datetime[5..7]);
    }
    // A property segment: joplin items have no `naip:year`, so they go to _none_.
    let out = dir.path().join("by-property");
    let layout = Layout::Template("${collection}/p-${naip:year}".into());
    export(&catalog, &out, &options(CatalogType::RelativePublished, layout, 10_000)).unwrap();
    let w = walk(&out, CatalogType::RelativePublished, 10_000);
    assert_items_match(&catalog, &w);
    assert_eq!(read_json(&out.join("joplin/p-_none_/catalog.json"))["id"], "p-_none_");
    assert_eq!(read_json(&out.join("pgstac-test-collection/p-2011/catalog.json"))["id"], "p-2011");
}

#[test]
fn max_links_splits_into_parts() {
    let dir = tempfile::tempdir().unwrap();
    let Some(catalog) = real_catalog("max_links_splits_into_parts", dir.path()) else { return };
    for (max, layout) in
        [(3, Layout::Default), (4, Layout::Template("${collection}/${day}".into()))]
    {
        for kind in all_types() {
            let out = dir.path().join(format!("parts-{max}-{}", kind.name()));
            export(&catalog, &out, &options(kind, layout.clone(), max)).unwrap();
            let w = walk(&out, kind, max);
            assert_items_match(&catalog, &w);
            // 100 items in one collection at 3 per document need parts of parts.
            assert!(w.nodes.len() > 40, "{} documents", w.nodes.len());
        }
    }
    let out = dir.path().join("parts-3-self-contained");
    assert!(out.join("pgstac-test-collection/part-0001/part-0001/catalog.json").is_file());
    assert!(
        export(
            &catalog,
            &dir.path().join("x"),
            &options(CatalogType::SelfContained, Layout::Default, 1)
        )
        .is_err()
    );
}

/// Ids that try to escape, collide or upset a file system.
fn hostile_ids() -> Vec<String> {
    let mut ids: Vec<String> = [
        "../../escape",
        "a/b",
        "a\\b",
        "..",
        ".",
        ".hidden",
        "trailing.",
        "trailing ",
        "nul\0byte",
        "ctl\u{1}\u{7f}",
        "CON",
        "con.txt",
        "Lpt1",
        "com9.tar.gz",
        "catalog.json",
        "collection.json",
        "Case",
        "case",
        "CASE",
        "~",
        "~7E",
        "%2F",
        "a%2Fb",
        "tab\there",
        "é",
        "e\u{301}",
        " ",
        "part-0001",
        "_none_",
        "x:y*?<>|\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.push("L".repeat(400));
    ids.push(format!("{}x", "L".repeat(399)));
    ids.push("é".repeat(150));
    ids
}

fn hostile_item(collection: &str, id: &str, n: usize) -> String {
    json!({
        "type": "Feature", "stac_version": "1.0.0", "id": id, "collection": collection,
        "geometry": {"type": "Point", "coordinates": [n as f64 * 0.01, 1.0]},
        "bbox": [n as f64 * 0.01, 1.0, n as f64 * 0.01, 1.0],
        "properties": {"datetime": format!("2020-01-{:02}T00:00:00Z", n % 28 + 1), "kind": id},
        "links": [{"rel": "self", "href": "../../../etc/passwd"}, {"rel": "license", "href": "https://x/l"}],
        "assets": {}
    })
    .to_string()
}

fn hostile_catalog(dir: &Path) -> PathBuf {
    let path = dir.join("hostile.stacdb");
    let collections = ["../evil", "CON", "Evil", "evil", "ok"];
    let mut lines = Vec::new();
    for c in collections {
        lines.push(
            json!({"type": "Collection", "stac_version": "1.0.0", "id": c, "description": "d",
                   "license": "proprietary", "links": [],
                   "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                              "temporal": {"interval": [[null, null]]}}})
            .to_string(),
        );
    }
    for (n, id) in hostile_ids().iter().enumerate() {
        for c in ["../evil", "ok", "evil"] {
            lines.push(hostile_item(c, id, n));
        }
    }
    ingest_lines(&path, &lines, Mode::Insert);
    path
}

/// Every path under `out`, checked for case-insensitive uniqueness per directory.
fn assert_case_unique(out: &Path) {
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut seen = HashSet::new();
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().expect("ASCII names").to_string();
            assert!(name.is_ascii() && name.len() <= 255, "{name}");
            assert!(
                seen.insert(name.to_ascii_lowercase()),
                "case twins in {}: {name}",
                d.display()
            );
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
}

#[test]
fn hostile_ids_stay_inside_and_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = hostile_catalog(dir.path());
    let stored = stored_items(&catalog);
    assert_eq!(stored.len(), hostile_ids().len() * 3);
    let layouts = [
        Layout::Default,
        Layout::Template("${collection}/${kind}".into()),
        Layout::Template("${collection}/${year}/x${kind}".into()),
    ];
    for (l, layout) in layouts.iter().enumerate() {
        for kind in all_types() {
            for max in [10_000, 3] {
                // Each export in a fresh parent, to see that nothing is written beside it.
                let parent = dir.path().join(format!("p-{l}-{}-{max}", kind.name()));
                std::fs::create_dir(&parent).unwrap();
                let out = parent.join("out");
                let report = export(&catalog, &out, &options(kind, layout.clone(), max)).unwrap();
                assert_eq!(report.items as usize, stored.len());
                let names: Vec<_> =
                    std::fs::read_dir(&parent).unwrap().map(|e| e.unwrap().file_name()).collect();
                assert_eq!(names, ["out"], "written beside the export");
                let w = walk(&out, kind, max);
                assert_items_match(&catalog, &w);
                assert_case_unique(&out);
                // Every file on disk is the manifest, the index, or a document the walk met.
                let files = tree(&out);
                assert_eq!(files.len(), w.items.len() + w.nodes.len() + 2);
            }
        }
    }
}

#[test]
fn escaping_is_injective_and_reversible() {
    use stacdb::export::paths::{escape, unescape};
    let ids = hostile_ids();
    let names: HashSet<String> = ids.iter().map(|i| escape(i)).collect();
    assert_eq!(names.len(), ids.len());
    for id in &ids {
        let name = escape(id);
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)), "{name}");
        assert!(!name.starts_with('.') && !name.ends_with('.') && name.len() <= 200, "{name}");
        if id.len() < 60 {
            assert_eq!(unescape(&name).as_deref(), Some(id.as_str()));
        }
    }
}

/// Changes to the real catalog: new items, a changed one, a deleted one.
fn change_catalog(catalog: &Path, round: usize) {
    let stored = stored_items(catalog);
    let mut keys: Vec<&(String, String)> =
        stored.keys().filter(|(c, _)| c == "pgstac-test-collection").collect();
    keys.sort();
    let mut changed = stored[keys[round * 7 % keys.len()]].clone();
    changed["properties"]["datetime"] = json!(format!("20{:02}-03-04T05:06:07Z", 10 + round));
    changed["properties"]["platform"] = json!(format!("changed-{round}"));
    let mut lines = vec![changed.to_string()];
    for n in 0..5 {
        let mut new = stored[keys[n]].clone();
        new["id"] = json!(format!("new-{round}-{n}"));
        lines.push(new.to_string());
    }
    ingest_lines(catalog, &lines, Mode::Upsert);
    let (c, id) = keys[(round * 13 + 3) % keys.len()];
    if c == "pgstac-test-collection" && !id.starts_with("new") {
        Catalog::open(catalog).unwrap().delete_items(c, std::slice::from_ref(id), false).unwrap();
    }
}

#[test]
fn incremental_export_is_byte_identical_to_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let Some(catalog) =
        real_catalog("incremental_export_is_byte_identical_to_a_fresh_one", dir.path())
    else {
        return;
    };
    let layouts = [
        (Layout::Default, 10_000),
        (Layout::Default, 3),
        (Layout::Template("${collection}/${year}/${platform}".into()), 4),
    ];
    for (l, (layout, max)) in layouts.iter().enumerate() {
        for kind in [CatalogType::SelfContained, CatalogType::AbsolutePublished] {
            let out = dir.path().join(format!("inc-{l}-{}", kind.name()));
            let mut opts = options(kind, layout.clone(), *max);
            export(&catalog, &out, &opts).unwrap();
            opts.incremental = true;
            // Nothing changed: nothing rewritten.
            let report = export(&catalog, &out, &opts).unwrap();
            assert_eq!(
                (report.kind, report.items_written, report.files_deleted),
                ("incremental", 0, 0)
            );
            for round in 0..2 {
                change_catalog(
                    &catalog,
                    l * 10 + round + usize::from(kind != CatalogType::SelfContained) * 5,
                );
                let report = export(&catalog, &out, &opts).unwrap();
                assert_eq!(report.kind, "incremental");
                // 6 items changed; with small parts, inserts shift items across part
                // boundaries, and those are rewritten too.
                if *max == 10_000 {
                    assert!(report.items_written <= 6, "{report:?}");
                }
                let fresh = dir.path().join(format!("fresh-{l}-{}-{round}", kind.name()));
                opts.incremental = false;
                export(&catalog, &fresh, &opts).unwrap();
                opts.incremental = true;
                assert_same_tree(&out, &fresh);
                walk(&out, kind, *max);
            }
        }
    }
}

#[test]
fn incremental_handles_hostile_ids_and_case_twins() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = hostile_catalog(dir.path());
    let out = dir.path().join("out");
    let mut opts =
        options(CatalogType::SelfContained, Layout::Template("${collection}/${kind}".into()), 3);
    export(&catalog, &out, &opts).unwrap();
    // A new case twin renames its twins; deleting one renames them back.
    ingest_lines(
        &catalog,
        &[hostile_item("ok", "cAsE", 1), hostile_item("ok", "Trailing.", 2)],
        Mode::Insert,
    );
    Catalog::open(&catalog)
        .unwrap()
        .delete_items("ok", &["Case".into(), "..".into()], false)
        .unwrap();
    opts.incremental = true;
    export(&catalog, &out, &opts).unwrap();
    opts.incremental = false;
    export(&catalog, &dir.path().join("fresh"), &opts).unwrap();
    assert_same_tree(&out, &dir.path().join("fresh"));
    assert_case_unique(&out);
}

#[test]
fn incremental_falls_back_or_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let Some(catalog) = real_catalog("incremental_falls_back_or_refuses", dir.path()) else {
        return;
    };
    let out = dir.path().join("out");
    let mut opts = options(CatalogType::SelfContained, Layout::Default, 10_000);
    export(&catalog, &out, &opts).unwrap();
    // A second export without --incremental or --overwrite is refused.
    let e = export(&catalog, &out, &opts).unwrap_err().to_string();
    assert!(e.contains("--incremental") && e.contains("--overwrite"), "{e}");
    // Other options are refused with the way out.
    let mut other = opts.clone();
    other.incremental = true;
    other.max_links = 5;
    let e = export(&catalog, &out, &other).unwrap_err().to_string();
    assert!(e.contains("--max-links 10000") && e.contains("--overwrite"), "{e}");
    // A truncated change log: a full export, said so, with the same result.
    change_catalog(&catalog, 0);
    {
        let conn = rusqlite::Connection::open(&catalog).unwrap();
        conn.execute("DELETE FROM changes WHERE seq = (SELECT max(seq) - 1 FROM changes)", [])
            .unwrap();
    }
    opts.incremental = true;
    let report = export(&catalog, &out, &opts).unwrap();
    assert_eq!(report.kind, "full");
    assert!(report.notes.iter().any(|n| n.contains("truncated")), "{:?}", report.notes);
    opts.incremental = false;
    export(&catalog, &dir.path().join("fresh"), &opts).unwrap();
    assert_same_tree(&out, &dir.path().join("fresh"));
    // An unfinished incremental run (manifest marked incomplete) is redone in full.
    let manifest = out.join(".stacdb-export.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"complete\": true", "\"complete\": false");
    std::fs::write(&manifest, text).unwrap();
    opts.incremental = true;
    let report = export(&catalog, &out, &opts).unwrap();
    assert_eq!(report.kind, "full", "{report:?}");
    assert_same_tree(&out, &dir.path().join("fresh"));
    // --overwrite replaces it.
    opts.incremental = false;
    opts.overwrite = true;
    assert_eq!(export(&catalog, &out, &opts).unwrap().kind, "full");
    assert_same_tree(&out, &dir.path().join("fresh"));
}

#[test]
fn a_failed_export_leaves_nothing_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some((catalog, parent, out, opts)) =
        exported_once("a_failed_export_leaves_nothing_and_changes_nothing", dir.path())
    else {
        return;
    };
    let before = tree(&out);
    // Damage one stored item (the export fails on it, late: after other files were written).
    {
        let conn = rusqlite::Connection::open(&catalog).unwrap();
        conn.execute(
            "UPDATE items SET content = '[1, 2]' WHERE id = (SELECT max(id) FROM items)",
            [],
        )
        .unwrap();
    }
    let e = export(&catalog, &parent.join("new"), &opts).unwrap_err().to_string();
    assert!(e.contains("not a JSON object"), "{e}");
    let mut overwrite = opts.clone();
    overwrite.overwrite = true;
    assert!(export(&catalog, &out, &overwrite).is_err());
    let names: Vec<_> =
        std::fs::read_dir(&parent).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["out"], "a failed export left something behind");
    assert_eq!(tree(&out), before, "a failed --overwrite changed the old export");
    // A directory that is not an export is refused and left alone.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let mut opts = opts.clone();
    opts.overwrite = true;
    let e = export(&catalog, &foreign, &opts).unwrap_err().to_string();
    assert!(e.contains("not a stacdb export"), "{e}");
    assert_eq!(tree(&foreign).len(), 1);
}

/// What a killed export leaves is cleaned up by the next one: side directories of processes
/// that are gone are removed, and an `--overwrite` killed between its two renames (no output
/// directory, the old export set aside) gets its finished export put in place.
#[test]
fn the_next_export_cleans_up_after_killed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let Some((catalog, parent, out, opts)) =
        exported_once("the_next_export_cleans_up_after_killed_ones", dir.path())
    else {
        return;
    };
    let reference = tree(&out);
    // A process id above the kernel's maximum (4,194,304) is never running.
    let (gone, other_gone) = (4_194_400, 4_194_401);
    let side = |what: &str, pid: u32| parent.join(format!(".out.stacdb-{what}-{pid}"));
    // A killed fresh export: a partial side directory.
    std::fs::create_dir_all(side("export", other_gone).join("joplin")).unwrap();
    // A killed --overwrite, between `out -> old` and `side -> out`.
    std::fs::rename(&out, side("old", gone)).unwrap();
    export(&catalog, &side("export", gone), &opts).unwrap();
    // Not ours to touch: a name that only looks alike, and another output's side directory.
    std::fs::create_dir(parent.join(".out.stacdb-export-notapid")).unwrap();
    std::fs::create_dir(parent.join(".other.stacdb-export-4194400")).unwrap();
    let report = export(&catalog, &out, &ExportOptions { overwrite: true, ..opts.clone() });
    let report = report.unwrap();
    assert!(
        report.notes.iter().any(|n| n.contains("had finished: put in place")),
        "{:?}",
        report.notes
    );
    assert_eq!(tree(&out), reference);
    let mut names: Vec<String> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, [".other.stacdb-export-4194400", ".out.stacdb-export-notapid", "out"]);
    // Set aside with no finished export beside it: the old export is the only copy, and is
    // restored, not removed.
    std::fs::rename(&out, side("old", gone)).unwrap();
    let report = export(&catalog, &out, &ExportOptions { overwrite: true, ..opts.clone() });
    let report = report.unwrap();
    assert!(report.notes.iter().any(|n| n.starts_with("restored ")), "{:?}", report.notes);
    assert_eq!(tree(&out), reference);
    assert!(!side("old", gone).exists());
}

#[test]
fn ndjson_loads_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let Some(catalog) = real_catalog("ndjson_loads_back_equal", dir.path()) else { return };
    let out = dir.path().join("dump");
    let opts = ExportOptions { format: ExportFormat::Ndjson, ..Default::default() };
    let report = export(&catalog, &out, &opts).unwrap();
    assert_eq!(report.items_written, 130);
    assert!(out.join("collections.ndjson").is_file());
    assert!(out.join("items/joplin.ndjson").is_file());
    for line in std::fs::read_to_string(out.join("items/joplin.ndjson")).unwrap().lines() {
        let item: Value = serde_json::from_str(line).unwrap();
        assert_eq!(item["collection"], "joplin");
    }
    let copy = dir.path().join("copy.stacdb");
    let mut inputs = vec![Input::Path(out.join("collections.ndjson"))];
    inputs.push(Input::Path(out.join("items")));
    let options = IngestOptions::default();
    Catalog::ingest_path(&copy, stacdb::DEFAULT_LOCK_TIMEOUT, &inputs, &options, &Silent).unwrap();
    assert_eq!(stored_items(&copy), stored_items(&catalog));
    let (a, b) =
        (Catalog::open_read_only(&catalog).unwrap(), Catalog::open_read_only(&copy).unwrap());
    for id in ["joplin", "pgstac-test-collection"] {
        assert_eq!(a.collection(id).unwrap(), b.collection(id).unwrap());
    }
    // Incremental NDJSON equals a fresh one too.
    change_catalog(&catalog, 1);
    let inc = ExportOptions { incremental: true, ..opts.clone() };
    let report = export(&catalog, &out, &inc).unwrap();
    assert_eq!(report.items_written, 104, "only the changed collection's file: {report:?}");
    export(&catalog, &dir.path().join("fresh"), &opts).unwrap();
    assert_same_tree(&out, &dir.path().join("fresh"));
}

#[test]
fn as_imported_rebuilds_the_imported_tree() {
    let dir = tempfile::tempdir().unwrap();
    let Some(data) = common::data_dir("as_imported_rebuilds_the_imported_tree") else { return };
    let source = common::data_file(
        &data,
        "fixtures/pystac/tests/data-files/catalogs/test-case-1/catalog.json",
    );
    let catalog = dir.path().join("imported.stacdb");
    let ran = common::stacdb(["ingest".as_ref(), catalog.as_os_str(), source.as_os_str()]);
    assert!(ran.status.success(), "import: {}", String::from_utf8_lossy(&ran.stderr));
    let out = dir.path().join("out");
    let opts = options(CatalogType::SelfContained, Layout::AsImported, 10_000);
    let report = export(&catalog, &out, &opts).unwrap();
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    let w = walk(&out, CatalogType::SelfContained, 10_000);
    assert_items_match(&catalog, &w);
    // The same tree of ids as the source: each document's id with its parent's id.
    let shape = |root: &Path, w: &Walk| -> BTreeMap<String, Vec<String>> {
        let mut shape = BTreeMap::new();
        for (file, doc) in w.nodes.iter().chain(&w.items) {
            let parent = links(doc, "parent")
                .first()
                .map(|h| read_json(&file.parent().unwrap().join(h))["id"].clone());
            shape
                .entry(format!("{}", parent.unwrap_or(json!(null))))
                .or_insert_with(Vec::new)
                .push(doc["id"].as_str().unwrap().to_string());
        }
        let _ = root;
        shape.values_mut().for_each(|v| v.sort());
        shape
    };
    let src = walk_source(&source);
    assert_eq!(shape(&out, &w), shape(source.parent().unwrap(), &src));
    // Max-links splits an imported tree too, keeping every item.
    let out = dir.path().join("out-3");
    export(&catalog, &out, &options(CatalogType::SelfContained, Layout::AsImported, 3)).unwrap();
    assert_items_match(&catalog, &walk(&out, CatalogType::SelfContained, 3));
}

/// Walks a source static catalog (relative links only) without the export's checks.
fn walk_source(root: &Path) -> Walk {
    let mut w = Walk::default();
    let mut queue = vec![root.to_path_buf()];
    while let Some(file) = queue.pop() {
        let doc = read_json(&file);
        for href in links(&doc, "child") {
            queue.push(file.parent().unwrap().join(href).canonicalize().unwrap());
        }
        for href in links(&doc, "item") {
            let f = file.parent().unwrap().join(href).canonicalize().unwrap();
            w.items.insert(f.clone(), read_json(&f));
        }
        w.nodes.insert(file, doc);
    }
    w
}

#[test]
fn cli_exports_with_a_summary_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let help = common::stacdb_ok(["export", "--help"]);
    for needle in [
        "Examples:",
        "--incremental",
        "--layout",
        "${collection}/${year}/${month}",
        "~XX",
        "--format ndjson",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}");
    }
    let Some(catalog) = real_catalog("cli_exports_with_a_summary_and_usage_errors", dir.path())
    else {
        return;
    };
    let out = dir.path().join("out");
    let text = common::stacdb_ok([
        "export".as_ref(),
        catalog.as_os_str(),
        out.as_os_str(),
        "--threads".as_ref(),
        "1".as_ref(),
    ]);
    assert!(text.contains("130 items") && text.contains("items/s"), "{text}");
    let bad = common::stacdb([
        "export".as_ref(),
        catalog.as_os_str(),
        dir.path().join("x").as_os_str(),
        "--catalog-type".as_ref(),
        "absolute-published".as_ref(),
    ]);
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--base-url"));
    let again = common::stacdb(["export".as_ref(), catalog.as_os_str(), out.as_os_str()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains(&*out.to_string_lossy()));
}
