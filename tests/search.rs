//! Search, end to end on real data: keyset paging while other writers insert and delete,
//! paging tokens, hostile input through the library and the command line, the STAC API
//! features (sortby, fields, query, q, ids, collections, numberMatched, output formats) checked
//! against answers computed here from the parsed items, and the time limit.
//!
//! Data: the 10,000 NAIP items of stac-fastapi-geoparquet (with a **derived** property
//! `test:rank`, added here to a share of the items, of mixed JSON types and sometimes missing
//! or null, so that property sorts have ties, NULLs and mixed types), the 1,000 Sentinel-2
//! items of rustac and the 100 pgstac test items.

mod common;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use stacdb::search::{Request, SearchError, SearchOptions};
use stacdb::{Catalog, Error, IngestOptions, Input, Mode, Silent};

// ---------------------------------------------------------------------------------------------
// Data and catalogs

const NAIP: &str = "bench/stac-fastapi-geoparquet/naip.ndjson.gz";
const NAIP_COLLECTIONS: &str = "bench/stac-fastapi-geoparquet/collections.json";
const S2_ITEMS: &str = "bench/rustac/1000-sentinel-2-items.ndjson.gz";
const S2_COLLECTION: &str = "bench/rustac/sentinel-2-l2a.collection.json";
const PGSTAC_ITEMS: &str = "fixtures/pgstac/src/pgstac/tests/testdata/items.ndjson";
const PGSTAC_COLLECTIONS: &str = "fixtures/pgstac/src/pgstac/tests/testdata/collections.json";

/// Text that must never reach a user: SQLite's own error messages and panics.
const FORBIDDEN: [&str; 12] = [
    "SQL logic error",
    "no such column",
    "no such table",
    "no such function",
    "near \"",
    "fts5: syntax error",
    "fts5:",
    "unrecognized token",
    "malformed JSON",
    "JSON path error",
    "panicked",
    "Rust panic",
];

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn ingest(catalog: &mut Catalog, paths: &[&Path], mode: Mode) {
    let inputs: Vec<Input> = paths.iter().map(|p| Input::Path(p.to_path_buf())).collect();
    let options = IngestOptions { mode, ..Default::default() };
    catalog.ingest(&inputs, &options, &Silent).expect("ingest");
}

/// The NAIP items, each given the derived `test:rank` property by its position: missing,
/// null, text, integer, real, or a real equal to an integer (2.0).
fn naip_items(data: &Path) -> Vec<Value> {
    let mut items = common::read_documents(&common::data_file(data, NAIP));
    assert_eq!(items.len(), 10_000, "naip.ndjson.gz should hold 10,000 items");
    for (i, item) in items.iter_mut().enumerate() {
        if let Some(rank) = rank_value(i % 10, i / 10) {
            item["properties"]["test:rank"] = rank;
        }
    }
    items
}

fn rank_value(kind: usize, n: usize) -> Option<Value> {
    match kind {
        0 => None,
        1 => Some(Value::Null),
        2 => Some(json!(format!("r{}", n % 4))),
        3..=5 => Some(json!(n % 5)),
        6 => Some(json!(2.0)),
        _ => Some(json!((n % 5) as f64 + 0.5)),
    }
}

/// A catalog of the NAIP items (with `test:rank`) and their collections.
fn naip_catalog(data: &Path, dir: &Path) -> (PathBuf, Vec<Value>) {
    let items = naip_items(data);
    let lines: Vec<String> = items.iter().map(Value::to_string).collect();
    let file = common::write_ndjson(&dir.join("naip-ranked.ndjson"), &lines);
    let path = dir.join("naip.stacdb");
    let mut catalog = Catalog::create(&path).expect("create");
    ingest(&mut catalog, &[&common::data_file(data, NAIP_COLLECTIONS), &file], Mode::Insert);
    (path, items)
}

/// A catalog of the 1,000 Sentinel-2 items and the 100 pgstac items, with their collections.
fn s2_catalog(data: &Path, dir: &Path) -> (PathBuf, Vec<Value>) {
    let path = dir.join("s2.stacdb");
    let files = [S2_COLLECTION, S2_ITEMS, PGSTAC_COLLECTIONS, PGSTAC_ITEMS]
        .map(|relative| common::data_file(data, relative));
    let mut catalog = Catalog::create(&path).expect("create");
    ingest(&mut catalog, &files.iter().map(PathBuf::as_path).collect::<Vec<_>>(), Mode::Insert);
    let mut items = common::read_documents(&files[1]);
    items.extend(common::read_documents(&files[3]));
    assert_eq!(items.len(), 1100);
    (path, items)
}

/// A catalog of the 100 pgstac items.
fn pgstac_catalog(data: &Path, path: &Path) -> Vec<Value> {
    let files =
        [PGSTAC_COLLECTIONS, PGSTAC_ITEMS].map(|relative| common::data_file(data, relative));
    let mut catalog = Catalog::create(path).expect("create");
    ingest(&mut catalog, &[&files[0], &files[1]], Mode::Insert);
    let items = common::read_documents(&files[1]);
    assert_eq!(items.len(), 100);
    items
}

fn id(item: &Value) -> &str {
    item["id"].as_str().expect("item id")
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| id(i).to_owned()).collect()
}

fn request(body: Value) -> Request {
    Request::from_json(&body).unwrap_or_else(|e| panic!("request {body}: {e}"))
}

/// The parts of an item the checks read; the rest (mostly assets) is skipped unparsed, which
/// is several times faster than building whole `Value`s in a debug build.
#[derive(serde::Deserialize)]
struct Slim {
    id: String,
    #[serde(default)]
    collection: Option<String>,
    #[serde(default)]
    properties: serde_json::Map<String, Value>,
}

#[derive(serde::Deserialize)]
struct IdOnly<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
}

/// Every item a search matches, in order, as `{"id", "collection", "properties"}`.
fn all_of(catalog: &Catalog, body: Value) -> Vec<Value> {
    let mut out = Vec::new();
    catalog
        .search_each(&request(body.clone()), &SearchOptions::default(), None, |item| {
            let slim: Slim = serde_json::from_str(item).expect("item json");
            out.push(json!({"id": slim.id, "collection": slim.collection, "properties": slim.properties}));
            Ok(true)
        })
        .unwrap_or_else(|e| panic!("search {body}: {e}"));
    out
}

/// Every item a search matches, in order, whole.
fn all_whole(catalog: &Catalog, body: Value) -> Vec<Value> {
    let mut out = Vec::new();
    catalog
        .search_each(&request(body.clone()), &SearchOptions::default(), None, |item| {
            out.push(serde_json::from_str(item).expect("item json"));
            Ok(true)
        })
        .unwrap_or_else(|e| panic!("search {body}: {e}"));
    out
}

