//! Shared harness for stacdb's fuzz targets: a small catalog built once per process, and the
//! property every search target checks (a search ends in a page or in a clean
//! [`SearchError`], never a panic, never an SQLite or internal error).

use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use stacdb::search::{Request, SearchError, SearchOptions};
use stacdb::{Catalog, Error, IngestOptions, Input, Silent};

/// The items of the fuzz catalog: every JSON type in properties, the indexed properties,
/// text for the FTS index (accents, keywords), ranges, null geometry, an antimeridian box,
/// arrays and nested objects, so that generated SQL meets every kind of stored value.
const ITEMS: &[&str] = &[
    r#"{"type":"Feature","stac_version":"1.1.0","id":"s2-a","collection":"c","geometry":{"type":"Polygon","coordinates":[[[5,45],[11,45],[11,48],[5,48],[5,45]]]},"bbox":[5,45,11,48],"properties":{"datetime":"2021-06-01T10:00:00Z","eo:cloud_cover":3.5,"gsd":10,"platform":"sentinel-2a","constellation":"sentinel-2","instruments":["msi"],"title":"Alpes été","description":"Land cover over Europe","keywords":["land cover","europe"],"view:sun_elevation":61.2,"flag":true,"nested":{"a":[1,2,{"b":"c"}]},"nothing":null},"links":[],"assets":{}}"#,
    r#"{"type":"Feature","stac_version":"1.1.0","id":"s2-b","collection":"c","geometry":{"type":"Point","coordinates":[-73.5,40.7]},"properties":{"datetime":"2022-01-15T00:00:00.123456Z","eo:cloud_cover":87,"gsd":20.5,"platform":"sentinel-2b","instruments":["msi","other"],"title":"New York","keywords":"city urban","flag":false,"count":-3,"big":18446744073709551615,"tiny":1e-300},"links":[],"assets":{}}"#,
    r#"{"type":"Feature","stac_version":"1.0.0","id":"range","collection":"c","geometry":{"type":"MultiPolygon","coordinates":[[[[179,-20],[180,-20],[180,-10],[179,-10],[179,-20]]],[[[-180,-20],[-179,-20],[-179,-10],[-180,-10],[-180,-20]]]]},"bbox":[179,-20,-179,-10],"properties":{"datetime":null,"start_datetime":"1999-12-31T23:00:00-01:00","end_datetime":"2030-01-01T00:00:00Z","platform":"landsat-8","description":"Pacific \"quoted\" (draft) 100%_ match","eo:cloud_cover":"12"},"links":[],"assets":{}}"#,
    r#"{"type":"Feature","stac_version":"1.0.0","id":"nogeom","collection":"d","geometry":null,"properties":{"datetime":"1970-01-01T00:00:00Z","title":"No geometry","keywords":["null","none"],"eo:cloud_cover":null,"gsd":[1,2]},"links":[],"assets":{}}"#,
    r#"{"type":"Feature","stac_version":"0.9.0","id":"modis","collection":"d","geometry":{"type":"Polygon","coordinates":[[[170,10],[190,10],[190,20],[170,20],[170,10]]]},"properties":{"datetime":"2020-02-29T12:00:00+05:30","platform":"terra","constellation":"modis","proj:epsg":4326,"instruments":[]},"links":[],"assets":{}}"#,
    r#"{"type":"Feature","stac_version":"1.1.0","id":"ünïcode id/with spaces","collection":"d","geometry":{"type":"LineString","coordinates":[[0,0],[1,1]]},"bbox":[0,0,0,1,1,1],"properties":{"datetime":"2024-02-29T23:59:59.999999Z","title":"Ünïcödé ÀCCÉNTS","description":"NOT AND OR near","keywords":["a","b"],"platform":"Sentinel-2A"},"links":[],"assets":{}}"#,
];

const COLLECTIONS: &[&str] = &[
    r#"{"type":"Collection","stac_version":"1.1.0","id":"c","description":"fuzz","license":"other","extent":{"spatial":{"bbox":[[-180,-90,180,90]]},"temporal":{"interval":[[null,null]]}},"links":[]}"#,
];

