//! Helpers shared by the ingest integration tests (`roundtrip`, `edge_cases`, `ingest_modes`).
//!
//! Expected values are computed here independently of the crate (own datetime parsing, own
//! bbox and extent arithmetic), so a test compares stacdb against the input, not against itself.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime};
use rusqlite::OptionalExtension;
use serde_json::Value;
use stacdb::{Catalog, IngestOptions, IngestReport, Input, Mode, Silent};

/// A catalog in a temporary directory, removed when dropped.
pub struct TempCatalog {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub catalog: Catalog,
}

/// A new, empty catalog file in its own temporary directory.
pub fn temp_catalog() -> TempCatalog {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("test.stacdb");
    let catalog = Catalog::create(&path).expect("create catalog");
    TempCatalog { dir, path, catalog }
}

/// Ingest options built field by field.
pub fn options(mode: Mode, create_collections: bool, collection: Option<&str>) -> IngestOptions {
    IngestOptions {
        mode,
        skip_invalid: false,
        create_collections,
        collection: collection.map(str::to_string),
    }
}

/// Ingests files or directories.
pub fn ingest<P: AsRef<Path>>(
    catalog: &mut Catalog,
    paths: &[P],
    options: &IngestOptions,
) -> stacdb::Result<IngestReport> {
    let inputs: Vec<Input> = paths.iter().map(|p| Input::Path(p.as_ref().to_path_buf())).collect();
    catalog.ingest(&inputs, options, &Silent)
}

/// The repository's own small fixtures for these tests.
pub fn fixture(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/ingest").join(relative);
    assert!(path.exists(), "missing fixture {}", path.display());
    path
}

/// Files a directory walk picks up (`.json`, `.geojson`, `.ndjson`, `.jsonl`, each maybe
/// `.gz`), sorted; a file is returned as itself.
pub fn ingestible_files(path: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                let name = path.file_name().unwrap().to_string_lossy().to_ascii_lowercase();
                let name = name.strip_suffix(".gz").unwrap_or(&name);
                if [".json", ".geojson", ".ndjson", ".jsonl"].iter().any(|e| name.ends_with(e)) {
                    out.push(path);
                }
            }
        }
    }
    if path.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files);
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    }
}

/// The JSON values of a JSON or NDJSON file (gzip allowed), or why it is not JSON.
pub fn try_read_values(path: &Path) -> Result<Vec<Value>, String> {
    use std::io::Read;
    let mut bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut text)
            .map_err(|e| e.to_string())?;
        bytes = text;
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => Ok(vec![value]),
        Err(whole) => bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.trim_ascii().is_empty())
            .map(|line| serde_json::from_slice(line).map_err(|_| whole.to_string()))
            .collect(),
    }
}

/// The STAC documents of a JSON or NDJSON file: arrays, FeatureCollections and
/// `{"collections": [...]}` lists are split into their members.
pub fn file_documents(path: &Path) -> Vec<Value> {
    crate::common::read_documents(path).into_iter().flat_map(split).collect()
}

pub fn split(value: Value) -> Vec<Value> {
    match value {
        Value::Array(values) => values,
        Value::Object(mut o)
            if o.get("type").and_then(Value::as_str) == Some("FeatureCollection") =>
        {
            match o.remove("features") {
                Some(Value::Array(features)) => features,
                _ => panic!("FeatureCollection without features"),
            }
        }
        Value::Object(mut o) if !o.contains_key("type") && o.get("collections").is_some() => {
            match o.remove("collections") {
                Some(Value::Array(c)) => c,
                _ => panic!("collections is not an array"),
            }
        }
        other => vec![other],
    }
}

/// Every document under the given files or directories, with the file it came from.
pub fn documents_under<P: AsRef<Path>>(paths: &[P]) -> Vec<(PathBuf, Value)> {
    let mut docs = Vec::new();
    for path in paths {
        for file in ingestible_files(path.as_ref()) {
            for doc in file_documents(&file) {
                docs.push((file.clone(), doc));
            }
        }
    }
    docs
}

pub fn is_item(v: &Value) -> bool {
    v["type"] == "Feature" && v["stac_version"].is_string()
}

pub fn is_collection(v: &Value) -> bool {
    v["type"] == "Collection"
        || (v.get("type").is_none() && v["stac_version"].is_string() && v.get("extent").is_some())
}

pub fn is_catalog(v: &Value) -> bool {
    v["type"] == "Catalog"
}

pub fn id_of(v: &Value) -> &str {
    v["id"].as_str().expect("document id")
}