/// The ids a search matches, as a set.
fn id_set(catalog: &Catalog, body: Value) -> BTreeSet<String> {
    all_of(catalog, body).iter().map(|i| id(i).to_owned()).collect()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ndjson_ids(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str::<IdOnly>(l).expect("ndjson line").id.into_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The order, as SQLite sorts it: NULL, then numbers, then text (bytewise)

#[derive(Debug, Clone, PartialEq)]
enum Key {
    Null,
    Num(f64),
    Text(String),
}

fn cmp_key(a: &Key, b: &Key) -> Ordering {
    match (a, b) {
        (Key::Null, Key::Null) => Ordering::Equal,
        (Key::Null, _) => Ordering::Less,
        (_, Key::Null) => Ordering::Greater,
        (Key::Num(x), Key::Num(y)) => x.partial_cmp(y).expect("no NaN"),
        (Key::Num(_), Key::Text(_)) => Ordering::Less,
        (Key::Text(_), Key::Num(_)) => Ordering::Greater,
        (Key::Text(x), Key::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
    }
}

fn micros(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("datetime {text}: {e}"))
        .timestamp_micros()
}

/// The item's time as the catalog orders it: `datetime`, or `start_datetime` when null.
fn item_time(item: &Value) -> i64 {
    let props = &item["properties"];
    let text = props["datetime"].as_str().or_else(|| props["start_datetime"].as_str());
    micros(text.expect("item time"))
}

fn json_key(value: Option<&Value>) -> Key {
    match value {
        None | Some(Value::Null) => Key::Null,
        Some(Value::Bool(b)) => Key::Num(if *b { 1.0 } else { 0.0 }),
        Some(Value::Number(n)) => Key::Num(n.as_f64().expect("finite")),
        Some(Value::String(s)) => Key::Text(s.clone()),
        Some(other) => Key::Text(other.to_string()),
    }
}

/// One sort key of an item: `datetime` and `id` as the engine reads them, anything else the
/// property of that name.
fn sort_key(item: &Value, field: &str) -> Key {
    match field {
        "datetime" => Key::Num(item_time(item) as f64),
        "id" => Key::Text(id(item).to_owned()),
        "collection" => Key::Text(item["collection"].as_str().unwrap_or_default().to_owned()),
        _ => json_key(item["properties"].get(field)),
    }
}

type Order = Vec<(&'static str, bool)>;

fn keys_of(item: &Value, order: &Order) -> Vec<Key> {
    order.iter().map(|(field, _)| sort_key(item, field)).collect()
}

fn cmp_keys(a: &[Key], b: &[Key], order: &Order) -> Ordering {
    for ((x, y), (_, descending)) in a.iter().zip(b).zip(order) {
        let o = cmp_key(x, y);
        let o = if *descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn sortby_json(order: &Order) -> Value {
    order
        .iter()
        .map(|(field, desc)| json!({"field": field, "direction": if *desc { "desc" } else { "asc" }}))
        .collect::<Vec<_>>()
        .into()
}

fn sortby_arg(order: &Order) -> String {
    order
        .iter()
        .map(|(f, d)| format!("{}{f}", if *d { "-" } else { "+" }))
        .collect::<Vec<_>>()
        .join(",")
}

/// Asserts that the items are in the order (ties in any order).
fn assert_sorted(label: &str, items: &[Value], order: &Order) {
    for pair in items.windows(2) {
        let (a, b) = (keys_of(&pair[0], order), keys_of(&pair[1], order));
        assert_ne!(
            cmp_keys(&a, &b, order),
            Ordering::Greater,
            "{label}: {} ({a:?}) comes before {} ({b:?})",
            id(&pair[0]),
            id(&pair[1])
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Paging stability under writes

/// What the catalog holds: id -> document (all NAIP items are in collection `naip`), and the
/// ids in a vector, for cheap random picks in a fixed order.
struct World {
    docs: HashMap<String, Value>,
    ids: Vec<String>,
    /// Times of the original items, to give copies times that tie with them.
    times: Vec<String>,
    rng: StdRng,
    dir: PathBuf,
    files: usize,
}

impl World {
    fn random_id(&mut self) -> String {
        self.ids[self.rng.random_range(0..self.ids.len())].clone()
    }

    fn insert(&mut self, doc: Value) {
        let item_id = id(&doc).to_owned();
        if self.docs.insert(item_id.clone(), doc).is_none() {
            self.ids.push(item_id);
        }
    }

    fn remove(&mut self, item_id: &str) -> Value {
        let at = self.ids.iter().position(|i| i == item_id).expect("present");
        self.ids.swap_remove(at);
        self.docs.remove(item_id).expect("present")
    }
}

/// Who writes between pages: a second handle on the file in this process, or `stacdb`
/// processes.
enum Writer {
    Handle(Box<Catalog>),
    Process(PathBuf),
}

impl Writer {
    fn upsert(&mut self, file: &Path) {
        match self {
            Writer::Handle(catalog) => ingest(catalog, &[file], Mode::Upsert),
            Writer::Process(path) => {
                common::stacdb_ok(["ingest", p(path), p(file), "--mode", "upsert"]);
            }
        }
    }

    fn delete(&mut self, ids: &[String]) {
        match self {
            Writer::Handle(catalog) => {
                assert_eq!(
                    catalog.delete_items("naip", ids, false).expect("delete"),
                    ids.len() as u64
                );
            }
            Writer::Process(path) => {
                let mut args = vec!["delete".to_string(), p(path).to_string(), "naip".into()];
                args.extend(ids.iter().cloned());
                common::stacdb_ok(args);
            }
        }
    }
}

/// One page as a walk sees it.
struct WalkPage {
    items: Vec<Value>,
    number_matched: Option<u64>,
    next: Option<String>,
}

/// What one walk may and must see.
#[derive(Default)]
struct Expect {
    /// Items that must be returned exactly once (present throughout, or inserted strictly
    /// ahead of the walk and never deleted).
    must: BTreeSet<String>,
    /// Items that must not be returned (deleted, or inserted, strictly ahead of / behind the
    /// walk).
    never: BTreeSet<String>,
    /// Every item that matched at some point.
    may: BTreeSet<String>,
}

struct WalkSpec<'a> {
    label: &'a str,
    order: Order,
    limit: usize,
    inserts: usize,
    upserts: usize,
    deletes: usize,
    matches: &'a dyn Fn(&Value) -> bool,
}

/// Walks every page of a search through `fetch`, changing the catalog through `writer` between
/// pages, and checks: no id twice, every item present throughout exactly once, items inserted
/// or deleted strictly ahead of the walk seen or not accordingly, nothing behind the walk
/// returned, the returned sequence in order, and the exact `numberMatched` on every page.
/// Returns the number of pages.
fn walk(
    spec: &WalkSpec,
    world: &mut World,
    writer: &mut Writer,
    fetch: &mut dyn FnMut(Option<&str>) -> WalkPage,
) -> usize {
    let label = spec.label;
    let mut expect = Expect::default();
    for (item_id, doc) in &world.docs {
        if (spec.matches)(doc) {
            expect.must.insert(item_id.clone());
            expect.may.insert(item_id.clone());
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut last: Option<Vec<Key>> = None;
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let matched = world.docs.values().filter(|d| (spec.matches)(d)).count() as u64;
        let page = fetch(token.as_deref());
        pages += 1;
        assert_eq!(page.number_matched, Some(matched), "{label}: numberMatched on page {pages}");
        assert!(page.items.len() <= spec.limit, "{label}: page {pages} is too long");
        if page.next.is_some() {
            assert_eq!(page.items.len(), spec.limit, "{label}: page {pages} is short but has next");
        }
        for item in &page.items {
            let item_id = id(item).to_owned();
            let n = seen.entry(item_id.clone()).or_default();
            *n += 1;
            assert_eq!(*n, 1, "{label}: {item_id} returned twice (page {pages})");
            assert!(expect.may.contains(&item_id), "{label}: {item_id} never matched");
            assert!(!expect.never.contains(&item_id), "{label}: {item_id} must not be returned");
            let keys = keys_of(item, &spec.order);
            if let Some(prev) = &last {
                assert_ne!(
                    cmp_keys(prev, &keys, &spec.order),
                    Ordering::Greater,
                    "{label}: {item_id} ({keys:?}) is out of order after {prev:?} (page {pages})"
                );
            }
            last = Some(keys);
        }
        let Some(next) = page.next else { break };
        token = Some(next);
        let cursor = last.clone().expect("a full page has a last item");
        mutate(spec, world, writer, &cursor, &mut expect, pages);
    }
    for item_id in &expect.must {
        assert_eq!(seen.get(item_id), Some(&1), "{label}: {item_id} must be returned once");
    }
    for item_id in &expect.never {
        assert!(!seen.contains_key(item_id), "{label}: {item_id} must not be returned");
    }
    pages
}

/// Between pages: insert copies of random items under new ids (some tying with existing
/// sort keys), upsert some items without changing their sort keys, delete random items.
fn mutate(
    spec: &WalkSpec,
    world: &mut World,
    writer: &mut Writer,
    cursor: &[Key],
    expect: &mut Expect,
    page: usize,
) {
    let ahead = |doc: &Value| cmp_keys(&keys_of(doc, &spec.order), cursor, &spec.order);
    let mut lines = Vec::new();
    for k in 0..spec.inserts {
        let source = world.random_id();
        let mut doc = world.docs[&source].clone();
        let tag: String =
            spec.label.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let new_id = format!("{source}-{tag}-p{page}-{k}");
        doc["id"] = json!(new_id);
        if world.rng.random_bool(0.5) {
            let time = world.times[world.rng.random_range(0..world.times.len())].clone();
            doc["properties"]["datetime"] = json!(time);
        }
        let props = doc["properties"].as_object_mut().expect("properties");
        match rank_value(world.rng.random_range(0..10), world.rng.random_range(0..100)) {
            Some(rank) => props.insert("test:rank".into(), rank),
            None => props.remove("test:rank"),
        };
        if (spec.matches)(&doc) {
            expect.may.insert(new_id.clone());
            match ahead(&doc) {
                Ordering::Greater => expect.must.insert(new_id.clone()),
                Ordering::Less => expect.never.insert(new_id.clone()),
                Ordering::Equal => false,
            };
        }
        lines.push(doc.to_string());
        world.insert(doc);
    }
    for _ in 0..spec.upserts {
        let target = world.random_id();
        let doc = world.docs.get_mut(&target).expect("present");
        doc["properties"]["title"] = json!(format!("upserted on page {page} of {}", spec.label));
        lines.push(doc.to_string());
    }
    world.files += 1;
    let file = common::write_ndjson(&world.dir.join(format!("w{}.ndjson", world.files)), &lines);
    writer.upsert(&file);

    let mut doomed = BTreeSet::new();
    while doomed.len() < spec.deletes {
        doomed.insert(world.random_id());
    }
    for item_id in &doomed {
        let doc = world.remove(item_id);
        expect.must.remove(item_id);
        if (spec.matches)(&doc) && ahead(&doc) == Ordering::Greater {
            expect.never.insert(item_id.clone());
        }
    }
    writer.delete(&doomed.into_iter().collect::<Vec<_>>());
}

fn library_fetch<'a>(
    catalog: &'a Catalog,
    body: Value,
    limit: usize,
) -> impl FnMut(Option<&str>) -> WalkPage + 'a {
    move |token| {
        let mut body = body.clone();
        body["limit"] = json!(limit);
        if let Some(token) = token {
            body["token"] = json!(token);
        }
        let page = catalog
            .search(&request(body), &SearchOptions::default())
            .unwrap_or_else(|e| panic!("search page: {e}"));
        let items = page
            .items
            .iter()
            .map(|i| {
                let slim: Slim = serde_json::from_str(i).expect("item");
                json!({"id": slim.id, "properties": slim.properties})
            })
            .collect();
        WalkPage { items, number_matched: Some(page.number_matched), next: page.next }
    }
}

#[test]
fn paging_is_stable_while_others_write() {
    let Some(data) = common::data_dir("search::paging_is_stable_while_others_write") else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (path, items) = naip_catalog(&data, dir.path());
    let mut times: Vec<String> =
        items.iter().map(|i| i["properties"]["datetime"].as_str().unwrap().to_owned()).collect();
    times.sort();
    times.dedup();
    let mut world = World {
        docs: HashMap::new(),
        ids: Vec::new(),
        times,
        rng: StdRng::seed_from_u64(20_240_901),
        dir: dir.path().to_path_buf(),
        files: 0,
    };
    for item in items {
        world.insert(item);
    }
    let reader = Catalog::open_read_only(&path).unwrap();
    let mut handle = Writer::Handle(Box::new(Catalog::open(&path).unwrap()));
    let mut process = Writer::Process(path.clone());
    let all = |_: &Value| true;

    let walks: Vec<(WalkSpec, bool)> = vec![
        // The default order: newest first, then id.
        (
            WalkSpec {
                label: "default order",
                order: vec![("datetime", true), ("id", true)],
                limit: 400,
                inserts: 12,
                upserts: 4,
                deletes: 8,
                matches: &all,
            },
            false,
        ),
        // Mixed types with NULLs first (test:rank), then a text property with many ties,
        // then time descending; writes from other processes.
        (
            WalkSpec {
                label: "test:rank, naip:state, -datetime",
                order: vec![("test:rank", false), ("naip:state", false), ("datetime", true)],
                limit: 500,
                inserts: 15,
                upserts: 4,
                deletes: 10,
                matches: &all,
            },
            true,
        ),
        // Descending first key with NULLs last, then huge ties (gsd is 0.6 everywhere) that
        // only the row order breaks.
        (
            WalkSpec {
                label: "-test:rank, gsd",
                order: vec![("test:rank", true), ("gsd", false)],
                limit: 500,
                inserts: 15,
                upserts: 4,
                deletes: 10,
                matches: &all,
            },
            false,
        ),
        // Oldest first.
        (
            WalkSpec {
                label: "datetime asc",
                order: vec![("datetime", false)],
                limit: 400,
                inserts: 12,
                upserts: 4,
                deletes: 8,
                matches: &all,
            },
            false,
        ),
    ];
    for (spec, by_process) in &walks {
        let t = Instant::now();
        let body = if spec.label == "default order" {
            json!({})
        } else {
            json!({"sortby": sortby_json(&spec.order)})
        };
        let mut fetch = library_fetch(&reader, body, spec.limit);
        let writer = if *by_process { &mut process } else { &mut handle };
        let pages = walk(spec, &mut world, writer, &mut fetch);
        assert!(pages >= 20, "{}: only {pages} pages", spec.label);
        eprintln!("{}: {pages} pages in {:.1} s", spec.label, t.elapsed().as_secs_f64());
    }

    // The same through the command line, on a smaller scale: the items since October 2021
    // (about 300), with writes from other processes between pages.
    let t = Instant::now();
    let since = micros("2021-10-01T00:00:00Z");
    let recent = |doc: &Value| item_time(doc) >= since;
    let spec = WalkSpec {
        label: "cli",
        order: vec![("naip:state", false), ("datetime", true)],
        limit: 40,
        inserts: 20,
        upserts: 3,
        deletes: 40,
        matches: &recent,
    };
    let mut fetch = |token: Option<&str>| {
        let mut args = vec![
            "search".to_string(),
            p(&path).into(),
            "--datetime".into(),
            "2021-10-01T00:00:00Z/..".into(),
            "--sortby".into(),
            sortby_arg(&spec.order),
            "--format".into(),
            "json".into(),
            "--limit".into(),
            spec.limit.to_string(),
        ];
        if let Some(token) = token {
            args.extend(["--next".to_string(), token.to_string()]);
        }
        let page: Value = serde_json::from_str(&common::stacdb_ok(args)).expect("json page");
        assert_eq!(page["type"], "FeatureCollection");
        let items = page["features"].as_array().expect("features").clone();
        assert_eq!(page["numberReturned"].as_u64(), Some(items.len() as u64));
        WalkPage {
            items,
            number_matched: page["numberMatched"].as_u64(),
            next: page.get("next").map(|n| n.as_str().expect("next is text").to_owned()),
        }
    };
    let pages = walk(&spec, &mut world, &mut process, &mut fetch);
    assert!(pages >= 5, "cli: only {pages} pages");
    eprintln!("cli: {pages} pages in {:.1} s", t.elapsed().as_secs_f64());

    // The catalog holds what the test thinks it holds.
    drop(handle);
    let catalog = Catalog::open_read_only(&path).unwrap();
    assert_eq!(
        catalog.count(&Request::default(), &SearchOptions::default()).unwrap(),
        world.docs.len() as u64
    );
    eprintln!("paging under writes: {:.1} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// 2. Tokens

fn with_token(body: &Value, token: &str) -> Value {
    let mut body = body.clone();
    body["token"] = json!(token);
    body
}

/// The token error a search gives, or a panic naming what it gave instead.
fn token_error(label: &str, catalog: &Catalog, body: Value) -> stacdb::search::token::TokenError {
    let result = Request::from_json(&body)
        .map_err(Error::from)
        .and_then(|r| catalog.search(&r, &SearchOptions::default()));
    match result {
        Err(Error::Search(SearchError::Token(e))) => {
            let message = Error::Search(SearchError::Token(e.clone())).to_string();
            assert!(message.contains("token"), "{label}: message does not say token: {message}");
            e
        }
        Err(e) => panic!("{label}: expected a token error, got {e:?}"),
        Ok(page) => panic!("{label}: expected a token error, got {} items", page.items.len()),
    }
}

#[test]
fn tokens_are_checked() {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use stacdb::search::token::TokenError;

    let Some(data) = common::data_dir("search::tokens_are_checked") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (path_a, path_b) = (dir.path().join("a.stacdb"), dir.path().join("b.stacdb"));
    let items = pgstac_catalog(&data, &path_a);
    pgstac_catalog(&data, &path_b);
    let (a, b) =
        (Catalog::open_read_only(&path_a).unwrap(), Catalog::open_read_only(&path_b).unwrap());
    let options = SearchOptions::default();
    let search = |catalog: &Catalog, body: Value| catalog.search(&request(body), &options).unwrap();

    let base = json!({
        "collections": ["pgstac-test-collection"],
        "bbox": [-180, -90, 180, 90],
        "sortby": [{"field": "eo:cloud_cover", "direction": "desc"}],
        "limit": 10,
    });
    let first = search(&a, base.clone());
    assert_eq!((first.items.len(), first.number_matched), (10, 100));
    let token = first.next.clone().expect("a next page");

    // Following the tokens visits every item once, in order.
    let mut walked: Vec<Value> = Vec::new();
    let mut page = first.clone();
    loop {
        walked.extend(page.items.iter().map(|i| serde_json::from_str::<Value>(i).unwrap()));
        let Some(next) = page.next else { break };
        page = search(&a, with_token(&base, &next));
    }
    assert_eq!(walked.len(), 100);
    assert_eq!(ids(&walked).into_iter().collect::<BTreeSet<_>>().len(), 100);
    assert_eq!(ids(&walked), ids(&all_of(&a, base.clone())));
    assert_sorted("token walk", &walked, &vec![("eo:cloud_cover", true)]);
    let second_ids = ids(&walked[10..20]);

    // The limit and the fields are not part of the search a token belongs to.
    let mut other = with_token(&base, &token);
    other["limit"] = json!(5);
    let page = search(&a, other.clone());
    assert_eq!(
        page.items
            .iter()
            .map(|i| id(&serde_json::from_str(i).unwrap()).to_owned())
            .collect::<Vec<_>>(),
        second_ids[..5]
    );
    other["limit"] = json!(1000);
    other["fields"] = json!({"include": ["id"]});
    let page = search(&a, other);
    assert_eq!(page.items.len(), 90);
    for (item, expected) in page.items.iter().zip(&second_ids) {
        let item: Value = serde_json::from_str(item).unwrap();
        assert_eq!(item["id"], json!(expected));
        assert!(item.get("assets").is_none() && item.get("properties").is_none(), "{item}");
    }

    // Malformed text.
    let long = "A".repeat(5000);
    let padded = format!("{token}==");
    let standard = token.replace('-', "+").replace('_', "/");
    let mut malformed: Vec<&str> =
        vec!["", "!", "not a token", "AAAA", "%%%%", &long, &padded, "\u{0}"];
    malformed.push(&token[..token.len() - 1]);
    malformed.push(&token[1..]);
    if standard != token {
        malformed.push(&standard);
    }
    let appended = format!("{token}A");
    malformed.push(&appended);
    for bad in malformed {
        token_error(
            &format!("malformed {:?}", &bad[..bad.len().min(40)]),
            &a,
            with_token(&base, bad),
        );
    }
    let random = URL_SAFE_NO_PAD.encode((0..120u8).map(|i| i.wrapping_mul(37)).collect::<Vec<_>>());
    token_error("random bytes", &a, with_token(&base, &random));

    // Every byte of the token changed, and every character of its text.
    let raw = URL_SAFE_NO_PAD.decode(&token).expect("a token is URL-safe base64");
    for i in 0..raw.len() {
        for flip in [0x01u8, 0x80] {
            let mut changed = raw.clone();
            changed[i] ^= flip;
            let text = URL_SAFE_NO_PAD.encode(&changed);
            token_error(&format!("byte {i} ^ {flip:#x}"), &a, with_token(&base, &text));
        }
    }
    for (i, c) in token.char_indices() {
        let mut text = token.clone();
        text.replace_range(i..i + 1, if c == 'A' { "B" } else { "A" });
        token_error(&format!("character {i}"), &a, with_token(&base, &text));
    }

    // A token of another catalog, even for the same search on the same items.
    let foreign = search(&b, base.clone()).next.expect("next");
    assert_eq!(token_error("other catalog", &a, with_token(&base, &foreign)), TokenError::Tampered);

    // A token with a different search.
    let changes: Vec<(&str, Value)> = vec![
        ("bbox", json!({"bbox": [-180, -90, 180, 89]})),
        ("no bbox", json!({"bbox": null})),
        (
            "intersects",
            json!({"bbox": null, "intersects": {"type": "Polygon", "coordinates": [[[-180, -90], [180, -90], [180, 90], [-180, 90], [-180, -90]]]}}),
        ),
        ("sortby direction", json!({"sortby": [{"field": "eo:cloud_cover", "direction": "asc"}]})),
        ("sortby field", json!({"sortby": [{"field": "gsd", "direction": "desc"}]})),
        (
            "sortby extra key",
            json!({"sortby": [{"field": "eo:cloud_cover", "direction": "desc"}, {"field": "id", "direction": "asc"}]}),
        ),
        ("default sortby", json!({"sortby": null})),
        ("collections", json!({"collections": ["pgstac-test-collection", "other"]})),
        ("no collections", json!({"collections": null})),
        ("ids", json!({"ids": [id(&items[0])]})),
        ("datetime", json!({"datetime": "2000-01-01T00:00:00Z/.."})),
        ("filter", json!({"filter": "gsd = 1", "filter-lang": "cql2-text"})),
        ("query", json!({"query": {"gsd": {"eq": 1}}})),
        ("q", json!({"q": "pgstac"})),
    ];
    for (label, change) in changes {
        let mut body = with_token(&base, &token);
        for (key, value) in change.as_object().unwrap() {
            if value.is_null() {
                body.as_object_mut().unwrap().remove(key);
            } else {
                body[key] = value.clone();
            }
        }
        assert_eq!(token_error(label, &a, body), TokenError::WrongSearch, "{label}");
    }

    // The same through the command line: exit 2 and a message about the token.
    let cat = p(&path_a);
    let base_args = [
        "search",
        cat,
        "--collections",
        "pgstac-test-collection",
        "--bbox=-180,-90,180,90",
        "--sortby=-eo:cloud_cover",
        "--format",
        "json",
        "--limit",
        "10",
    ];
    let page: Value = serde_json::from_str(&common::stacdb_ok(base_args)).unwrap();
    let cli_token = page["next"].as_str().expect("next").to_owned();
    let changed = {
        let mut raw = URL_SAFE_NO_PAD.decode(&cli_token).unwrap();
        raw[20] ^= 1;
        URL_SAFE_NO_PAD.encode(raw)
    };
    let refused: Vec<(&str, Vec<String>)> = vec![
        ("malformed", vec!["--next=garbage!".into()]),
        ("empty", vec!["--next=".into()]),
        ("changed", vec![format!("--next={changed}")]),
        ("other catalog", vec![format!("--next={foreign}")]),
        ("other bbox", vec![format!("--next={cli_token}"), "--bbox=-180,-90,180,89".into()]),
        ("other sortby", vec![format!("--next={cli_token}"), "--sortby=+eo:cloud_cover".into()]),
    ];
    for (label, extra) in refused {
        let mut args: Vec<String> = base_args.iter().map(|s| s.to_string()).collect();
        for e in &extra {
            // A later --bbox or --sortby replaces the earlier one.
            let flag = e.split('=').next().unwrap();
            if let Some(at) = args.iter().position(|a| a.starts_with(&format!("{flag}="))) {
                args.remove(at);
            }
        }
        args.extend(extra);
        for format in ["json", "ndjson"] {
            let at = args.iter().position(|a| a == "--format").unwrap();
            args[at + 1] = format.into();
            let out = common::stacdb(&args);
            let stderr = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "cli {label} ({format}): {stderr}");
            assert!(stderr.contains("token"), "cli {label} ({format}): {stderr}");
            assert!(!FORBIDDEN.iter().any(|f| stderr.contains(f)), "cli {label}: {stderr}");
            assert!(out.stdout.is_empty(), "cli {label} ({format}) wrote output");
        }
    }
    // A genuine token with another limit, or in NDJSON, continues where the page ended.
    let mut args: Vec<String> = base_args.iter().map(|s| s.to_string()).collect();
    args.extend([format!("--next={cli_token}"), "--fields=id".into()]);
    let at = args.iter().position(|a| a == "10").unwrap();
    args[at] = "5".into();
    let page: Value = serde_json::from_str(&common::stacdb_ok(&args)).unwrap();
    let got: Vec<&str> = page["features"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(got, second_ids[..5]);
    assert_eq!(page["numberMatched"], 100);
    let at = args.iter().position(|a| a == "json").unwrap();
    args[at] = "ndjson".into();
    let out = common::stacdb(&args);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(ndjson_ids(&out.stdout), ids(&walked[10..]));
}

// ---------------------------------------------------------------------------------------------
// 3. Hostile input

/// What a hostile search must give.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    /// This many matches.
    Matched(u64),
    /// This many matches, or a clear error naming the parameter.
    MatchedOrError(u64),
    /// A clear error naming the parameter.
    Refused,
}

struct Case {
    label: String,
    body: Value,
    /// The parameter an error must name.
    param: &'static str,
    want: Want,
}

fn case(label: impl Into<String>, body: Value, param: &'static str, want: Want) -> Case {
    Case { label: label.into(), body, param, want }
}

/// Strings that mean something to SQL, FTS5, JSON paths, LIKE/GLOB or the terminal.
fn hostile_strings() -> Vec<String> {
    let mut strings: Vec<String> = [
        "'",
        "\"",
        ";",
        "--",
        "' OR 1=1 --",
        "'); DROP TABLE items; --",
        "NEAR(",
        "*",
        "^",
        ":",
        ")",
        "(",
        "\0",
        "a\0b",
        "\\",
        "\\\"",
        "%",
        "_",
        "[a]",
        "?l",
        "$.properties",
        "🙂",
        "\n",
        "",
        "title:x",
    ]
    .map(String::from)
    .to_vec();
    strings.push("'".repeat(100_000));
    strings.push("\"".repeat(100_000));
    strings
}

/// Shortens text for messages.
fn short(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if out.len() < text.len() {
        out += &format!("…({} bytes)", text.len());
    }
    out.escape_debug().to_string()
}

/// CQL2 LIKE, evaluated here: `%` any run, `_` one character, `\` escapes. `None` for a
/// pattern ending in a lone `\`.
fn like(text: &str, pattern: &str) -> Option<bool> {
    let (t, pat): (Vec<char>, Vec<char>) = (text.chars().collect(), pattern.chars().collect());
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < pat.len() {
        match pat[i] {
            '\\' => {
                tokens.push(Some(*pat.get(i + 1)?));
                i += 2;
            }
            '%' => {
                tokens.push(None);
                i += 1;
            }
            c => {
                tokens.push(Some(if c == '_' { '\u{fffe}' } else { c }));
                i += 1;
            }
        }
    }
    // Dynamic programming over (token, character).
    let mut reach = vec![false; t.len() + 1];
    reach[0] = true;
    for token in &tokens {
        let mut next = vec![false; t.len() + 1];
        for j in 0..=t.len() {
            if !reach[j] {
                continue;
            }
            match token {
                None => next[j..].iter_mut().for_each(|r| *r = true),
                Some(c) if j < t.len() && (*c == '\u{fffe}' || *c == t[j]) => next[j + 1] = true,
                Some(_) => {}
            }
        }
        reach = next;
    }
    Some(reach[t.len()])
}

/// The library cases, over the 100 pgstac items (all `naip:state` "al", numeric
/// `eo:cloud_cover`).
fn library_cases(items: &[Value]) -> Vec<Case> {
    use Want::*;
    let total = items.len() as u64;
    let states: Vec<&str> =
        items.iter().map(|i| i["properties"]["naip:state"].as_str().unwrap()).collect();
    let count = |f: &dyn Fn(&str) -> bool| states.iter().filter(|s| f(s)).count() as u64;
    let mut cases = Vec::new();
    for s in hostile_strings() {
        let l = short(&s);
        cases.push(case(format!("ids [{l}]"), json!({"ids": [s]}), "ids", Matched(0)));
        cases.push(case(
            format!("ids [{l}, real]"),
            json!({"ids": [s, id(&items[0])]}),
            "ids",
            Matched(1),
        ));
        cases.push(case(
            format!("collections [{l}]"),
            json!({"collections": [s]}),
            "collections",
            Matched(0),
        ));
        cases.push(case(format!("q {l}"), json!({"q": s}), "q", MatchedOrError(0)));
        cases.push(case(
            format!("filter text identifier {l}"),
            json!({"filter": format!("\"{s}\" = 'x'"), "filter-lang": "cql2-text"}),
            "filter",
            MatchedOrError(0),
        ));
        cases.push(case(
            format!("filter text identifier {l} IS NULL"),
            json!({"filter": format!("\"{s}\" IS NULL"), "filter-lang": "cql2-text"}),
            "filter",
            MatchedOrError(total),
        ));
        cases.push(case(
            format!("filter text literal {l}"),
            json!({"filter": format!("id = '{}'", s.replace('\'', "''"))}),
            "filter",
            MatchedOrError(0),
        ));
        cases.push(case(
            format!("filter json property {l}"),
            json!({"filter": {"op": "=", "args": [{"property": s}, "x"]}}),
            "filter",
            MatchedOrError(0),
        ));
        cases.push(case(
            format!("filter json property {l} isNull"),
            json!({"filter": {"op": "isNull", "args": [{"property": s}]}}),
            "filter",
            MatchedOrError(if s == "id" { 0 } else { total }),
        ));
        cases.push(case(
            format!("filter json literal {l}"),
            json!({"filter": {"op": "=", "args": [{"property": "id"}, s]}}),
            "filter",
            Matched(0),
        ));
        // Items whose state is LIKE the pattern (evaluated once per distinct state).
        let distinct: BTreeSet<&str> = states.iter().copied().collect();
        // A very long pattern may be refused, with a clear error.
        // A NUL in a pattern is refused too (SQLite would cut the pattern there).
        let pattern = |n: u64| {
            if s.len() > 1000 || s.contains('\0') { MatchedOrError(n) } else { Matched(n) }
        };
        let like_want = match distinct
            .iter()
            .map(|st| Some((*st, like(st, &s)?)))
            .collect::<Option<HashMap<&str, bool>>>()
        {
            Some(hits) => pattern(count(&|st| hits[st])),
            None => MatchedOrError(0),
        };
        cases.push(case(
            format!("filter like {l}"),
            json!({"filter": {"op": "like", "args": [{"property": "naip:state"}, s]}}),
            "filter",
            like_want,
        ));
        cases.push(case(
            format!("filter op {l}"),
            json!({"filter": {"op": s, "args": [{"property": "id"}, "x"]}}),
            "filter",
            Refused,
        ));
        cases.push(case(
            format!("query property {l}"),
            json!({"query": {s.clone(): {"eq": "x"}}}),
            "query",
            MatchedOrError(0),
        ));
        cases.push(case(
            format!("query eq {l}"),
            json!({"query": {"naip:state": {"eq": s}}}),
            "query",
            Matched(count(&|st| st == s)),
        ));
        cases.push(case(
            format!("query neq {l}"),
            json!({"query": {"naip:state": {"neq": s}}}),
            "query",
            Matched(count(&|st| st != s)),
        ));
        cases.push(case(
            format!("query startsWith {l}"),
            json!({"query": {"naip:state": {"startsWith": s}}}),
            "query",
            pattern(count(&|st| st.starts_with(s.as_str()))),
        ));
        cases.push(case(
            format!("query endsWith {l}"),
            json!({"query": {"naip:state": {"endsWith": s}}}),
            "query",
            pattern(count(&|st| st.ends_with(s.as_str()))),
        ));
        cases.push(case(
            format!("query contains {l}"),
            json!({"query": {"naip:state": {"contains": s}}}),
            "query",
            pattern(count(&|st| st.contains(s.as_str()))),
        ));
        cases.push(case(
            format!("query in {l}"),
            json!({"query": {"naip:state": {"in": [s, "zz"]}}}),
            "query",
            Matched(count(&|st| st == s || st == "zz")),
        ));
        cases.push(case(
            format!("query operator {l}"),
            json!({"query": {"naip:state": {s.clone(): "x"}}}),
            "query",
            Refused,
        ));
        cases.push(case(
            format!("sortby {l}"),
            json!({"sortby": [{"field": s, "direction": "asc"}]}),
            "sortby",
            MatchedOrError(total),
        ));
        cases.push(case(
            format!("fields include {l}"),
            json!({"fields": {"include": [s]}}),
            "fields",
            Matched(total),
        ));
        cases.push(case(
            format!("fields exclude {l}"),
            json!({"fields": {"exclude": [s]}}),
            "fields",
            Matched(total),
        ));
        cases.push(case(format!("fields include properties.{l}"), json!({"fields": {"include": ["id", format!("properties.{s}")], "exclude": [format!("assets.{s}")]}}), "fields", Matched(total)));
        cases.push(case(format!("datetime {l}"), json!({"datetime": s}), "datetime", Refused));
        if !s.trim().is_empty() {
            cases.push(case(
                format!("datetime {l}/.."),
                json!({"datetime": format!("{s}/..")}),
                "datetime",
                Refused,
            ));
            cases.push(case(
                format!("datetime ../{l}"),
                json!({"datetime": format!("../{s}")}),
                "datetime",
                Refused,
            ));
        }
        cases.push(case(
            format!("filter-lang {l}"),
            json!({"filter": "id = 'x'", "filter-lang": s}),
            "filter-lang",
            Refused,
        ));
        cases.push(case(format!("token {l}"), json!({"token": s}), "token", Refused));
        cases.push(case(
            format!("filter timestamp {l}"),
            json!({"filter": format!("datetime > TIMESTAMP('{}')", s.replace('\'', "''"))}),
            "filter",
            Refused,
        ));
    }

    // Huge numbers, NaN and infinities.
    for (label, bbox) in [
        ("1e308", json!([1e308, 0, 1e308, 1])),
        ("-1e308", json!([-1e308, -1e308, 1e308, 1e308])),
        ("lat 1e308", json!([0, 0, 1, 1e308])),
        ("NaN", json!([f64::NAN, 0, 1, 1])),
        ("Infinity", json!([0, 0, f64::INFINITY, 1])),
        ("-Infinity", json!([f64::NEG_INFINITY, 0, 1, 1])),
        ("empty", json!([])),
        ("3 numbers", json!([1, 2, 3])),
        ("strings", json!(["0", "0", "1", "1"])),
        ("5 numbers", json!([0, 0, 1, 1, 1])),
        ("6 numbers z reversed", json!([0, 0, 1e308, 1, 1, -1e308])),
    ] {
        cases.push(case(format!("bbox {label}"), json!({"bbox": bbox}), "bbox", Refused));
    }
    cases.push(case(
        "bbox whole world",
        json!({"bbox": [-180, -90, 180, 90]}),
        "bbox",
        Matched(total),
    ));
    for (label, limit, want) in [
        ("1e308", json!(1e308), Refused),
        ("-1", json!(-1), Refused),
        ("0", json!(0), Refused),
        ("u64::MAX", json!(u64::MAX), Matched(total)),
        ("string", json!("ten"), Refused),
    ] {
        cases.push(case(format!("limit {label}"), json!({"limit": limit}), "limit", want));
    }
    for (label, query, want) in [
        ("lt 1e308", json!({"eo:cloud_cover": {"lt": 1e308}}), Matched(total)),
        ("gt -1e308", json!({"eo:cloud_cover": {"gt": -1e308}}), Matched(total)),
        ("eq 1e308", json!({"eo:cloud_cover": {"eq": 1e308}}), Matched(0)),
        ("lt -1e308", json!({"eo:cloud_cover": {"lt": -1e308}}), Matched(0)),
        ("lte u64::MAX", json!({"eo:cloud_cover": {"lte": u64::MAX}}), Matched(total)),
        ("gte i64::MIN", json!({"eo:cloud_cover": {"gte": i64::MIN}}), Matched(total)),
        ("empty", json!({}), Matched(total)),
        ("in []", json!({"naip:state": {"in": []}}), Refused),
        ("no operators", json!({"naip:state": {}}), Refused),
    ] {
        cases.push(case(format!("query {label}"), json!({"query": query}), "query", want));
    }
    for (label, filter, want) in [
        ("< 1e308", "eo:cloud_cover < 1e308", Matched(total)),
        ("< 1e400", "eo:cloud_cover < 1e400", MatchedOrError(total)),
        ("> -1e400", "eo:cloud_cover > -1e400", MatchedOrError(total)),
        ("= 1e400", "eo:cloud_cover = 1e400", MatchedOrError(0)),
        ("overflow", "eo:cloud_cover < 1e308 * 10", MatchedOrError(total)),
        ("division by zero", "eo:cloud_cover / 0 = 1", MatchedOrError(0)),
        ("huge integer", "eo:cloud_cover < 99999999999999999999999999999", MatchedOrError(total)),
        (
            "s_intersects huge polygon",
            "S_INTERSECTS(geometry, POLYGON((-1e308 -1e308, 1e308 -1e308, 1e308 1e308, -1e308 1e308, -1e308 -1e308)))",
            MatchedOrError(total),
        ),
        ("s_intersects point 1e400", "S_INTERSECTS(geometry, POINT(1e400 0))", MatchedOrError(0)),
        (
            "s_intersects point 1e308",
            "S_INTERSECTS(geometry, POINT(1e308 -1e308))",
            MatchedOrError(0),
        ),
        (
            "s_intersects bbox 1e308",
            "S_INTERSECTS(geometry, BBOX(-1e308, -1e308, 1e308, 1e308))",
            MatchedOrError(total),
        ),
        ("far future", "datetime < TIMESTAMP('9999-12-31T23:59:59Z')", Matched(total)),
        ("year 0", "datetime > TIMESTAMP('0000-01-01T00:00:00Z')", MatchedOrError(total)),
        ("empty text", "", Refused),
        ("only spaces", "   ", Refused),
    ] {
        cases.push(case(
            format!("filter {label}"),
            json!({"filter": filter, "filter-lang": "cql2-text"}),
            "filter",
            want,
        ));
    }
    cases.push(case(
        "filter json 1e400 as text",
        json!({"filter": "{\"op\": \"<\", \"args\": [{\"property\": \"eo:cloud_cover\"}, 1e400]}", "filter-lang": "cql2-json"}),
        "filter",
        MatchedOrError(total),
    ));
    cases.push(case(
        "filter json 1e308",
        json!({"filter": {"op": "<", "args": [{"property": "eo:cloud_cover"}, 1e308]}}),
        "filter",
        Matched(total),
    ));
    let huge_square = json!([[
        [-1e308, -1e308],
        [1e308, -1e308],
        [1e308, 1e308],
        [-1e308, 1e308],
        [-1e308, -1e308]
    ]]);
    for (label, geometry, want) in [
        (
            "huge polygon",
            json!({"type": "Polygon", "coordinates": huge_square}),
            MatchedOrError(total),
        ),
        ("point 1e308", json!({"type": "Point", "coordinates": [1e308, 1e308]}), MatchedOrError(0)),
        ("point -1e308", json!({"type": "Point", "coordinates": [-1e308, 0]}), MatchedOrError(0)),
        ("empty polygon", json!({"type": "Polygon", "coordinates": []}), MatchedOrError(0)),
        ("empty multipoint", json!({"type": "MultiPoint", "coordinates": []}), MatchedOrError(0)),
        (
            "ring of 2 points",
            json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}),
            MatchedOrError(0),
        ),
        ("not geometry", json!({"type": "Feature", "properties": {}, "geometry": null}), Refused),
    ] {
        cases.push(case(
            format!("intersects {label}"),
            json!({"intersects": geometry}),
            "intersects",
            want,
        ));
    }
    for (label, datetime, want) in [
        ("year 0", "0000-01-01T00:00:00Z/..", MatchedOrError(total)),
        ("year 9999", "9999-12-31T23:59:59.999999999Z", MatchedOrError(0)),
        ("February 30", "2021-02-30T00:00:00Z", Refused),
        ("year 275760", "+275760-09-13T00:00:00Z", Refused),
        ("offset +99:99", "2021-01-01T00:00:00+99:99", Refused),
        ("open both ends", "../..", MatchedOrError(total)),
        ("reversed", "2021-01-01T00:00:00Z/2020-01-01T00:00:00Z", Refused),
        ("three parts", "2020-01-01T00:00:00Z/2021-01-01T00:00:00Z/2022-01-01T00:00:00Z", Refused),
    ] {
        cases.push(case(
            format!("datetime {label}"),
            json!({"datetime": datetime}),
            "datetime",
            want,
        ));
    }

    // Empty arrays and objects.
    cases.push(case("ids []", json!({"ids": []}), "ids", MatchedOrError(total)));
    cases.push(case(
        "collections []",
        json!({"collections": []}),
        "collections",
        MatchedOrError(total),
    ));
    cases.push(case("sortby []", json!({"sortby": []}), "sortby", Matched(total)));
    cases.push(case("q []", json!({"q": []}), "q", MatchedOrError(total)));
    cases.push(case("fields {}", json!({"fields": {}}), "fields", Matched(total)));
    cases.push(case(
        "fields empty lists",
        json!({"fields": {"include": [], "exclude": []}}),
        "fields",
        Matched(total),
    ));
    cases.push(case("filter {}", json!({"filter": {}}), "filter", Refused));
    cases.push(case(
        "filter and []",
        json!({"filter": {"op": "and", "args": []}}),
        "filter",
        MatchedOrError(total),
    ));
    cases.push(case(
        "filter in []",
        json!({"filter": {"op": "in", "args": [{"property": "id"}, []]}}),
        "filter",
        MatchedOrError(0),
    ));

    // Deep nesting.
    let deep_not = format!("{}id = 'x'{}", "NOT (".repeat(10_000), ")".repeat(10_000));
    let deep_parens = format!("{}id = 'x'{}", "(".repeat(10_000), ")".repeat(10_000));
    let deep_json = format!(
        "{}{{\"op\": \"=\", \"args\": [{{\"property\": \"id\"}}, \"x\"]}}{}",
        "{\"op\": \"not\", \"args\": [".repeat(10_000),
        "]}".repeat(10_000)
    );
    let shallow_not = format!("{}id = 'x'{}", "NOT (".repeat(31), ")".repeat(31));
    let wide_or = (0..5_000)
        .map(|i| format!("id = 'x{i}'"))
        .chain([format!("id = '{}'", id(&items[0]))])
        .collect::<Vec<_>>()
        .join(" OR ");
    cases.push(case(
        "filter NOT x10000",
        json!({"filter": deep_not, "filter-lang": "cql2-text"}),
        "filter",
        MatchedOrError(0),
    ));
    cases.push(case(
        "filter ( x10000",
        json!({"filter": deep_parens, "filter-lang": "cql2-text"}),
        "filter",
        MatchedOrError(0),
    ));
    cases.push(case(
        "filter json not x10000",
        json!({"filter": deep_json, "filter-lang": "cql2-json"}),
        "filter",
        MatchedOrError(0),
    ));
    cases.push(case(
        "filter NOT x31",
        json!({"filter": shallow_not, "filter-lang": "cql2-text"}),
        "filter",
        Matched(total),
    ));
    cases.push(case(
        "filter OR x5001",
        json!({"filter": wide_or, "filter-lang": "cql2-text"}),
        "filter",
        MatchedOrError(1),
    ));
    let mut nested = json!({"op": "=", "args": [{"property": "id"}, "x"]});
    for _ in 0..60 {
        nested = not(nested);
    }
    cases.push(case(
        "filter json value not x60",
        json!({"filter": nested}),
        "filter",
        MatchedOrError(0),
    ));
    cases.push(case(
        "q ( x10000",
        json!({"q": format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000))}),
        "q",
        Refused,
    ));
    cases.push(case(
        "q ( x400",
        json!({"q": format!("{}pgstac{}", "(".repeat(400), ")".repeat(400))}),
        "q",
        Refused,
    ));
    cases.push(case(
        "q -( x300",
        json!({"q": format!("pgstac {}x{}", "-(".repeat(300), ")".repeat(300))}),
        "q",
        MatchedOrError(total),
    ));
    cases.push(case(
        "fields 10000 segments",
        json!({"fields": {"include": ["a.".repeat(10_000) + "a"]}}),
        "fields",
        Matched(total),
    ));
    cases.push(case(
        "sortby 10000 segments",
        json!({"sortby": [{"field": "a.".repeat(10_000) + "a", "direction": "asc"}]}),
        "sortby",
        MatchedOrError(total),
    ));
    let mut deep_array = json!("al");
    for _ in 0..100 {
        deep_array = json!([deep_array]);
    }
    cases.push(case(
        "query in deep array",
        json!({"query": {"naip:state": {"in": [deep_array]}}}),
        "query",
        Refused,
    ));
    let mut collection = json!({"type": "Point", "coordinates": [0, 0]});
    for _ in 0..60 {
        collection = json!({"type": "GeometryCollection", "geometries": [collection]});
    }
    cases.push(case(
        "intersects collection x60",
        json!({"intersects": collection}),
        "intersects",
        MatchedOrError(0),
    ));
    cases
}

/// `{"op": "not", "args": [expr]}`, built without copying `expr` (`json!` would serialise it
/// again, which is quadratic for deep trees).
fn not(expr: Value) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("op".into(), json!("not"));
    object.insert("args".into(), Value::Array(vec![expr]));
    Value::Object(object)
}

/// Runs one case through the library and describes what is wrong, if anything.
fn check_library_case(catalog: &Catalog, case: &Case) -> Option<String> {
    let options = SearchOptions::default();
    let result = Request::from_json(&case.body).map_err(Error::from).and_then(|request| {
        let page = catalog.search(&request, &options)?;
        for item in &page.items {
            serde_json::from_str::<Value>(item).expect("an item is JSON");
        }
        let counted = catalog.count(&request, &options)?;
        let mut given = 0u64;
        if page.number_matched > 0 {
            catalog.search_each(&request, &options, None, |_| {
                given += 1;
                Ok(true)
            })?;
        }
        if counted != page.number_matched || given != page.number_matched {
            return Ok(Err(format!(
                "numberMatched {}, count {counted}, search_each gave {given}",
                page.number_matched
            )));
        }
        Ok(Ok(page.number_matched))
    });
    let problem = match (result, case.want) {
        (Ok(Err(mismatch)), _) => mismatch,
        (Ok(Ok(n)), Want::Matched(m) | Want::MatchedOrError(m)) if n == m => return None,
        (Ok(Ok(n)), want) => format!("matched {n}, wanted {want:?}"),
        (Err(e), want) => {
            let message = e.to_string();
            let shown = short(&message);
            if FORBIDDEN.iter().any(|f| message.contains(f)) {
                format!("error shows internals: {shown}")
            } else if !matches!(e, Error::Search(_)) {
                format!("not a search error ({want:?}): {e:?}").chars().take(300).collect()
            } else if want == Want::Refused || matches!(want, Want::MatchedOrError(_)) {
                if message.contains(case.param) {
                    return None;
                }
                format!("error does not name `{}`: {shown}", case.param)
            } else {
                format!("wanted {want:?}, got error: {shown}")
            }
        }
    };
    Some(format!("{}: {problem}", case.label))
}

/// Runs `stacdb search` (or `count`) and describes what is wrong, if anything.
fn check_cli_case(label: &str, args: &[String], param: &str, want: Want) -> Option<String> {
    let out = common::stacdb(args);
    let stderr = stderr_of(&out);
    let code = out.status.code();
    let problem = if FORBIDDEN.iter().any(|f| stderr.contains(f)) || stderr.contains("panicked") {
        format!("stderr shows internals: {}", short(&stderr))
    } else {
        match (code, want) {
            (Some(0), Want::Matched(m) | Want::MatchedOrError(m)) => {
                let n = if args[0] == "count" {
                    String::from_utf8_lossy(&out.stdout).trim().parse::<u64>().unwrap_or(u64::MAX)
                } else {
                    String::from_utf8_lossy(&out.stdout).lines().count() as u64
                };
                if n == m && stderr.is_empty() {
                    return None;
                }
                format!("gave {n} items (wanted {m}), stderr {}", short(&stderr))
            }
            (Some(0), Want::Refused) => "exit 0, wanted an error".into(),
            (Some(2), Want::Refused | Want::MatchedOrError(_)) => {
                if stderr.to_lowercase().contains(param) {
                    return None;
                }
                format!("exit 2 but stderr does not name `{param}`: {}", short(&stderr))
            }
            (code, want) => format!("exit {code:?} (wanted {want:?}): {}", short(&stderr)),
        }
    };
    Some(format!("cli {label}: {problem}"))
}

#[test]
fn hostile_input_gives_answers_or_clear_errors() {
    let Some(data) = common::data_dir("search::hostile_input_gives_answers_or_clear_errors") else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pg.stacdb");
    let items = pgstac_catalog(&data, &path);
    let catalog = Catalog::open_read_only(&path).unwrap();
    let total = items.len() as u64;
    let mut problems = Vec::new();

    // The library.
    let cases = library_cases(&items);
    for case in &cases {
        problems.extend(check_library_case(&catalog, case));
    }
    // A filter tree deeper than any parser allows, built directly (only a caller that makes
    // its own Value can do this), on a thread with room for the test's own recursion.
    let deep = std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || {
            let mut nested = json!({"op": "=", "args": [{"property": "id"}, "x"]});
            for _ in 0..10_000 {
                nested = not(nested);
            }
            let catalog = Catalog::open_read_only(&path).unwrap();
            let body = json!({"filter": nested});
            let result = Request::from_json(&body)
                .map_err(Error::from)
                .and_then(|r| catalog.search(&r, &SearchOptions::default()));
            let outcome = match result {
                Ok(page) if page.number_matched == 0 => None,
                Ok(page) => Some(format!("matched {}", page.number_matched)),
                Err(Error::Search(e)) if e.to_string().contains("filter") => None,
                Err(e) => Some(format!("{e}")),
            };
            drop(body);
            outcome.map(|o| format!("filter json value not x10000: {o}"))
        })
        .unwrap()
        .join()
        .expect("the deep filter thread must not panic");
    problems.extend(deep);
    let library_time = started.elapsed();

    // The command line (NUL cannot be an argument; it goes through @FILE below).
    let cat = p(&dir.path().join("pg.stacdb")).to_owned();
    let states = |f: &dyn Fn(&str) -> bool| {
        items.iter().filter(|i| f(i["properties"]["naip:state"].as_str().unwrap())).count() as u64
    };
    let mut runs = 0;
    let mut cli = |label: String, args: Vec<String>, param: &str, want: Want| {
        runs += 1;
        let mut full = vec!["search".to_string(), cat.clone()];
        full.extend(args);
        // Linux refuses a single argument longer than 128 KiB.
        if full.iter().any(|a| a.len() > 120_000) {
            return;
        }
        if let Some(problem) = check_cli_case(&label, &full, param, want) {
            problems.push(problem);
        }
    };
    use Want::*;
    for s in hostile_strings().into_iter().filter(|s| !s.contains('\0') && !s.contains(',')) {
        let l = short(&s);
        let flag = |name: &str, value: &str| vec![format!("--{name}={value}")];
        // `--ids=` is the list of one empty id.
        let list = Matched(0);
        cli(format!("--ids={l}"), flag("ids", &s), "ids", list);
        cli(format!("--collections={l}"), flag("collections", &s), "collections", list);
        cli(format!("--q={l}"), flag("q", &s), "q", MatchedOrError(0));
        cli(
            format!("--filter identifier {l}"),
            vec![format!("--filter=\"{s}\" = 'x'"), "--filter-lang=cql2-text".into()],
            "filter",
            MatchedOrError(0),
        );
        cli(
            format!("--filter literal {l}"),
            flag("filter", &format!("id = '{}'", s.replace('\'', "''"))),
            "filter",
            MatchedOrError(0),
        );
        cli(
            format!("--filter json property {l}"),
            flag("filter", &json!({"op": "=", "args": [{"property": s}, "x"]}).to_string()),
            "filter",
            MatchedOrError(0),
        );
        cli(
            format!("--query property {l}"),
            flag("query", &json!({s.clone(): {"eq": "x"}}).to_string()),
            "query",
            MatchedOrError(0),
        );
        cli(
            format!("--query startsWith {l}"),
            flag("query", &json!({"naip:state": {"startsWith": s}}).to_string()),
            "query",
            if s.len() > 1000 {
                MatchedOrError(states(&|st| st.starts_with(s.as_str())))
            } else {
                Matched(states(&|st| st.starts_with(s.as_str())))
            },
        );
        cli(format!("--sortby={l}"), flag("sortby", &s), "sortby", MatchedOrError(total));
        cli(format!("--fields={l}"), flag("fields", &s), "fields", Matched(total));
        cli(format!("--datetime={l}"), flag("datetime", &s), "datetime", Refused);
        cli(
            format!("--filter-lang={l}"),
            vec!["--filter=id = 'x'".into(), format!("--filter-lang={s}")],
            "filter-lang",
            Refused,
        );
        cli(format!("--next={l}"), flag("next", &s), "token", Refused);
        cli(format!("--bbox={l}"), flag("bbox", &s), "bbox", Refused);
        if !s.is_empty() && s != " " {
            cli(format!("--intersects={l}"), flag("intersects", &s), "intersects", Refused);
        }
        cli(
            format!("--limit={l}"),
            vec![format!("--limit={s}"), "--format=json".into()],
            "limit",
            Refused,
        );
        cli(format!("--timeout={l}"), flag("timeout", &s), "timeout", Refused);
        cli(format!("--max-items={l}"), flag("max-items", &s), "max-items", Refused);
    }
    for bbox in [
        "NaN,0,1,1",
        "0,0,inf,1",
        "-Infinity,0,1,1",
        "1e400,0,1,1",
        "1e308,0,1e308,1",
        "-1e308,-1e308,1e308,1e308",
        "0,0,1",
        "",
        ",,,",
        "0,0,1,1,",
    ] {
        cli(format!("--bbox={bbox}"), vec![format!("--bbox={bbox}")], "bbox", Refused);
    }
    cli("--bbox whole world".into(), vec!["--bbox=-180,-90,180,90".into()], "bbox", Matched(total));
    for timeout in ["0", "-1", "NaN", "inf", "1e400"] {
        cli(
            format!("--timeout={timeout}"),
            vec![format!("--timeout={timeout}")],
            "timeout",
            Refused,
        );
    }
    for (label, limit) in
        [("1e308", "1e308"), ("-1", "-1"), ("0", "0"), ("huge", "99999999999999999999999")]
    {
        cli(
            format!("--limit={label}"),
            vec![format!("--limit={limit}"), "--format=json".into()],
            "limit",
            Refused,
        );
    }
    cli(
        "--query 1e400".into(),
        vec![r#"--query={"eo:cloud_cover": {"lt": 1e400}}"#.into()],
        "query",
        MatchedOrError(total),
    );
    cli(
        "--query 1e308".into(),
        vec![r#"--query={"eo:cloud_cover": {"lt": 1e308}}"#.into()],
        "query",
        Matched(total),
    );
    cli(
        "--filter huge BBOX".into(),
        vec!["--filter=S_INTERSECTS(geometry, BBOX(-1e308, -1e308, 1e308, 1e308))".into()],
        "filter",
        MatchedOrError(total),
    );
    cli(
        "--filter 1e400".into(),
        vec!["--filter=eo:cloud_cover < 1e400".into()],
        "filter",
        MatchedOrError(total),
    );
    cli(
        "--filter -1e400".into(),
        vec!["--filter=eo:cloud_cover > -1e400".into()],
        "filter",
        MatchedOrError(total),
    );
    cli(
        "--intersects huge".into(),
        vec![format!(
            "--intersects={}",
            json!({"type": "Polygon", "coordinates": [[[-1e308, -1e308], [1e308, -1e308], [1e308, 1e308], [-1e308, 1e308], [-1e308, -1e308]]]})
        )],
        "intersects",
        MatchedOrError(total),
    );
    cli(
        "--intersects 1e400".into(),
        vec![r#"--intersects={"type": "Point", "coordinates": [1e400, 0]}"#.into()],
        "intersects",
        Refused,
    );
    cli(
        "--filter NOT x10000".into(),
        vec![format!("--filter={}id = 'x'{}", "NOT (".repeat(10_000), ")".repeat(10_000))],
        "filter",
        MatchedOrError(0),
    );
    cli(
        "--filter ( x10000".into(),
        vec![format!("--filter={}id = 'x'{}", "(".repeat(10_000), ")".repeat(10_000))],
        "filter",
        MatchedOrError(0),
    );
    cli(
        "--q ( x10000".into(),
        vec![format!("--q={}a{}", "(".repeat(10_000), ")".repeat(10_000))],
        "q",
        Refused,
    );

    // NUL through files.
    let files: Vec<(&str, &str, String, &str, Want)> = vec![
        ("filter", "nul identifier", "\"a\0b\" = 'x'".into(), "filter", MatchedOrError(0)),
        ("filter", "nul literal", "id = 'a\0b'".into(), "filter", MatchedOrError(0)),
        (
            "filter",
            "nul json property",
            json!({"op": "=", "args": [{"property": "a\0b"}, "x"]}).to_string(),
            "filter",
            MatchedOrError(0),
        ),
        (
            "filter",
            "nul json literal",
            json!({"op": "=", "args": [{"property": "id"}, "\0"]}).to_string(),
            "filter",
            Matched(0),
        ),
        (
            "query",
            "nul property",
            json!({"a\0": {"eq": "x"}}).to_string(),
            "query",
            MatchedOrError(0),
        ),
        (
            "query",
            "nul value",
            json!({"naip:state": {"startsWith": "\0"}}).to_string(),
            "query",
            MatchedOrError(0),
        ),
        ("query", "raw nul", "{\"naip:state\": {\"eq\": \"\0\"}}".into(), "query", Refused),
        (
            "intersects",
            "nul type",
            json!({"type": "Point\0", "coordinates": [0, 0]}).to_string(),
            "intersects",
            Refused,
        ),
        ("filter", "missing file", String::new(), "filter", Refused),
        (
            "filter",
            "json not x10000",
            format!(
                "{}{{\"op\": \"=\", \"args\": [{{\"property\": \"id\"}}, \"x\"]}}{}",
                "{\"op\": \"not\", \"args\": [".repeat(10_000),
                "]}".repeat(10_000)
            ),
            "filter",
            MatchedOrError(0),
        ),
        (
            "filter",
            "text 100 KB identifier",
            format!("\"{}\" = 'x'", "\"\"".repeat(50_000)),
            "filter",
            MatchedOrError(0),
        ),
    ];
    for (n, (flag, label, content, param, want)) in files.into_iter().enumerate() {
        let file = dir.path().join(format!("hostile-{n}.txt"));
        if label != "missing file" {
            std::fs::write(&file, content).unwrap();
        }
        cli(format!("--{flag}=@{label}"), vec![format!("--{flag}=@{}", p(&file))], param, want);
    }
    // count takes the same filters.
    for (label, args, param, want) in [
        ("q NEAR(", vec!["--q=NEAR(".to_string()], "q", MatchedOrError(0)),
        (
            "filter NOT x10000",
            vec![format!("--filter={}id = 'x'{}", "NOT (".repeat(10_000), ")".repeat(10_000))],
            "filter",
            MatchedOrError(0),
        ),
        ("ids quote", vec!["--ids=' OR 1=1 --".to_string()], "ids", Matched(0)),
        ("datetime", vec!["--datetime=' OR 1=1 --".to_string()], "datetime", Refused),
        ("bbox NaN", vec!["--bbox=NaN,0,1,1".to_string()], "bbox", Refused),
    ] {
        runs += 1;
        let mut full = vec!["count".to_string(), cat.clone()];
        full.extend(args);
        problems.extend(check_cli_case(&format!("count {label}"), &full, param, want));
    }
    eprintln!(
        "hostile input: {} library cases in {:.1} s, {runs} command lines in {:.1} s",
        cases.len(),
        library_time.as_secs_f64(),
        (started.elapsed() - library_time).as_secs_f64()
    );
    assert!(problems.is_empty(), "{} problem(s):\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 4. Features on real data

/// The tokens of the item's indexed text (id, title, description, keywords), one list per
/// column, as the `unicode61` tokenizer makes them for ASCII text.
fn text_columns(item: &Value) -> Vec<Vec<String>> {
    let props = &item["properties"];
    let keywords = props["keywords"]
        .as_array()
        .map(|k| k.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "));
    [
        Some(id(item).to_owned()),
        props["title"].as_str().map(str::to_owned),
        props["description"].as_str().map(str::to_owned),
        keywords,
    ]
    .into_iter()
    .flatten()
    .map(|text| {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
            .collect()
    })
    .collect()
}

fn has_term(columns: &[Vec<String>], term: &str) -> bool {
    columns.iter().any(|c| c.iter().any(|t| t == term))
}

fn has_phrase(columns: &[Vec<String>], phrase: &[&str]) -> bool {
    columns
        .iter()
        .any(|c| c.windows(phrase.len()).any(|w| w.iter().zip(phrase).all(|(a, b)| a == b)))
}

fn num(item: &Value, property: &str) -> Option<f64> {
    item["properties"].get(property).and_then(Value::as_f64)
}

fn text<'a>(item: &'a Value, property: &str) -> Option<&'a str> {
    item["properties"].get(property).and_then(Value::as_str)
}

#[test]
fn features_match_answers_computed_from_the_items() {
    let Some(data) = common::data_dir("search::features_match_answers_computed_from_the_items")
    else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (path, items) = s2_catalog(&data, dir.path());
    let catalog = Catalog::open_read_only(&path).unwrap();
    let cat = p(&path).to_owned();
    let total = items.len();
    let matched = |body: Value| {
        let mut body = body;
        body["limit"] = json!(1);
        catalog.search(&request(body), &SearchOptions::default()).unwrap().number_matched
    };
    let expected_ids = |f: &dyn Fn(&Value) -> bool| -> BTreeSet<String> {
        items.iter().filter(|i| f(i)).map(|i| id(i).to_owned()).collect()
    };

    // The default order: newest first, then id descending.
    let mut by_default = items.clone();
    by_default.sort_by(|a, b| item_time(b).cmp(&item_time(a)).then_with(|| id(b).cmp(id(a))));
    let default_ids = ids(&by_default);
    assert_eq!(ids(&all_of(&catalog, json!({}))), default_ids);
    let ties = by_default.windows(2).filter(|w| item_time(&w[0]) == item_time(&w[1])).count();
    assert!(ties > 100, "the data should have many items with the same time ({ties})");
    let out = common::stacdb(["search", &cat]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(ndjson_ids(&out.stdout), default_ids, "stacdb search, default order");

    // Sort by one property, both ways (numbers, text, and a property most items lack).
    for field in ["eo:cloud_cover", "platform", "s2:dark_features_percentage"] {
        for descending in [false, true] {
            let order: Order = vec![(field, descending)];
            let got = all_of(&catalog, json!({"sortby": sortby_json(&order)}));
            assert_eq!(got.len(), total, "sortby {field}");
            let mut want: Vec<Vec<Key>> = items.iter().map(|i| keys_of(i, &order)).collect();
            want.sort_by(|a, b| cmp_keys(a, b, &order));
            let got_keys: Vec<Vec<Key>> = got.iter().map(|i| keys_of(i, &order)).collect();
            assert_eq!(got_keys, want, "sortby {field} descending={descending}");
        }
    }
    // Several keys, through the library, pages, and the command line.
    let order: Order = vec![
        ("platform", false),
        ("sat:relative_orbit", true),
        ("eo:cloud_cover", false),
        ("id", true),
    ];
    let got = all_of(&catalog, json!({"sortby": sortby_json(&order)}));
    let mut want = items.clone();
    want.sort_by(|a, b| cmp_keys(&keys_of(a, &order), &keys_of(b, &order), &order));
    assert_eq!(ids(&got), ids(&want), "sortby with four keys");
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"sortby": sortby_json(&order), "limit": 37});
        if let Some(t) = &token {
            body["token"] = json!(t);
        }
        let page = catalog.search(&request(body), &SearchOptions::default()).unwrap();
        assert_eq!(page.number_matched, total as u64);
        paged.extend(
            page.items.iter().map(|i| serde_json::from_str::<IdOnly>(i).unwrap().id.into_owned()),
        );
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, ids(&want), "pages of 37 with four sort keys");
    let out = common::stacdb(["search", &cat, &format!("--sortby={}", sortby_arg(&order))]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(ndjson_ids(&out.stdout), ids(&want), "stacdb search --sortby");
    let out = common::stacdb([
        "search",
        &cat,
        "--sortby=platform,-sat:relative_orbit,eo:cloud_cover,-id",
        "--max-items=300",
    ]);
    assert_eq!(ndjson_ids(&out.stdout), ids(&want[..300]), "stacdb search --sortby without +");

    // fields: include only some, and exclude from the default set.
    let got =
        all_whole(&catalog, json!({"fields": {"include": ["id", "properties.eo:cloud_cover"]}}));
    assert_eq!(got.len(), total);
    let originals: HashMap<&str, &Value> = items.iter().map(|i| (id(i), i)).collect();
    for item in &got {
        let keys: BTreeSet<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        // type, stac_version, id and collection come with any include list.
        assert_eq!(
            keys,
            BTreeSet::from(["collection", "id", "properties", "stac_version", "type"]),
            "include: {item}"
        );
        let props: Vec<&String> = item["properties"].as_object().unwrap().keys().collect();
        assert_eq!(props, ["eo:cloud_cover"], "include: {item}");
        assert_eq!(num(item, "eo:cloud_cover"), num(originals[id(item)], "eo:cloud_cover"));
    }
    let out = common::stacdb(["search", &cat, "--fields=id,properties.eo:cloud_cover"]);
    let cli: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cli, got, "--fields include");
    let default_minus = |item: &Value, excluded: &[&str]| {
        let original = originals[id(item)];
        let mut want = serde_json::Map::new();
        for key in ["type", "stac_version", "id", "geometry", "bbox", "links", "assets"] {
            if !excluded.contains(&key) && original.get(key).is_some() {
                want.insert(key.into(), original[key].clone());
            }
        }
        want.insert("properties".into(), json!({"datetime": original["properties"]["datetime"]}));
        Value::Object(want)
    };
    let got =
        all_whole(&catalog, json!({"fields": {"include": [], "exclude": ["geometry", "assets"]}}));
    assert_eq!(got.len(), total);
    for item in &got {
        assert_eq!(
            item,
            &default_minus(item, &["geometry", "assets"]),
            "exclude from the default set"
        );
    }
    let out = common::stacdb(["search", &cat, "--fields=-geometry,-assets", "--max-items=50"]);
    let cli: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cli.len(), 50);
    // The CLI says what a POST body with only `exclude` says: everything but those.
    for item in &cli {
        let object = item.as_object().unwrap();
        assert!(!object.contains_key("geometry") && !object.contains_key("assets"), "{item}");
        assert!(object.contains_key("stac_extensions"), "--fields=-geometry,-assets: {item}");
        assert!(item["properties"].as_object().unwrap().len() > 1, "{item}");
    }

    // STACQL query, each operator, against the same condition evaluated here.
    let cloud: Vec<f64> = {
        let mut v: Vec<f64> = items.iter().filter_map(|i| num(i, "eo:cloud_cover")).collect();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v
    };
    let median = cloud[cloud.len() / 2];
    type Condition = Box<dyn Fn(&Value) -> bool>;
    let queries: Vec<(Value, Condition)> = vec![
        (
            json!({"platform": {"eq": "Sentinel-2A"}}),
            Box::new(|i| text(i, "platform") == Some("Sentinel-2A")),
        ),
        (
            json!({"platform": {"neq": "Sentinel-2A"}}),
            Box::new(|i| text(i, "platform").is_some_and(|p| p != "Sentinel-2A")),
        ),
        (
            json!({"eo:cloud_cover": {"lt": median}}),
            Box::new(move |i| num(i, "eo:cloud_cover").is_some_and(|c| c < median)),
        ),
        (
            json!({"eo:cloud_cover": {"lte": median}}),
            Box::new(move |i| num(i, "eo:cloud_cover").is_some_and(|c| c <= median)),
        ),
        (
            json!({"eo:cloud_cover": {"gt": median}}),
            Box::new(move |i| num(i, "eo:cloud_cover").is_some_and(|c| c > median)),
        ),
        (
            json!({"eo:cloud_cover": {"gte": median}}),
            Box::new(move |i| num(i, "eo:cloud_cover").is_some_and(|c| c >= median)),
        ),
        (
            json!({"eo:cloud_cover": {"gte": 0, "lt": 0.001}}),
            Box::new(|i| num(i, "eo:cloud_cover").is_some_and(|c| (0.0..0.001).contains(&c))),
        ),
        (
            json!({"sat:relative_orbit": {"lte": 98}}),
            Box::new(|i| num(i, "sat:relative_orbit").is_some_and(|o| o <= 98.0)),
        ),
        (json!({"gsd": {"eq": 1}}), Box::new(|i| num(i, "gsd") == Some(1.0))),
        (
            json!({"s2:mgrs_tile": {"startsWith": "13T"}}),
            Box::new(|i| text(i, "s2:mgrs_tile").is_some_and(|t| t.starts_with("13T"))),
        ),
        (
            json!({"s2:mgrs_tile": {"endsWith": "EF"}}),
            Box::new(|i| text(i, "s2:mgrs_tile").is_some_and(|t| t.ends_with("EF"))),
        ),
        (
            json!({"s2:mgrs_tile": {"contains": "3SD"}}),
            Box::new(|i| text(i, "s2:mgrs_tile").is_some_and(|t| t.contains("3SD"))),
        ),
        (
            json!({"s2:granule_id": {"contains": "_N05"}}),
            Box::new(|i| text(i, "s2:granule_id").is_some_and(|t| t.contains("_N05"))),
        ),
        (json!({"s2:granule_id": {"contains": "%"}}), Box::new(|_| false)),
        (json!({"id": {"startsWith": "S2A_"}}), Box::new(|i| id(i).starts_with("S2A_"))),
        (
            json!({"s2:mgrs_tile": {"in": ["13TEF", "13SDD", "none"]}}),
            Box::new(|i| matches!(text(i, "s2:mgrs_tile"), Some("13TEF" | "13SDD"))),
        ),
        (
            json!({"sat:relative_orbit": {"in": [41, 84]}}),
            Box::new(|i| matches!(num(i, "sat:relative_orbit"), Some(o) if o == 41.0 || o == 84.0)),
        ),
        (
            json!({"platform": {"eq": "Sentinel-2B"}, "eo:cloud_cover": {"gte": 1, "lt": 20}}),
            Box::new(|i| {
                text(i, "platform") == Some("Sentinel-2B")
                    && num(i, "eo:cloud_cover").is_some_and(|c| (1.0..20.0).contains(&c))
            }),
        ),
    ];
    for (query, condition) in &queries {
        let want = expected_ids(condition);
        let body = json!({"query": query});
        assert_eq!(id_set(&catalog, body.clone()), want, "query {query}");
        assert_eq!(matched(body), want.len() as u64, "numberMatched of query {query}");
        let out = common::stacdb(["count", &cat, &format!("--query={query}")]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want.len().to_string(),
            "stacdb count --query={query}"
        );
    }
    let nonempty = queries.iter().filter(|(_, c)| items.iter().any(c)).count();
    assert!(nonempty >= queries.len() - 1, "the query cases should mostly match something");

    // Free text, against the same expression evaluated over the indexed tokens here.
    type Cond = Box<dyn Fn(&[Vec<String>]) -> bool>;
    let t = |term: &'static str| move |c: &[Vec<String>]| has_term(c, term);
    let free: Vec<(&str, Cond)> = vec![
        ("T13TEF", Box::new(t("t13tef"))),
        ("t13tef", Box::new(t("t13tef"))),
        ("T13TEF T13SDD", Box::new(|c| has_term(c, "t13tef") || has_term(c, "t13sdd"))),
        ("T13TEF OR T13SDD", Box::new(|c| has_term(c, "t13tef") || has_term(c, "t13sdd"))),
        ("T13TEF,T13SDD", Box::new(|c| has_term(c, "t13tef") || has_term(c, "t13sdd"))),
        ("S2A AND R141", Box::new(|c| has_term(c, "s2a") && has_term(c, "r141"))),
        ("\"R141 T13TEF\"", Box::new(|c| has_phrase(c, &["r141", "t13tef"]))),
        ("\"T13TEF R141\"", Box::new(|c| has_phrase(c, &["t13tef", "r141"]))),
        (
            "(T13TEF OR T13SDD) AND NOT S2A",
            Box::new(|c| (has_term(c, "t13tef") || has_term(c, "t13sdd")) && !has_term(c, "s2a")),
        ),
        (
            "(T13TEF OR T13SDD) -S2A",
            Box::new(|c| (has_term(c, "t13tef") || has_term(c, "t13sdd")) && !has_term(c, "s2a")),
        ),
        ("+S2B R141 -T13TEF", Box::new(|c| has_term(c, "s2b") && !has_term(c, "t13tef"))),
        (
            "T13TEF S2A AND R098",
            Box::new(|c| has_term(c, "t13tef") || (has_term(c, "s2a") && has_term(c, "r098"))),
        ),
        (
            "R141 AND (T13TEF OR T13TEE) AND S2B",
            Box::new(|c| {
                has_term(c, "r141")
                    && (has_term(c, "t13tef") || has_term(c, "t13tee"))
                    && has_term(c, "s2b")
            }),
        ),
        ("pgstac", Box::new(t("pgstac"))),
        ("\"test item 0003\"", Box::new(|c| has_phrase(c, &["test", "item", "0003"]))),
        ("pgstac-test-item-0042", Box::new(|c| has_phrase(c, &["pgstac", "test", "item", "0042"]))),
        ("nothing-like-this", Box::new(|_| false)),
    ];
    let columns: HashMap<&str, Vec<Vec<String>>> =
        items.iter().map(|i| (id(i), text_columns(i))).collect();
    for (q, condition) in &free {
        let want: BTreeSet<String> =
            columns.iter().filter(|(_, c)| condition(c)).map(|(i, _)| i.to_string()).collect();
        assert_eq!(id_set(&catalog, json!({"q": q})), want, "q {q}");
        assert_eq!(matched(json!({"q": q})), want.len() as u64, "numberMatched of q {q}");
        let out = common::stacdb(["count", &cat, &format!("--q={q}")]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want.len().to_string(),
            "stacdb count --q={q}"
        );
    }
    let empty = free.iter().filter(|(_, c)| !columns.values().any(|col| c(col))).count();
    assert_eq!(empty, 2, "all but the two impossible q cases match something");

    // ids and collections.
    let (a, b, c) = (id(&by_default[0]), id(&by_default[500]), id(&by_default[1099]));
    let s2 = |i: &str| i.starts_with("S2");
    for (body, want) in [
        (json!({"ids": [a, b, c, "nope"]}), vec![a, b, c]),
        (
            json!({"ids": [a, b, c], "collections": ["sentinel-2-l2a"]}),
            [a, b, c].into_iter().filter(|i| s2(i)).collect(),
        ),
        (
            json!({"ids": [a, b, c], "collections": ["pgstac-test-collection", "nope"]}),
            [a, b, c].into_iter().filter(|i| !s2(i)).collect(),
        ),
        (json!({"ids": [a], "collections": ["nope"]}), vec![]),
    ] {
        let want: BTreeSet<String> = want.into_iter().map(str::to_owned).collect();
        assert_eq!(id_set(&catalog, body.clone()), want, "{body}");
        assert_eq!(matched(body), want.len() as u64);
    }
    assert_eq!(matched(json!({"collections": ["sentinel-2-l2a"]})), 1000);
    assert_eq!(matched(json!({"collections": ["pgstac-test-collection"]})), 100);
    assert_eq!(
        matched(json!({"collections": ["sentinel-2-l2a", "pgstac-test-collection", "x"]})),
        1100
    );
    let mid = micros("2024-08-01T00:00:00Z");
    let bbox = [-105.0, 39.0, -104.0, 40.0];
    let in_box = |i: &Value| {
        let b: Vec<f64> =
            i["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        b[0] <= bbox[2] && b[2] >= bbox[0] && b[1] <= bbox[3] && b[3] >= bbox[1]
    };
    let since = expected_ids(&|i| item_time(i) >= mid).len() as u64;
    assert_eq!(matched(json!({"datetime": "2024-08-01T00:00:00Z/.."})), since);
    // Footprints are polygons inside their bboxes, so the bbox test bounds the exact answer.
    let box_hits = matched(json!({"bbox": bbox}));
    let box_upper = expected_ids(&in_box).len() as u64;
    assert!(box_hits > 0 && box_hits <= box_upper, "bbox: {box_hits} of at most {box_upper}");

    // stacdb count agrees with the number of NDJSON lines.
    for args in [
        vec![],
        vec!["--collections=pgstac-test-collection".to_string()],
        vec!["--q=T13TEF OR pgstac".into()],
        vec!["--query={\"eo:cloud_cover\": {\"lt\": 10}}".into()],
        vec!["--filter=eo:cloud_cover < 10 AND platform = 'Sentinel-2B'".into()],
        vec!["--bbox=-105,39,-104,40".into()],
        vec!["--datetime=2024-08-01T00:00:00Z/..".into(), "--bbox=-105,39,-104,40".into()],
        vec!["--ids=nope".into()],
    ] {
        let mut count_args = vec!["count".to_string(), cat.clone()];
        count_args.extend(args.iter().cloned());
        let counted: u64 = common::stacdb_ok(&count_args).trim().parse().expect("a count");
        let mut search_args = vec!["search".to_string(), cat.clone()];
        search_args.extend(args.iter().cloned());
        let lines = common::stacdb_ok(&search_args).lines().count() as u64;
        assert_eq!(counted, lines, "count vs search {args:?}");
    }

    // Output shapes: --max-items, --all, --format json, --next.
    let out = common::stacdb_ok(["search", &cat, "--max-items=7"]);
    assert_eq!(ndjson_ids(out.as_bytes()), default_ids[..7]);
    let page: Value =
        serde_json::from_str(&common::stacdb_ok(["search", &cat, "--format=json"])).unwrap();
    assert_eq!(page["type"], "FeatureCollection");
    assert_eq!(page["numberMatched"], total);
    assert_eq!(page["numberReturned"], 10);
    assert_eq!(
        page["features"].as_array().unwrap().iter().map(|f| id(f).to_owned()).collect::<Vec<_>>(),
        default_ids[..10]
    );
    let next = page["next"].as_str().expect("a next token").to_owned();
    let page2: Value = serde_json::from_str(&common::stacdb_ok([
        "search",
        &cat,
        "--format=json",
        &format!("--next={next}"),
    ]))
    .unwrap();
    assert_eq!(
        page2["features"].as_array().unwrap().iter().map(|f| id(f).to_owned()).collect::<Vec<_>>(),
        default_ids[10..20]
    );
    assert_eq!(page2["numberMatched"], total);
    let rest = common::stacdb_ok(["search", &cat, &format!("--next={next}")]);
    assert_eq!(ndjson_ids(rest.as_bytes()), default_ids[10..], "ndjson after a token");
    let page: Value = serde_json::from_str(&common::stacdb_ok([
        "search",
        &cat,
        "--format=json",
        "--max-items=5",
    ]))
    .unwrap();
    assert_eq!(
        (page["numberReturned"].as_u64(), page["features"].as_array().unwrap().len()),
        (Some(5), 5)
    );
    assert!(page["next"].is_string());
    let page: Value =
        serde_json::from_str(&common::stacdb_ok(["search", &cat, "--format=json", "--ids=nope"]))
            .unwrap();
    assert_eq!(
        page,
        json!({"type": "FeatureCollection", "features": [], "numberMatched": 0, "numberReturned": 0})
    );
    assert_eq!(common::stacdb_ok(["count", &cat]).trim(), total.to_string());

    // `stacdb search … | head -1`: the reader goes away, the search ends quietly with 0.
    let mut child = common::bin()
        .args(["search", &cat])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    drop(reader);
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(id(&serde_json::from_str(&line).unwrap()), default_ids[0]);
    assert!(status.success(), "search | head -1 exited {status}: {stderr}");
    assert!(stderr.is_empty(), "search | head -1 wrote to stderr: {stderr}");
    eprintln!("features: {:.1} s", started.elapsed().as_secs_f64());
}

/// `--format json --all` is one page of every item, as is the largest `--limit`.
#[test]
fn a_json_page_can_hold_every_item() {
    let Some(data) = common::data_dir("search::a_json_page_can_hold_every_item") else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pg.stacdb");
    let items = pgstac_catalog(&data, &path);
    let cat = p(&path);
    let max = u64::MAX.to_string();
    for (label, args) in [
        ("--all", vec!["--all"]),
        ("--limit=u64::MAX", vec!["--limit", &max]),
        ("--max-items=u64::MAX", vec!["--max-items", &max]),
    ] {
        let mut full = vec!["search", cat, "--format=json"];
        full.extend(args);
        let out = common::stacdb(&full);
        let stderr = stderr_of(&out);
        assert!(out.status.success(), "{label}: exit {}: {}", out.status, short(&stderr));
        let page: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(page["numberMatched"], items.len(), "{label}");
        assert_eq!(page["numberReturned"], items.len(), "{label}");
        assert_eq!(page["features"].as_array().unwrap().len(), items.len(), "{label}");
        assert!(page.get("next").is_none(), "{label}: one page without next");
    }
    // The library, with no cap on the page size.
    let catalog = Catalog::open_read_only(&path).unwrap();
    let options = SearchOptions { max_limit: u64::MAX, ..Default::default() };
    let page = catalog.search(&request(json!({"limit": u64::MAX})), &options).unwrap();
    assert_eq!((page.items.len(), page.next), (items.len(), None));
}

/// The fields extension for a POST body: `exclude` without `include` returns every field but
/// the excluded ones (Semantics 3), and `"fields": {}` returns the default set (Semantics 1).
#[test]
fn fields_follow_the_spec_for_missing_include() {
    let Some(data) = common::data_dir("search::fields_follow_the_spec_for_missing_include") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pg.stacdb");
    let items = pgstac_catalog(&data, &path);
    let catalog = Catalog::open_read_only(&path).unwrap();
    let originals: HashMap<&str, &Value> = items.iter().map(|i| (id(i), i)).collect();
    let mut problems = Vec::new();

    let got = all_whole(
        &catalog,
        json!({"fields": {"exclude": ["geometry", "properties.proj:transform"]}}),
    );
    assert_eq!(got.len(), items.len());
    let mut want = originals[id(&got[0])].clone();
    want.as_object_mut().unwrap().remove("geometry");
    want["properties"].as_object_mut().unwrap().remove("proj:transform");
    if got[0] != want {
        problems.push(format!(
            "{{\"fields\": {{\"exclude\": [\"geometry\", \"properties.proj:transform\"]}}}} should give every other field; got keys {:?}, properties {:?}",
            got[0].as_object().unwrap().keys().collect::<Vec<_>>(),
            got[0]["properties"].as_object().map(|p| p.keys().collect::<Vec<_>>())
        ));
    }

    let got = all_whole(&catalog, json!({"fields": {}}));
    let keys: BTreeSet<&str> = got[0].as_object().unwrap().keys().map(String::as_str).collect();
    let default: BTreeSet<&str> =
        ["type", "stac_version", "id", "geometry", "bbox", "links", "assets", "properties"].into();
    let props: Vec<&String> = got[0]["properties"].as_object().unwrap().keys().collect();
    if keys != default || props != ["datetime"] {
        problems.push(format!(
            "{{\"fields\": {{}}}} should give the default set; got keys {keys:?}, properties {props:?}"
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 5. Time limit

#[test]
fn a_search_over_its_time_limit_stops_and_the_catalog_stays_usable() {
    let Some(data) = common::data_dir("search::a_search_over_its_time_limit_stops") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("naip.stacdb");
    let naip = common::data_file(&data, NAIP);
    ingest(
        &mut Catalog::create(&path).unwrap(),
        &[&common::data_file(&data, NAIP_COLLECTIONS), &naip],
        Mode::Insert,
    );
    let items: Vec<Slim> = common::gz_lines(&naip, usize::MAX)
        .iter()
        .map(|line| serde_json::from_str(line).expect("item"))
        .collect();
    let catalog = Catalog::open_read_only(&path).unwrap();
    // A LIKE on a property of every item, and a sort on a property: every row is read.
    let body = json!({
        "filter": "\"naip:state\" LIKE '%o%' AND \"proj:epsg\" > 0",
        "filter-lang": "cql2-text",
        "sortby": [{"field": "proj:epsg", "direction": "desc"}],
        "limit": 5,
    });
    let want = items
        .iter()
        .filter(|i| i.properties["naip:state"].as_str().is_some_and(|s| s.contains('o')))
        .count() as u64;
    assert!(want > 9000);
    let req = request(body.clone());
    let tiny = SearchOptions { timeout: Some(Duration::from_micros(1)), ..Default::default() };
    let is_timeout = |label: &str, e: Error| {
        assert!(
            matches!(e, Error::Search(SearchError::Timeout(_))),
            "{label}: expected Timeout, got {e:?}"
        );
        assert!(e.to_string().contains("time limit"), "{label}: {e}");
    };
    for round in 0..3 {
        is_timeout("search", catalog.search(&req, &tiny).unwrap_err());
        // Once a round has counted in full, the count is known for this version of the file
        // and is answered from the connection's count cache, within any limit.
        match catalog.count(&req, &tiny) {
            Err(e) => is_timeout("count", e),
            Ok(n) => {
                assert!(round > 0, "round 0 has nothing cached, so its count must time out");
                assert_eq!(n, want, "round {round}: the cached count");
            }
        }
        let mut given = 0;
        let e = catalog
            .search_each(&req, &tiny, None, |_| {
                given += 1;
                Ok(true)
            })
            .unwrap_err();
        is_timeout("search_each", e);
        // Afterwards the same handle answers in full, with no limit and with a generous one.
        let page = catalog.search(&req, &SearchOptions::default()).unwrap();
        assert_eq!(page.number_matched, want, "round {round}");
        assert_eq!(page.items.len(), 5);
        let generous =
            SearchOptions { timeout: Some(Duration::from_secs(120)), ..Default::default() };
        assert_eq!(catalog.count(&req, &generous).unwrap(), want);
        let next = catalog
            .search(&request(with_token(&body, page.next.as_ref().unwrap())), &generous)
            .unwrap();
        assert_eq!(next.items.len(), 5);
    }
    // A writer is not blocked by the interrupted reads.
    let mut writer = Catalog::open(&path).unwrap();
    let victim = items[0].id.clone();
    assert_eq!(writer.delete_items("naip", &[victim], false).unwrap(), 1);
    assert_eq!(catalog.count(&Request::default(), &SearchOptions::default()).unwrap(), 9_999);

    // The command line: exit 1 (a failure, not a usage error) with a message, then it works.
    let cat = p(&path);
    let filter = "--filter=\"naip:state\" LIKE '%o%' AND \"proj:epsg\" > 0";
    for command in ["search", "count"] {
        let out = common::stacdb([command, cat, filter, "--timeout=0.000001"]);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(1), "{command} --timeout: {stderr}");
        assert!(stderr.contains("time limit"), "{command} --timeout: {stderr}");
        assert!(!FORBIDDEN.iter().any(|f| stderr.contains(f)), "{stderr}");
    }
    let counted: u64 =
        common::stacdb_ok(["count", cat, filter, "--timeout=120"]).trim().parse().unwrap();
    assert!(counted == want || counted == want - 1);
}

/// Counts are cached per connection for one version of the file: a write by another
/// connection, or by the same one, is seen by the next count and the next page.
#[test]
fn cached_counts_follow_every_write() {
    let Some(data) = common::data_dir("search::cached_counts_follow_every_write") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (path, items) = naip_catalog(&data, dir.path());
    let body = json!({"filter": "gsd < 1", "filter-lang": "cql2-text", "limit": 3});
    let req = request(body);
    let options = SearchOptions::default();
    let reader = Catalog::open_read_only(&path).unwrap();
    let total = items.len() as u64;
    assert_eq!(reader.count(&req, &options).unwrap(), total);
    assert_eq!(reader.search(&req, &options).unwrap().number_matched, total);

    // Another connection deletes two items: the reader's next count and page see it.
    let mut writer = Catalog::open(&path).unwrap();
    let gone: Vec<String> = items[..2].iter().map(|i| id(i).to_string()).collect();
    assert_eq!(writer.delete_items("naip", &gone, false).unwrap(), 2);
    assert_eq!(reader.count(&req, &options).unwrap(), total - 2);
    assert_eq!(reader.search(&req, &options).unwrap().number_matched, total - 2);

    // The writer counted before and after its own delete.
    assert_eq!(writer.count(&req, &options).unwrap(), total - 2);
    let gone: Vec<String> = items[2..5].iter().map(|i| id(i).to_string()).collect();
    assert_eq!(writer.delete_items("naip", &gone, false).unwrap(), 3);
    assert_eq!(writer.count(&req, &options).unwrap(), total - 5);
    assert_eq!(writer.search(&req, &options).unwrap().number_matched, total - 5);
    assert_eq!(reader.count(&req, &options).unwrap(), total - 5);
}