thread_local! {
    static CATALOG: OnceCell<(Catalog, PathBuf)> = const { OnceCell::new() };
}

/// Runs `f` with the fuzz catalog, building it on first use.
pub fn with_catalog<T>(f: impl FnOnce(&Catalog) -> T) -> T {
    CATALOG.with(|cell| {
        let (catalog, _) = cell.get_or_init(build);
        f(catalog)
    })
}

/// The fuzz catalog's file.
pub fn catalog_path() -> PathBuf {
    CATALOG.with(|cell| cell.get_or_init(build).1.clone())
}

fn build() -> (Catalog, PathBuf) {
    let dir = std::env::temp_dir().join(format!("stacdb-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let input = dir.join("input.ndjson");
    let lines: Vec<&str> = COLLECTIONS.iter().chain(ITEMS).copied().collect();
    std::fs::write(&input, lines.join("\n")).expect("write input");
    let path = dir.join("fuzz.stacdb");
    let mut catalog = Catalog::create(&path).expect("create catalog");
    let options = IngestOptions { create_collections: true, ..Default::default() };
    let report = catalog.ingest(&[Input::Path(input)], &options, &Silent).expect("ingest");
    assert_eq!(report.items.inserted, ITEMS.len() as u64);
    // A fixed secret, so that a crash input with a signed token replays.
    catalog
        .connection()
        .execute("UPDATE catalog SET token_secret = ?1", [SECRET.to_vec()])
        .expect("set secret");
    (catalog, path)
}

/// The fuzz catalog's paging secret.
pub const SECRET: [u8; 32] = *b"stacdb fuzz secret, not a secret";

/// Search options for the harness: a time limit well under libFuzzer's.
pub fn options() -> SearchOptions {
    SearchOptions { default_limit: 3, max_limit: 100, timeout: Some(Duration::from_secs(5)) }
}

/// Reads `body` as a search and runs it (a page, and the count) against the fuzz catalog.
/// Panics (a fuzz failure) when anything but a page or a clean [`SearchError`] comes out.
pub fn search(body: &Value) -> Option<stacdb::search::Page> {
    let request = match Request::from_json(body) {
        Ok(request) => request,
        Err(e) => {
            let _ = e.to_string();
            return None;
        }
    };
    with_catalog(|catalog| {
        let page = match catalog.search(&request, &options()) {
            Ok(page) => page,
            Err(Error::Search(e)) => {
                clean(&e, body);
                return None;
            }
            Err(e) => panic!("search failed with an internal error: {e}\nbody: {body}"),
        };
        match catalog.count(&request, &options()) {
            Ok(n) => assert_eq!(n, page.number_matched, "count and page disagree for {body}"),
            Err(e) => panic!("count failed after the page succeeded: {e}\nbody: {body}"),
        }
        for item in &page.items {
            serde_json::from_str::<Value>(item).expect("a page item is JSON");
        }
        Some(page)
    })
}

/// Runs a search that must succeed (the harness's own), or says why it did not.
pub fn search_ok(body: &Value) -> stacdb::search::Page {
    let request = Request::from_json(body).unwrap_or_else(|e| panic!("{body}: {e}"));
    with_catalog(|catalog| catalog.search(&request, &options()))
        .unwrap_or_else(|e| panic!("{body}: {e}"))
}

/// A search error must be the client's to fix (a timeout is fine too), with a message.
fn clean(e: &SearchError, body: &Value) {
    let message = e.to_string();
    assert!(!message.is_empty(), "empty error message for {body}");
    // SQLite's text must never reach the client as a filter error (unless the client wrote
    // it: messages quote the offending literal).
    let sent = body.to_string();
    for sqlite in ["SQL logic error", "no such column", "no such function", "syntax error"] {
        assert!(
            !message.contains(sqlite) || sent.contains(sqlite),
            "SQLite error text in a search error: {message}\nbody: {body}"
        );
    }
}

/// A search body with a filter: CQL2 JSON when the text is a JSON object, else CQL2 text.
pub fn filter_body(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(json @ Value::Object(_)) => json!({"filter": json, "filter-lang": "cql2-json"}),
        _ => json!({"filter": text, "filter-lang": "cql2-text"}),
    }
}