/// Asserts two documents are equal as JSON values and serialise identically (same key order,
/// same number text).
pub fn assert_same_json(stored: &Value, input: &Value, context: &str) {
    assert_eq!(stored, input, "{context}: stored document differs from the input");
    assert_eq!(
        serde_json::to_string(stored).unwrap(),
        serde_json::to_string(input).unwrap(),
        "{context}: stored document serialises differently (key order or number text)"
    );
}

/// Asserts `check()` finds nothing wrong.
pub fn assert_check_ok(catalog: &Catalog, context: &str) {
    let report = catalog.check().expect("check runs");
    assert!(report.is_ok(), "{context}: check found problems: {:#?}", report.problems);
}

/// Microseconds since the epoch of an RFC 3339 datetime, also accepting a space separator and
/// a missing offset (UTC), written independently of stacdb's parser.
pub fn micros(s: &str) -> i64 {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return dt.timestamp_micros();
    }
    let t = s.replacen(' ', "T", 1);
    if let Ok(dt) = DateTime::parse_from_rfc3339(&t) {
        return dt.timestamp_micros();
    }
    NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("test cannot parse datetime {s:?}: {e}"))
        .and_utc()
        .timestamp_micros()
}

/// An item's (start, end) in microseconds: the range when given, else `datetime` for both.
pub fn item_time(item: &Value) -> (i64, i64) {
    let p = &item["properties"];
    let get = |name: &str| p[name].as_str().map(micros);
    let datetime = get("datetime");
    let start = get("start_datetime").or(datetime).expect("item has a start");
    let end = get("end_datetime").or(datetime).expect("item has an end");
    (start, end)
}

fn coordinates_bounds(value: &Value, b: &mut Option<[f64; 4]>) {
    match value {
        Value::Array(a) if a.first().is_some_and(Value::is_number) => {
            let (x, y) = (a[0].as_f64().unwrap(), a[1].as_f64().unwrap());
            *b = Some(match *b {
                None => [x, y, x, y],
                Some(c) => [c[0].min(x), c[1].min(y), c[2].max(x), c[3].max(y)],
            });
        }
        Value::Array(a) => a.iter().for_each(|v| coordinates_bounds(v, b)),
        _ => {}
    }
}

/// The 2-D bbox of a GeoJSON geometry's coordinates.
pub fn geometry_bounds(geometry: &Value) -> Option<[f64; 4]> {
    let mut b = None;
    match geometry["type"].as_str() {
        Some("GeometryCollection") => {
            for g in geometry["geometries"].as_array().unwrap() {
                coordinates_bounds(&g["coordinates"], &mut b);
            }
        }
        Some(_) => coordinates_bounds(&geometry["coordinates"], &mut b),
        None => {}
    }
    b
}

/// The 2-D part of a 4- or 6-number bbox.
pub fn bbox_2d(bbox: &Value) -> Option<[f64; 4]> {
    let n: Vec<f64> = bbox.as_array()?.iter().map(|v| v.as_f64().unwrap()).collect();
    match n.len() {
        4 => Some([n[0], n[1], n[2], n[3]]),
        6 => Some([n[0], n[1], n[3], n[4]]),
        _ => panic!("bbox of {} numbers", n.len()),
    }
}

/// The item's 2-D bbox as stacdb promotes it: the bbox as given, else the geometry's bounds.
pub fn item_bbox(item: &Value) -> Option<[f64; 4]> {
    bbox_2d(&item["bbox"]).or_else(|| geometry_bounds(&item["geometry"]))
}

/// The box a bbox covers on the globe: full longitude range when it crosses the antimeridian
/// or runs past ±180; latitudes within ±90.
pub fn on_globe(b: [f64; 4]) -> [f64; 4] {
    let crosses = b[0] > b[2] || b[0] < -180.0 || b[2] > 180.0;
    let (minx, maxx) = if crosses { (-180.0, 180.0) } else { (b[0], b[2]) };
    [minx, b[1].clamp(-90.0, 90.0), maxx, b[3].clamp(-90.0, 90.0)]
}

/// The union of items' extents: globe bbox and time span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Union {
    pub bbox: Option<[f64; 4]>,
    pub start: i64,
    pub end: i64,
}

pub fn union_of<'a>(items: impl IntoIterator<Item = &'a Value>) -> Option<Union> {
    let mut union: Option<Union> = None;
    for item in items {
        let (start, end) = item_time(item);
        let bbox = item_bbox(item).map(on_globe);
        union = Some(match union {
            None => Union { bbox, start, end },
            Some(u) => Union {
                bbox: match (u.bbox, bbox) {
                    (Some(a), Some(b)) => {
                        Some([a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])])
                    }
                    (a, b) => a.or(b),
                },
                start: u.start.min(start),
                end: u.end.max(end),
            },
        });
    }
    union
}

/// Asserts `catalog.collection(id)` equals the stored document except the first spatial bbox
/// and first temporal interval, which must be the union of `items`.
pub fn assert_current_extent(catalog: &Catalog, id: &str, items: &[&Value]) {
    let document = catalog.collection_document(id).expect("collection document");
    let mut current = catalog.collection(id).expect("collection with current extent");
    let Some(union) = union_of(items.iter().copied()) else {
        assert_same_json(&current, &document, &format!("collection '{id}' without items"));
        return;
    };
    let bbox0 = current["extent"]["spatial"]["bbox"][0].clone();
    let interval0 = current["extent"]["temporal"]["interval"][0].clone();
    match union.bbox {
        Some(b) => {
            let got: Vec<f64> =
                bbox0.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert_eq!(got, b.to_vec(), "collection '{id}': current bbox is not the items' union");
        }
        None => assert_eq!(bbox0, document["extent"]["spatial"]["bbox"][0]),
    }
    let got = (micros(interval0[0].as_str().unwrap()), micros(interval0[1].as_str().unwrap()));
    assert_eq!(
        got,
        (union.start, union.end),
        "collection '{id}': current interval {interval0} is not the items' time span"
    );
    // Everything else is as ingested.
    let original_bbox = document["extent"]["spatial"]["bbox"][0].clone();
    let original_interval = document["extent"]["temporal"]["interval"][0].clone();
    assert!(
        !original_bbox.is_null() && !original_interval.is_null(),
        "collection '{id}': the document has no first bbox or interval to compare"
    );
    current["extent"]["spatial"]["bbox"][0] = original_bbox;
    current["extent"]["temporal"]["interval"][0] = original_interval;
    assert_same_json(&current, &document, &format!("collection '{id}' apart from its extent"));
}

/// One stored item row.
#[derive(Debug, Clone)]
pub struct Row {
    pub fid: i64,
    pub collection: String,
    pub id: String,
    pub start: i64,
    pub end: i64,
    pub bbox: [Option<f64>; 4],
    pub has_geometry: bool,
    pub content: String,
}

/// The stored row of an item.
pub fn item_row(catalog: &Catalog, collection: &str, id: &str) -> Row {
    catalog
        .connection()
        .query_row(
            "SELECT fid, collection, id, datetime_start, datetime_end, minx, miny, maxx, maxy,
                    geometry IS NOT NULL, content
             FROM items WHERE collection = ?1 AND id = ?2",
            [collection, id],
            |r| {
                Ok(Row {
                    fid: r.get(0)?,
                    collection: r.get(1)?,
                    id: r.get(2)?,
                    start: r.get(3)?,
                    end: r.get(4)?,
                    bbox: [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                    has_geometry: r.get(9)?,
                    content: r.get(10)?,
                })
            },
        )
        .unwrap_or_else(|e| panic!("no stored row for item '{id}' in '{collection}': {e}"))
}

/// An item's R-tree box as `[minx, miny, maxx, maxy]`, or `None` when it has no entry.
pub fn rtree_box(catalog: &Catalog, fid: i64) -> Option<[f64; 4]> {
    catalog
        .connection()
        .query_row(
            "SELECT minx, miny, maxx, maxy FROM rtree_items_geometry WHERE id = ?1",
            [fid],
            |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
        )
        .optional()
        .expect("query R-tree")
}

/// Asserts an R-tree box holds `want` tightly (the R-tree keeps 32-bit floats rounded
/// outward).
pub fn assert_rtree_box(have: [f64; 4], want: [f64; 4], context: &str) {
    let holds =
        have[0] <= want[0] && have[1] <= want[1] && have[2] >= want[2] && have[3] >= want[3];
    let tight = (0..4).all(|i| (have[i] - want[i]).abs() < 1e-4);
    assert!(holds && tight, "{context}: R-tree box {have:?}, expected {want:?}");
}

/// Every (collection, id) stored, sorted.
pub fn stored_keys(catalog: &Catalog) -> Vec<(String, String)> {
    let mut stmt =
        catalog.connection().prepare("SELECT collection, id FROM items ORDER BY 1, 2").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

/// Every collection id with a document, sorted.
pub fn stored_collections(catalog: &Catalog) -> Vec<String> {
    let mut stmt = catalog
        .connection()
        .prepare("SELECT id FROM collections WHERE content IS NOT NULL ORDER BY 1")
        .unwrap();
    stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
}

/// Item counts per collection as `info()` reports them.
pub fn info_counts(catalog: &Catalog) -> BTreeMap<String, i64> {
    catalog.info().unwrap().collections.into_iter().map(|c| (c.id, c.item_count)).collect()
}

/// A snapshot of everything a failed write must leave untouched.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub items: Vec<(String, String, String)>,
    pub collections: Vec<(String, Option<String>)>,
    pub changes: i64,
    pub queryables: i64,
    pub rtree: i64,
}

pub fn snapshot(catalog: &Catalog) -> Snapshot {
    let conn = catalog.connection();
    let mut stmt = conn.prepare("SELECT collection, id, content FROM items ORDER BY 1, 2").unwrap();
    let items = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut stmt = conn.prepare("SELECT id, content FROM collections ORDER BY 1").unwrap();
    let collections =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    Snapshot {
        items,
        collections,
        changes: count("SELECT count(*) FROM changes"),
        queryables: count("SELECT count(*) FROM queryables"),
        rtree: count("SELECT count(*) FROM rtree_items_geometry"),
    }
}

/// The rejection inside an ingest error.
pub fn doc_error(result: stacdb::Result<IngestReport>) -> Box<stacdb::DocError> {
    match result {
        Err(stacdb::Error::Document(e)) => e,
        Err(other) => panic!("expected a rejected document, got error: {other}"),
        Ok(report) => panic!("expected a rejected document, but the run succeeded: {report:?}"),
    }
}

/// Ingests a set of inputs into a fresh catalog and asserts that every item and collection in
/// them reads back equal, that counts and current extents match and that `check()` is ok.
/// Items without a `collection` field go to `options.collection`. Returns the catalog.
pub fn assert_round_trip<P: AsRef<Path> + std::fmt::Debug>(
    inputs: &[P],
    options: &IngestOptions,
    expect_items: usize,
    expect_collections: usize,
) -> TempCatalog {
    let docs = documents_under(inputs);
    let items: Vec<&(PathBuf, Value)> = docs.iter().filter(|(_, d)| is_item(d)).collect();
    let collections: Vec<&(PathBuf, Value)> =
        docs.iter().filter(|(_, d)| is_collection(d)).collect();
    assert_eq!(items.len(), expect_items, "items in {inputs:?}");
    assert_eq!(collections.len(), expect_collections, "collections in {inputs:?}");

    let mut t = temp_catalog();
    let report = ingest(&mut t.catalog, inputs, options)
        .unwrap_or_else(|e| panic!("ingest of {inputs:?} failed: {e}"));
    assert_eq!(report.items.inserted as usize, expect_items, "{report:?}");
    assert_eq!(report.collections.inserted as usize, expect_collections, "{report:?}");
    assert_eq!(report.failed, 0);

    let collection_of = |item: &Value| -> String {
        item["collection"]
            .as_str()
            .map(str::to_string)
            .or_else(|| options.collection.clone())
            .expect("item has a collection")
    };
    let mut by_collection: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for (file, item) in &items {
        let collection = collection_of(item);
        let stored = t.catalog.item(&collection, id_of(item)).unwrap_or_else(|e| {
            panic!("{}: item '{}' not readable: {e}", file.display(), id_of(item))
        });
        assert_same_json(&stored, item, &format!("{}: item '{}'", file.display(), id_of(item)));
        by_collection.entry(collection).or_default().push(item);
    }
    for (file, collection) in &collections {
        let stored = t.catalog.collection_document(id_of(collection)).unwrap();
        let context = format!("{}: collection '{}'", file.display(), id_of(collection));
        assert_same_json(&stored, collection, &context);
        by_collection.entry(id_of(collection).to_string()).or_default();
    }
    let created = by_collection.len() - expect_collections;
    assert_eq!(report.collections_created as usize, created, "{report:?}");

    let counts = info_counts(&t.catalog);
    let expected_counts: BTreeMap<String, i64> =
        by_collection.iter().map(|(id, items)| (id.clone(), items.len() as i64)).collect();
    assert_eq!(counts, expected_counts, "info() item counts per collection");
    assert_eq!(t.catalog.info().unwrap().item_count as usize, expect_items);
    for (id, items) in &by_collection {
        assert_current_extent(&t.catalog, id, items);
    }
    assert_check_ok(&t.catalog, &format!("{inputs:?}"));
    t
}
