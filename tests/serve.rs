//! `stacdb serve`, in process: every endpoint through the router with
//! `tower::ServiceExt::oneshot`, its status, content type and absolute links; client errors as
//! JSON `{"code", "description"}` with a 4xx status and no internals; paging by GET and POST;
//! the page size cap; results equal to the library's own search; a catalog file the server
//! never changes, even under hostile requests; and items ingested by another writer seen on the
//! next request.
//!
//! Data: `fixtures/demo` (13 items of `demo-orthophotos`, among them `fiji-004` across the
//! antimeridian and `survey-report-2021` without geometry), and with the shared data the 100
//! pgstac test items.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::{Value, json};
use stacdb::search::{Request, SearchOptions};
use stacdb::server::{ServeOptions, router};
use stacdb::{Catalog, IngestOptions, Input, Silent};
use tower::ServiceExt;

const HOST: &str = "stac.test:8080";
const BASE: &str = "http://stac.test:8080";
const DEMO: &str = "demo-orthophotos";
const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";
const GEOJSON: &str = "application/geo+json";
const JSON: &str = "application/json";
const SCHEMA: &str = "application/schema+json";
const QUERYABLES_REL: &str = "http://www.opengis.net/def/rel/ogc/1.0/queryables";
const PGSTAC_ITEMS: &str = "fixtures/pgstac/src/pgstac/tests/testdata/items.ndjson";
const PGSTAC_COLLECTIONS: &str = "fixtures/pgstac/src/pgstac/tests/testdata/collections.json";

// ---------------------------------------------------------------------------------------------
// Catalogs

/// A catalog file in a temporary directory, with the bytes it had when it was made.
struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    before: Snapshot,
}

/// The bytes of a catalog file and of its `-wal` (empty when there is none: a read-only
/// connection may leave an empty `-wal` behind, which holds nothing).
#[derive(PartialEq)]
struct Snapshot {
    main: Vec<u8>,
    wal: Vec<u8>,
}

impl Snapshot {
    fn take(path: &Path) -> Snapshot {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let main = std::fs::read(path).expect("read catalog");
        Snapshot { main, wal: std::fs::read(wal).unwrap_or_default() }
    }
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digest = |b: &[u8]| {
            use sha2::Digest;
            let hash: String =
                sha2::Sha256::digest(b).iter().map(|byte| format!("{byte:02x}")).collect();
            format!("{} bytes, sha256 {hash}", b.len())
        };
        f.debug_struct("Snapshot")
            .field("main", &digest(&self.main))
            .field("wal", &digest(&self.wal))
            .finish()
    }
}

impl Fixture {
    /// A catalog holding `fixtures/demo`.
    fn demo() -> Fixture {
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
        Fixture::of(&[demo])
    }

    /// A catalog of the given files or directories, closed and checkpointed: every writer has
    /// closed, so the main file holds everything and there is no `-wal` left to change.
    fn of(inputs: &[PathBuf]) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("serve.stacdb");
        let mut catalog = Catalog::create(&path).expect("create catalog");
        let inputs: Vec<Input> = inputs.iter().cloned().map(Input::Path).collect();
        catalog.ingest(&inputs, &IngestOptions::default(), &Silent).expect("ingest");
        drop(catalog);
        // Once more with a writer, so whatever a first open does (WAL switch, checkpoint on
        // close) is done before the bytes are taken.
        drop(Catalog::open(&path).expect("reopen"));
        let before = Snapshot::take(&path);
        assert!(before.wal.is_empty(), "the last writer to close checkpoints the WAL");
        Fixture { _dir: dir, path, before }
    }

    fn app(&self) -> Router {
        self.app_with(ServeOptions::default())
    }

    fn app_with(&self, options: ServeOptions) -> Router {
        router(&self.path, options).expect("router")
    }

    /// Drops the router (closing its connections) and asserts the file did not change.
    fn assert_unchanged(&self, app: Router) {
        drop(app);
        assert_eq!(Snapshot::take(&self.path), self.before, "the server changed the catalog file");
    }

    /// Every item the library's search gives for a search body, across all pages.
    fn library(&self, body: &Value) -> Vec<Value> {
        let catalog = Catalog::open_read_only(&self.path).expect("open read-only");
        let request = Request::from_json(body).expect("the library accepts the body");
        let mut items = Vec::new();
        catalog
            .search_each(&request, &SearchOptions::default(), None, |text| {
                items.push(serde_json::from_str(text).expect("item JSON"));
                Ok(true)
            })
            .expect("library search");
        items
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A response, read whole.
struct Reply {
    status: StatusCode,
    content_type: String,
    body: Vec<u8>,
    what: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{}: body is not JSON ({e}): {}", self.what, String::from_utf8_lossy(&self.body))
        })
    }

    /// Asserts the status and content type, and returns the JSON body.
    fn expect(&self, status: StatusCode, content_type: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "{}: body {}",
            self.what,
            String::from_utf8_lossy(&self.body[..self.body.len().min(2000)])
        );
        assert_eq!(self.content_type, content_type, "{}: content type", self.what);
        self.json()
    }

    /// Asserts a client error with the given status and returns its description.
    fn expect_error(&self, status: StatusCode) -> String {
        let body = self.expect(status, JSON);
        body["description"].as_str().expect("description").to_string()
    }

    fn ids(&self) -> Vec<String> {
        ids(&self.expect(StatusCode::OK, GEOJSON))
    }
}

/// Sends one request through the router on a runtime task (as `axum::serve` does per
/// connection) and reads the response. Every response is checked: never a 5xx, and every
/// client error is JSON `{"code", "description"}` that shows no internals.
async fn send(app: &Router, method: Method, uri: &str, body: Vec<u8>) -> Reply {
    let reply = probe(app, method, uri, body).await;
    check(&reply);
    reply
}

/// Sends one request and reads the response, checking nothing.
async fn probe(app: &Router, method: Method, uri: &str, body: Vec<u8>) -> Reply {
    probe_from(app, HOST, method, uri, body).await
}

/// Sends one request with a Host header and reads the response, checking nothing.
async fn probe_from(app: &Router, host: &str, method: Method, uri: &str, body: Vec<u8>) -> Reply {
    let what = format!(
        "{method} {}{}",
        short(uri.as_bytes()),
        if body.is_empty() { String::new() } else { format!(" {}", short(&body)) }
    );
    let mut request =
        axum::http::Request::builder().method(method).uri(uri).header(header::HOST, host);
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, JSON);
    }
    let request = request.body(Body::from(body)).unwrap_or_else(|e| panic!("{what}: {e}"));
    let response = tokio::spawn(app.clone().oneshot(request))
        .await
        .unwrap_or_else(|e| panic!("{what}: the handler task failed: {e}"))
        .expect("infallible");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ASCII content type").to_string())
        .unwrap_or_default();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body").to_vec();
    Reply { status, content_type, body, what }
}

/// The start of a long URI or body, and its length.
fn short(text: &[u8]) -> String {
    if text.len() <= 160 {
        String::from_utf8_lossy(text).into_owned()
    } else {
        format!("{}… ({} bytes)", String::from_utf8_lossy(&text[..120]), text.len())
    }
}

/// What every response must be: never a 5xx, and every client error JSON
/// `{"code", "description"}` that shows no internals.
fn check(reply: &Reply) {
    if let Some(problem) = problem(reply) {
        panic!("{problem}");
    }
}

/// What is wrong with a response by the rules of [`check`], if anything.
fn problem(reply: &Reply) -> Option<String> {
    let what = &reply.what;
    let text = String::from_utf8_lossy(&reply.body[..reply.body.len().min(500)]).into_owned();
    // The one server error allowed: a search cut off by its time limit (503, code "Timeout"),
    // which the issue names as the answer to a pathological query.
    let timed_out = reply.status == StatusCode::SERVICE_UNAVAILABLE
        && serde_json::from_slice::<Value>(&reply.body).is_ok_and(|body| body["code"] == "Timeout");
    if reply.status.is_server_error() && !timed_out {
        return Some(format!("{what}: server error {}: {text}", reply.status));
    }
    if !reply.status.is_client_error() && !timed_out {
        return None;
    }
    if reply.content_type != JSON {
        return Some(format!(
            "{what}: {} error served as {:?}, not JSON: {text}",
            reply.status, reply.content_type
        ));
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&reply.body) else {
        return Some(format!("{what}: error body is not a JSON object: {text}"));
    };
    let (Some(Value::String(_)), Some(Value::String(description))) =
        (body.get("code"), body.get("description"))
    else {
        return Some(format!("{what}: error without a string code and description: {text}"));
    };
    if description.is_empty() {
        return Some(format!("{what}: empty error description"));
    }
    ["SQL", "sqlite", "SQLite", "panicked", "near \"", "rusqlite"]
        .iter()
        .find(|word| description.contains(*word))
        .map(|word| format!("{what}: error description shows {word:?}: {text}"))
}

/// Statuses a hostile request may get: an answer, or a client error.
const OK_OR_CLIENT_ERROR: [StatusCode; 6] = [
    StatusCode::OK,
    StatusCode::BAD_REQUEST,
    StatusCode::NOT_FOUND,
    StatusCode::PAYLOAD_TOO_LARGE,
    StatusCode::URI_TOO_LONG,
    StatusCode::UNPROCESSABLE_ENTITY,
];

/// Responses that broke a rule, gathered so that one run names them all.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    /// Records the response when it breaks the rules of [`check`] or its status is not one of
    /// `statuses`; returns whether it was fine.
    fn check(&mut self, reply: &Reply, statuses: &[StatusCode]) -> bool {
        if let Some(problem) = problem(reply) {
            self.0.push(problem);
            return false;
        }
        if !statuses.contains(&reply.status) {
            let text = String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)]);
            self.0.push(format!(
                "{}: status {}, expected one of {statuses:?}: {text}",
                reply.what, reply.status
            ));
            return false;
        }
        true
    }

    fn push(&mut self, failure: String) {
        self.0.push(failure);
    }

    fn assert_none(self) {
        assert!(self.0.is_empty(), "{} failures:\n{}", self.0.len(), self.0.join("\n"));
    }
}

async fn get(app: &Router, uri: &str) -> Reply {
    send(app, Method::GET, uri, Vec::new()).await
}

async fn post(app: &Router, uri: &str, body: &Value) -> Reply {
    send(app, Method::POST, uri, body.to_string().into_bytes()).await
}

/// The path and query of an absolute link of this server.
fn local(href: &str) -> &str {
    href.strip_prefix(BASE).unwrap_or_else(|| panic!("{href} is not under {BASE}"))
}

fn ids(collection: &Value) -> Vec<String> {
    collection["features"]
        .as_array()
        .expect("features")
        .iter()
        .map(|f| f["id"].as_str().expect("feature id").to_string())
        .collect()
}

fn links(document: &Value) -> &Vec<Value> {
    document["links"].as_array().expect("links")
}

/// The links of a document with a rel.
fn rel<'a>(document: &'a Value, rel: &str) -> Vec<&'a Value> {
    links(document).iter().filter(|l| l["rel"] == rel).collect()
}

/// The one link of a document with a rel.
fn one(document: &Value, name: &str) -> Value {
    let found = rel(document, name);
    assert_eq!(found.len(), 1, "one {name} link expected in {}", document["links"]);
    found[0].clone()
}

/// Asserts every link of the document (and of its features and collections) is absolute and
/// that those the API writes are under `base`.
fn assert_absolute(document: &Value, base: &str) {
    const OWN: [&str; 8] =
        ["self", "root", "parent", "collection", "items", "next", "child", "conformance"];
    for link in document["links"].as_array().into_iter().flatten() {
        let href = link["href"].as_str().expect("href");
        assert!(href.starts_with("http://") || href.starts_with("https://"), "relative {link}");
        if OWN.contains(&link["rel"].as_str().unwrap_or_default()) {
            assert!(href.starts_with(&format!("{base}/")), "{link} is not under {base}");
        }
    }
    for member in ["features", "collections"] {
        for child in document[member].as_array().into_iter().flatten() {
            assert_absolute(child, base);
        }
    }
}

/// Every page of a GET search, following `next` links: the items and the page sizes.
async fn walk_get(app: &Router, uri: &str) -> (Vec<Value>, Vec<usize>) {
    let (mut items, mut pages) = (Vec::new(), Vec::new());
    let mut uri = uri.to_string();
    loop {
        let page = get(app, &uri).await.expect(StatusCode::OK, GEOJSON);
        let features = page["features"].as_array().expect("features").clone();
        assert_eq!(page["numberReturned"], features.len(), "{uri}: numberReturned");
        pages.push(features.len());
        items.extend(features);
        assert!(pages.len() < 1000, "{uri}: paging does not end");
        match rel(&page, "next").first() {
            Some(next) => {
                assert_eq!(next["method"], "GET", "{next}");
                assert_eq!(next["type"], GEOJSON, "{next}");
                let href = next["href"].as_str().expect("next href");
                assert!(href.contains("token="), "{href}: next link without a token");
                uri = local(href).to_string();
            }
            None => break,
        }
    }
    (items, pages)
}

/// Every page of a POST search, following `next` links (merging their bodies).
async fn walk_post(app: &Router, body: &Value) -> (Vec<Value>, Vec<usize>) {
    let (mut items, mut pages) = (Vec::new(), Vec::new());
    let mut body = body.clone();
    let mut uri = "/search".to_string();
    loop {
        let page = post(app, &uri, &body).await.expect(StatusCode::OK, GEOJSON);
        let features = page["features"].as_array().expect("features").clone();
        assert_eq!(page["numberReturned"], features.len(), "{body}: numberReturned");
        pages.push(features.len());
        items.extend(features);
        assert!(pages.len() < 1000, "{body}: paging does not end");
        match rel(&page, "next").first() {
            Some(next) => {
                assert_eq!(next["method"], "POST", "{next}");
                assert_eq!(next["merge"], true, "{next}");
                assert_eq!(next["type"], GEOJSON, "{next}");
                let token = next["body"]["token"].as_str().expect("next body token");
                assert!(!token.is_empty());
                for (name, value) in next["body"].as_object().expect("next body") {
                    body[name] = value.clone();
                }
                uri = local(next["href"].as_str().expect("next href")).to_string();
                assert_eq!(uri, "/search");
            }
            None => break,
        }
    }
    (items, pages)
}

fn item_ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["id"].as_str().expect("id").to_string()).collect()
}

/// An item without its links (the API rewrites them; everything else must be as stored).
fn without_links(item: &Value) -> Value {
    let mut item = item.clone();
    if let Some(object) = item.as_object_mut() {
        object.remove("links");
    }
    item
}

// ---------------------------------------------------------------------------------------------
// 1. Every endpoint

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_with_its_content_type_and_absolute_links() {
    let fixture = Fixture::demo();
    let app = fixture.app();

    // Landing page.
    let landing = get(&app, "/").await.expect(StatusCode::OK, JSON);
    assert_eq!(landing["type"], "Catalog");
    assert!(landing["conformsTo"].as_array().is_some_and(|c| !c.is_empty()));
    assert_absolute(&landing, BASE);
    assert_eq!(one(&landing, "self")["href"], format!("{BASE}/"));
    assert_eq!(one(&landing, "root")["href"], format!("{BASE}/"));
    assert_eq!(one(&landing, "conformance")["href"], format!("{BASE}/conformance"));
    assert_eq!(one(&landing, "data")["href"], format!("{BASE}/collections"));
    let search = rel(&landing, "search");
    let methods: BTreeSet<&str> = search.iter().map(|l| l["method"].as_str().unwrap()).collect();
    assert_eq!(methods, BTreeSet::from(["GET", "POST"]), "search links: {search:?}");
    for link in &search {
        assert_eq!(link["href"], format!("{BASE}/search"));
        assert_eq!(link["type"], GEOJSON);
    }
    let desc = one(&landing, "service-desc");
    assert_eq!(desc["href"], format!("{BASE}/api"));
    assert_eq!(desc["type"], OPENAPI);
    let doc = one(&landing, "service-doc");
    assert_eq!(doc["href"], format!("{BASE}/api.html"));
    assert_eq!(doc["type"], "text/html");
    let queryables = one(&landing, QUERYABLES_REL);
    assert_eq!(queryables["href"], format!("{BASE}/queryables"));
    let children = rel(&landing, "child");
    assert_eq!(children.len(), 1, "one child per collection");
    assert_eq!(children[0]["href"], format!("{BASE}/collections/{DEMO}"));

    // Every link of the landing page leads somewhere.
    for link in links(&landing) {
        let href = link["href"].as_str().unwrap();
        let reply = get(&app, local(href)).await;
        assert_eq!(reply.status, StatusCode::OK, "{link}");
        let expected = link["type"].as_str().unwrap();
        assert!(
            reply.content_type.starts_with(expected),
            "{link}: served as {}",
            reply.content_type
        );
    }

    // Conformance.
    let conformance = get(&app, "/conformance").await.expect(StatusCode::OK, JSON);
    let classes = conformance["conformsTo"].as_array().expect("conformsTo");
    for class in [
        "https://api.stacspec.org/v1.0.0/core",
        "https://api.stacspec.org/v1.0.0/collections",
        "https://api.stacspec.org/v1.0.0/ogcapi-features",
        "https://api.stacspec.org/v1.0.0/item-search",
    ] {
        assert!(classes.iter().any(|c| c == class), "missing conformance class {class}");
    }
    assert_eq!(conformance["conformsTo"], landing["conformsTo"]);

    // The API description and its page.
    let api = get(&app, "/api").await.expect(StatusCode::OK, OPENAPI);
    assert!(api["openapi"].as_str().is_some_and(|v| v.starts_with("3.0")), "openapi: {api}");
    let html = get(&app, "/api.html").await;
    assert_eq!(html.status, StatusCode::OK);
    assert!(html.content_type.starts_with("text/html"), "{}", html.content_type);
    assert!(!html.body.is_empty());

    // Queryables.
    let queryables = get(&app, "/queryables").await.expect(StatusCode::OK, SCHEMA);
    assert_eq!(queryables["$id"], format!("{BASE}/queryables"));
    assert_eq!(queryables["type"], "object");
    let queryables =
        get(&app, &format!("/collections/{DEMO}/queryables")).await.expect(StatusCode::OK, SCHEMA);
    assert_eq!(queryables["$id"], format!("{BASE}/collections/{DEMO}/queryables"));
    assert!(queryables["properties"]["eo:cloud_cover"].is_object(), "{queryables}");

    // Collections.
    let collections = get(&app, "/collections").await.expect(StatusCode::OK, JSON);
    assert_absolute(&collections, BASE);
    assert_eq!(one(&collections, "self")["href"], format!("{BASE}/collections"));
    let list = collections["collections"].as_array().expect("collections");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], DEMO);
    let collection = get(&app, &format!("/collections/{DEMO}")).await.expect(StatusCode::OK, JSON);
    assert_eq!(collection["id"], DEMO);
    assert_eq!(collection["type"], "Collection");
    assert_absolute(&collection, BASE);
    assert_eq!(&collection, &list[0], "the collection alone and in the list agree");
    let own = format!("{BASE}/collections/{DEMO}");
    assert_eq!(one(&collection, "self")["href"], own);
    assert_eq!(one(&collection, "root")["href"], format!("{BASE}/"));
    assert_eq!(one(&collection, "items")["href"], format!("{own}/items"));
    assert_eq!(one(&collection, "items")["type"], GEOJSON);
    assert_eq!(one(&collection, QUERYABLES_REL)["href"], format!("{own}/queryables"));

    // Items of a collection.
    let items =
        get(&app, &format!("/collections/{DEMO}/items")).await.expect(StatusCode::OK, GEOJSON);
    assert_eq!(items["type"], "FeatureCollection");
    assert_eq!(items["numberMatched"], 13);
    assert_eq!(items["numberReturned"], 10, "the default limit");
    assert_eq!(ids(&items).len(), 10);
    assert_absolute(&items, BASE);
    let next = one(&items, "next");
    assert!(next["href"].as_str().unwrap().starts_with(&format!("{own}/items?")), "{next}");

    // One item, each reached by its self link; the antimeridian and null-geometry items too.
    for id in ["alps-001", "fiji-004", "survey-report-2021"] {
        let uri = format!("/collections/{DEMO}/items/{id}");
        let item = get(&app, &uri).await.expect(StatusCode::OK, GEOJSON);
        assert_eq!(item["id"], id);
        assert_eq!(item["collection"], DEMO);
        assert_absolute(&item, BASE);
        assert_eq!(one(&item, "self")["href"], format!("{BASE}{uri}"));
        assert_eq!(one(&item, "collection")["href"], own);
        assert_eq!(one(&item, "parent")["href"], own);
        assert_eq!(one(&item, "root")["href"], format!("{BASE}/"));
        assert_eq!(without_links(&item), without_links(&fixture.library(&json!({"ids": [id]}))[0]));
    }
    let null_geometry =
        get(&app, &format!("/collections/{DEMO}/items/survey-report-2021")).await.json();
    assert!(null_geometry["geometry"].is_null());

    // Search, GET and POST.
    let by_get = get(&app, "/search?limit=4").await.expect(StatusCode::OK, GEOJSON);
    assert_eq!(by_get["type"], "FeatureCollection");
    assert_eq!(by_get["numberMatched"], 13);
    assert_eq!(by_get["numberReturned"], 4);
    assert_absolute(&by_get, BASE);
    let by_post = post(&app, "/search", &json!({"limit": 4})).await.expect(StatusCode::OK, GEOJSON);
    assert_eq!(by_post["type"], "FeatureCollection");
    assert_eq!(ids(&by_get), ids(&by_post));
    assert_absolute(&by_post, BASE);
    // An empty body is an empty search.
    let empty =
        send(&app, Method::POST, "/search", Vec::new()).await.expect(StatusCode::OK, GEOJSON);
    assert_eq!(empty["numberMatched"], 13);

    fixture.assert_unchanged(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_come_from_the_base_url_when_set() {
    let fixture = Fixture::demo();
    let base = "https://stac.example.org/v1";
    let app = fixture.app_with(ServeOptions {
        base_url: Some(format!("{base}/")),
        default_limit: 3,
        ..Default::default()
    });
    for uri in [
        "/".to_string(),
        "/collections".to_string(),
        format!("/collections/{DEMO}"),
        format!("/collections/{DEMO}/items"),
        format!("/collections/{DEMO}/items/fiji-004"),
        "/search".to_string(),
    ] {
        let reply = get(&app, &uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        let document = reply.json();
        assert_absolute(&document, base);
        let text = document.to_string();
        assert!(!text.contains(HOST), "{uri}: a link from the Host header: {text}");
        assert!(!text.contains("v1//"), "{uri}: a doubled slash: {text}");
    }
    let landing = get(&app, "/").await.json();
    assert_eq!(one(&landing, "self")["href"], format!("{base}/"));
    assert_eq!(one(&landing, "service-desc")["href"], format!("{base}/api"));
    let page = post(&app, "/search", &json!({})).await.json();
    assert_eq!(one(&page, "next")["href"], format!("{base}/search"));
    let page = get(&app, "/search").await.json();
    assert!(one(&page, "next")["href"].as_str().unwrap().starts_with(&format!("{base}/search?")));
    fixture.assert_unchanged(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_host_header_never_becomes_markup() {
    let fixture = Fixture::demo();
    let app = fixture.app();
    let host = "evil.test\"><script>alert(1)</script>";
    for uri in ["/", "/api", "/api.html", "/search", "/collections"] {
        let reply = probe_from(&app, host, Method::GET, uri, Vec::new()).await;
        check(&reply);
        assert_eq!(reply.status, StatusCode::OK, "{uri}");
        if reply.content_type.starts_with("text/html") {
            let body = String::from_utf8_lossy(&reply.body);
            assert!(!body.contains("<script>alert"), "{uri}: the Host header is echoed as markup");
        } else {
            // In JSON the same text is only a string.
            reply.json();
        }
    }
    fixture.assert_unchanged(app);
}

// ---------------------------------------------------------------------------------------------
// 2. Errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_things_are_404_and_wrong_methods_405() {
    let fixture = Fixture::demo();
    let app = fixture.app();
    for uri in [
        "/collections/nope".to_string(),
        "/collections/nope/items".to_string(),
        "/collections/nope/queryables".to_string(),
        "/collections/nope/items/alps-001".to_string(),
        format!("/collections/{DEMO}/items/nope"),
        format!("/collections/{DEMO}/items/alps-001/more"),
        "/nope".to_string(),
        "/search/nope".to_string(),
        "/collections/".to_string(),
    ] {
        get(&app, &uri).await.expect_error(StatusCode::NOT_FOUND);
    }
    for (method, uri) in [
        (Method::DELETE, "/search".to_string()),
        (Method::PUT, "/search".to_string()),
        (Method::POST, "/collections".to_string()),
        (Method::POST, "/".to_string()),
        (Method::DELETE, format!("/collections/{DEMO}")),
        (Method::POST, format!("/collections/{DEMO}/items")),
        (Method::PUT, format!("/collections/{DEMO}/items/alps-001")),
        (Method::DELETE, format!("/collections/{DEMO}/items/alps-001")),
    ] {
        send(&app, method, &uri, b"{}".to_vec()).await.expect_error(StatusCode::METHOD_NOT_ALLOWED);
    }
    fixture.assert_unchanged(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_parameters_are_400_with_a_json_error() {
    let fixture = Fixture::demo();
    let app = fixture.app();
    let token = {
        let page = get(&app, "/search?limit=3").await.json();
        let href = one(&page, "next")["href"].as_str().unwrap().to_string();
        let query = href.split_once('?').unwrap().1.to_string();
        form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .expect("token")
    };
    let get_cases = [
        "bbox=1,2,3",
        "bbox=a,b,c,d",
        "bbox=1,2,3,4,5",
        "bbox=",
        "bbox=0,50,1,40",
        "bbox=0,0,200,10",
        "bbox=NaN,0,1,1",
        "bbox=inf,0,1,1",
        "datetime=yesterday",
        "datetime=2021-13-01T00:00:00Z",
        "datetime=2022-01-01T00:00:00Z/2021-01-01T00:00:00Z",
        "datetime=2021-01-01T00:00:00Z/2021-02-01T00:00:00Z/2021-03-01T00:00:00Z",
        "datetime=",
        "limit=-1",
        "limit=0",
        "limit=1e30",
        "limit=99999999999999999999",
        "limit=abc",
        "limit=2.5",
        "limit=",
        "filter=foo%20bar%20baz",
        "filter=id%20%3D",
        "filter=%7B%22op%22%3A%22%3D%22",
        "filter=%7B%22op%22%3A%22nope%22%2C%22args%22%3A%5B%5D%7D",
        "filter-lang=cql2-json&filter=id%20%3D%20%27x%27",
        "filter-lang=cql3&filter=id%20%3D%20%27x%27",
        "filter-lang=cql3",
        "filter-lang=cql3&filter=",
        "filter-crs=EPSG:4326&filter=id%20%3D%20%27x%27",
        "token=garbage",
        "token=",
        "intersects=%7B%22type%22%3A%22Feature%22%7D",
        "intersects=not-json",
        "query=not-json",
        "query=%7B%22eo%3Acloud_cover%22%3A%7B%22near%22%3A1%7D%7D",
        "sortby=-",
        "q=%22",
        "limit=3&limit=4",
    ];
    let mut failures = Failures::default();
    let bad = [StatusCode::BAD_REQUEST];
    let mut uris = Vec::new();
    for query in get_cases {
        uris.push(format!("/search?{query}"));
        uris.push(format!("/collections/{DEMO}/items?{query}"));
    }
    // A token from one search is refused by another.
    uris.push(format!("/search?limit=3&bbox=0,0,10,60&token={}", common::pct(&token)));
    // `collections` is not a parameter of a collection's items.
    uris.push(format!("/collections/{DEMO}/items?collections={DEMO}"));
    for uri in uris {
        failures.check(&probe(&app, Method::GET, &uri, Vec::new()).await, &bad);
    }

    let post_cases = [
        json!({"bbox": [1, 2, 3]}),
        json!({"bbox": "1,2,3,4"}),
        json!({"bbox": [0, 50, 1, 40]}),
        json!({"bbox": [0, 0, 10, 10], "intersects": {"type": "Point", "coordinates": [1, 1]}}),
        json!({"datetime": "yesterday"}),
        json!({"datetime": 2021}),
        json!({"datetime": "2022-01-01T00:00:00Z/2021-01-01T00:00:00Z"}),
        json!({"limit": -1}),
        json!({"limit": 0}),
        json!({"limit": 1e30}),
        json!({"limit": 2.5}),
        json!({"limit": "10"}),
        json!({"filter": "foo bar baz"}),
        json!({"filter": "id ="}),
        json!({"filter": {"op": "and"}}),
        json!({"filter": {"op": "nope", "args": []}}),
        json!({"filter": "id = 'x'", "filter-lang": "cql3"}),
        json!({"filter": "id = 'x'", "filter-lang": 3}),
        json!({"filter-lang": "cql3"}),
        json!({"filter": {"op": "=", "args": [{"property": "id"}, "x"]}, "filter-lang": "cql2-text"}),
        json!({"token": "garbage"}),
        json!({"token": 42}),
        json!({"token": token, "bbox": [0, 0, 10, 60]}),
        // (a single string is a list of one: `{"ids": "alps-001"}` is accepted)
        json!({"ids": 7}),
        json!({"collections": 7}),
        json!({"intersects": {"type": "Feature", "geometry": null}}),
        json!({"q": 5}),
        json!({"sortby": "nope"}),
        json!({"fields": 5}),
        json!({"query": {"eo:cloud_cover": {"near": 1}}}),
    ];
    for body in &post_cases {
        let body = body.to_string().into_bytes();
        failures.check(&probe(&app, Method::POST, "/search", body).await, &bad);
    }
    // Bodies that are not JSON objects.
    for body in [
        &b"not json"[..],
        b"{",
        b"{\"limit\": 3,}",
        b"[1, 2]",
        b"42",
        b"\"text\"",
        b"null",
        b"\xff\xfe",
        br#"{"limit": 99999999999999999999}"#,
    ] {
        failures.check(&probe(&app, Method::POST, "/search", body.to_vec()).await, &bad);
    }
    failures.assert_none();
    fixture.assert_unchanged(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused() {
    let fixture = Fixture::demo();
    let small = fixture.app_with(ServeOptions { max_body: 1024, ..Default::default() });
    let pad = "x".repeat(2048);
    post(&small, "/search", &json!({"limit": 3, "pad": pad}))
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is fine.
    let fits = json!({"limit": 3, "pad": "x".repeat(900)});
    assert_eq!(post(&small, "/search", &fits).await.ids().len(), 3);

    let app = fixture.app();
    let huge = format!(r#"{{"ids": ["{}"]}}"#, "a".repeat(10 << 20)).into_bytes();
    send(&app, Method::POST, "/search", huge).await.expect_error(StatusCode::PAYLOAD_TOO_LARGE);
    // Not JSON either: the size is checked first.
    send(&app, Method::POST, "/search", vec![b'['; 10 << 20])
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE);
    fixture.assert_unchanged(small);
    fixture.assert_unchanged(app);
}

// ---------------------------------------------------------------------------------------------
// 3-4. Paging and the page size cap

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_walks_every_item_once() {
    let fixture = Fixture::demo();
    let app = fixture.app();
    let all = item_ids(&fixture.library(&json!({})));
    assert_eq!(all.len(), 13);

    let (items, pages) = walk_get(&app, "/search?limit=3").await;
    assert_eq!(pages, [3, 3, 3, 3, 1]);
    assert_eq!(item_ids(&items), all, "GET pages, in order, are the library's order");

    let (items, pages) = walk_post(&app, &json!({"limit": 3})).await;
    assert_eq!(pages, [3, 3, 3, 3, 1]);
    assert_eq!(item_ids(&items), all, "POST pages");

    let (items, pages) = walk_get(&app, &format!("/collections/{DEMO}/items?limit=3")).await;
    assert_eq!(pages, [3, 3, 3, 3, 1]);
    assert_eq!(item_ids(&items), all, "collection items pages");

    // The other parameters travel with the token.
    let query = "limit=2&filter=platform%20%3D%20%27plane-a%27&sortby=-eo:cloud_cover";
    let body = json!({
        "limit": 2, "filter": "platform = 'plane-a'",
        "sortby": [{"field": "eo:cloud_cover", "direction": "desc"}],
    });
    let expected = item_ids(&fixture.library(&body));
    assert_eq!(expected.len(), 6);
    let (items, pages) = walk_get(&app, &format!("/search?{query}")).await;
    assert_eq!((item_ids(&items), pages), (expected.clone(), vec![2, 2, 2]));
    let (items, pages) = walk_post(&app, &body).await;
    assert_eq!((item_ids(&items), pages), (expected, vec![2, 2, 2]));
    fixture.assert_unchanged(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_above_the_maximum_is_lowered() {
    let fixture = Fixture::demo();
    let app = fixture.app_with(ServeOptions { max_limit: 5, ..Default::default() });
    for reply in [
        get(&app, "/search?limit=1000").await,
        get(&app, "/search?limit=18446744073709551615").await,
        get(&app, &format!("/collections/{DEMO}/items?limit=1000")).await,
        post(&app, "/search", &json!({"limit": 1000})).await,
        post(&app, "/search", &json!({"limit": u64::MAX})).await,
    ] {
        let page = reply.expect(StatusCode::OK, GEOJSON);
        assert_eq!(ids(&page).len(), 5, "{}", reply.what);
        assert_eq!(page["numberReturned"], 5);
        assert_eq!(page["numberMatched"], 13);
        assert_eq!(rel(&page, "next").len(), 1, "{}: a next link", reply.what);
    }
    let (items, pages) = walk_get(&app, "/search?limit=1000").await;
    assert_eq!((items.len(), pages), (13, vec![5, 5, 3]));
    fixture.assert_unchanged(app);
}

// ---------------------------------------------------------------------------------------------
// 5. Results equal the library's

/// Searches of the demo set, as a POST body and the same search as GET parameters.
fn demo_searches() -> Vec<(Value, Option<&'static str>)> {
    vec![
        // Across the antimeridian, both sides, and each side alone.
        (json!({"bbox": [179.8, -18.0, -179.9, -17.0]}), Some("bbox=179.8,-18,-179.9,-17")),
        (json!({"bbox": [170, -20, -170, -10]}), Some("bbox=170,-20,-170,-10")),
        (json!({"bbox": [-179.99, -18, -179.9, -17]}), Some("bbox=-179.99,-18,-179.9,-17")),
        (json!({"bbox": [179.88, -18, 180, -17]}), Some("bbox=179.88,-18,180,-17")),
        (json!({"bbox": [0, 40, -100, 10, 60, 100]}), Some("bbox=0,40,-100,10,60,100")),
        (
            json!({"datetime": "2021-03-01T00:00:00Z/2021-06-01T00:00:00Z"}),
            Some("datetime=2021-03-01T00:00:00Z/2021-06-01T00:00:00Z"),
        ),
        (json!({"datetime": "../2021-01-31T00:00:00Z"}), Some("datetime=../2021-01-31T00:00:00Z")),
        (json!({"datetime": "2021-07-13T10:18:00Z"}), Some("datetime=2021-07-13T10:18:00Z")),
        (
            json!({"filter": "platform = 'plane-b' AND \"eo:cloud_cover\" < 10", "filter-lang": "cql2-text"}),
            Some(
                "filter-lang=cql2-text&filter=platform%20%3D%20%27plane-b%27%20AND%20%22eo%3Acloud_cover%22%20%3C%2010",
            ),
        ),
        (
            json!({"filter-lang": "cql2-json", "filter": {"op": "or", "args": [
                {"op": "=", "args": [{"property": "region"}, "alps"]},
                {"op": "s_intersects", "args": [{"property": "geometry"},
                    {"type": "Polygon", "coordinates": [[[-180, -18], [-179, -18], [-179, -17], [-180, -17], [-180, -18]]]}]}
            ]}}),
            None,
        ),
        (
            json!({"filter": {"op": ">=", "args": [{"property": "eo:cloud_cover"}, 14]}}),
            Some(
                "filter=%7B%22op%22%3A%22%3E%3D%22%2C%22args%22%3A%5B%7B%22property%22%3A%22eo%3Acloud_cover%22%7D%2C14%5D%7D",
            ),
        ),
        (
            json!({"sortby": [{"field": "properties.eo:cloud_cover", "direction": "asc"}]}),
            Some("sortby=%2Bproperties.eo:cloud_cover"),
        ),
        (
            json!({"sortby": [{"field": "platform", "direction": "desc"}, {"field": "id", "direction": "asc"}]}),
            Some("sortby=-platform,id"),
        ),
        (
            json!({"fields": {"include": ["id", "properties.title"], "exclude": ["assets"]}, "sortby": [{"field": "id", "direction": "asc"}]}),
            Some("fields=id,properties.title,-assets&sortby=id"),
        ),
        (json!({"fields": {"exclude": ["geometry", "properties"]}}), None),
        (json!({"q": "antimeridian"}), Some("q=antimeridian")),
        (json!({"q": ["alps", "delta"]}), Some("q=alps,delta")),
        (json!({"ids": ["alps-001", "fiji-004", "nope"]}), Some("ids=alps-001,fiji-004,nope")),
        (json!({"collections": [DEMO, "nope"]}), Some("collections=demo-orthophotos,nope")),
        (
            json!({"intersects": {"type": "Point", "coordinates": [7.02, 46.02]}}),
            Some(
                "intersects=%7B%22type%22%3A%22Point%22%2C%22coordinates%22%3A%5B7.02%2C46.02%5D%7D",
            ),
        ),
        (
            json!({"query": {"eo:cloud_cover": {"lt": 10}, "platform": {"eq": "plane-b"}}}),
            Some(
                "query=%7B%22eo%3Acloud_cover%22%3A%7B%22lt%22%3A10%7D%2C%22platform%22%3A%7B%22eq%22%3A%22plane-b%22%7D%7D",
            ),
        ),
        (
            json!({"bbox": [0, 40, 10, 60], "datetime": "2021-03-01T00:00:00Z/..", "q": "tile", "sortby": [{"field": "datetime", "direction": "asc"}]}),
            Some("bbox=0,40,10,60&datetime=2021-03-01T00:00:00Z/..&q=tile&sortby=datetime"),
        ),
    ]
}

/// Asserts the API (POST, and GET when given, both paged by `limit`) answers a search with the
/// library's items, in the library's order.
async fn assert_same_results(fixture: &Fixture, app: &Router, body: &Value, query: Option<&str>) {
    let expected = fixture.library(body);
    let expected_bare: Vec<Value> = expected.iter().map(without_links).collect();
    let mut paged = body.clone();
    paged["limit"] = json!(4);
    let (items, _) = walk_post(app, &paged).await;
    assert_eq!(item_ids(&items), item_ids(&expected), "POST {body}");
    assert_eq!(items.iter().map(without_links).collect::<Vec<_>>(), expected_bare, "POST {body}");
    if let Some(query) = query {
        let (items, _) = walk_get(app, &format!("/search?limit=4&{query}")).await;
        assert_eq!(item_ids(&items), item_ids(&expected), "GET {query} (as {body})");
        assert_eq!(
            items.iter().map(without_links).collect::<Vec<_>>(),
            expected_bare,
            "GET {query}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_equal_the_library_search() {
    let fixture = Fixture::demo();
    let app = fixture.app();
    for (body, query) in demo_searches() {
        assert_same_results(&fixture, &app, &body, query).await;
    }
    // Spot checks that the searches above are not all empty.
    let ids_of = |body: Value| item_ids(&fixture.library(&body));
    assert_eq!(ids_of(json!({"bbox": [179.8, -18.0, -179.9, -17.0]})), ["fiji-004"]);
    assert_eq!(ids_of(json!({"bbox": [-179.99, -18, -179.9, -17]})), ["fiji-004"]);
    assert_eq!(ids_of(json!({"q": "antimeridian"})).len(), 4);
    assert_eq!(ids_of(json!({"ids": ["alps-001", "fiji-004", "nope"]})).len(), 2);
    // A collection's items are the search of that collection.
    let (items, _) = walk_get(&app, &format!("/collections/{DEMO}/items?limit=5&q=alps")).await;
    assert_eq!(item_ids(&items), ids_of(json!({"collections": [DEMO], "q": "alps"})));
    fixture.assert_unchanged(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_equal_the_library_search_on_pgstac_items() {
    let Some(data) = common::data_dir("results_equal_the_library_search_on_pgstac_items") else {
        return;
    };
    let fixture = Fixture::of(&[
        common::data_file(&data, PGSTAC_COLLECTIONS),
        common::data_file(&data, PGSTAC_ITEMS),
    ]);
    let app = fixture.app();
    let searches = [
        (json!({}), Some("")),
        (json!({"bbox": [-86, 30.5, -85.5, 31]}), Some("bbox=-86,30.5,-85.5,31")),
        (
            json!({"datetime": "2011-08-01T00:00:00Z/2011-08-10T00:00:00Z"}),
            Some("datetime=2011-08-01T00:00:00Z/2011-08-10T00:00:00Z"),
        ),
        (
            json!({"filter": "\"eo:cloud_cover\" <= 20 AND \"naip:state\" = 'al'"}),
            Some(
                "filter=%22eo%3Acloud_cover%22%20%3C%3D%2020%20AND%20%22naip%3Astate%22%20%3D%20%27al%27",
            ),
        ),
        (
            json!({"sortby": [{"field": "eo:cloud_cover", "direction": "desc"}], "fields": {"include": ["id", "properties.eo:cloud_cover"]}}),
            Some("sortby=-eo:cloud_cover&fields=id,properties.eo:cloud_cover"),
        ),
        (json!({"q": "nir"}), Some("q=nir")),
    ];
    for (body, query) in searches {
        assert_same_results(&fixture, &app, &body, query).await;
    }
    assert_eq!(fixture.library(&json!({})).len(), 100);
    fixture.assert_unchanged(app);
}

// ---------------------------------------------------------------------------------------------
// 7. Live updates

fn item(collection: &str, id: &str, lon: f64) -> String {
    json!({
        "type": "Feature", "stac_version": "1.1.0", "id": id, "collection": collection,
        "geometry": {"type": "Point", "coordinates": [lon, 10.0]}, "bbox": [lon, 10.0, lon, 10.0],
        "properties": {"datetime": "2023-05-01T00:00:00Z", "title": "live update"},
        "links": [], "assets": {},
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_ingested_by_another_writer_are_seen_on_the_next_request() {
    let fixture = Fixture::demo();
    let app = fixture.app();
    // Warm the pool, so a connection opened before the write is reused after it.
    for _ in 0..3 {
        assert_eq!(get(&app, "/search?limit=1").await.json()["numberMatched"], 13);
    }
    assert!(get(&app, "/search?ids=live-1,live-2").await.ids().is_empty());

    let mut writer = Catalog::open(&fixture.path).expect("writer");
    let file = fixture.path.with_file_name("live.ndjson");
    let lines = [item(DEMO, "live-1", 20.0), item("live-collection", "live-2", 21.0)];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let options = IngestOptions { create_collections: true, ..Default::default() };
    writer.ingest(&[Input::Path(file)], &options, &Silent).expect("ingest");

    // Seen while the writer is still open, and on every endpoint.
    let found = get(&app, "/search?ids=live-1,live-2&sortby=id").await.ids();
    assert_eq!(found, ["live-1", "live-2"]);
    assert_eq!(get(&app, "/search?limit=1").await.json()["numberMatched"], 15);
    let found = post(&app, "/search", &json!({"q": "live"})).await.ids();
    assert_eq!(found.len(), 2, "the free-text index sees them: {found:?}");
    get(&app, &format!("/collections/{DEMO}/items/live-1")).await.expect(StatusCode::OK, GEOJSON);
    let collections = get(&app, "/collections").await.json();
    let names: Vec<&str> = collections["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, [DEMO, "live-collection"]);
    let landing = get(&app, "/").await.json();
    assert_eq!(rel(&landing, "child").len(), 2);
    assert_eq!(
        get(&app, "/collections/live-collection/items").await.ids(),
        ["live-2"],
        "a new collection's items"
    );

    // Deletes are seen too.
    writer.delete_items(DEMO, &["live-1".to_string()], false).expect("delete");
    assert_eq!(get(&app, "/search?ids=live-1,live-2").await.ids(), ["live-2"]);
    get(&app, &format!("/collections/{DEMO}/items/live-1"))
        .await
        .expect_error(StatusCode::NOT_FOUND);
    drop(writer);
    assert_eq!(get(&app, "/search?limit=1").await.json()["numberMatched"], 14);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_agree() {
    let fixture = Fixture::demo();
    let app = fixture.app();
    let expected = get(&app, "/search?limit=13").await.ids();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => get(&app, "/search?limit=13").await.ids(),
                1 => post(&app, "/search", &json!({"limit": 13})).await.ids(),
                _ => get(&app, &format!("/collections/{DEMO}/items?limit=13")).await.ids(),
            }
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), expected);
    }
    fixture.assert_unchanged(app);
}

// ---------------------------------------------------------------------------------------------
// 6, 8. Hostile requests, and a file that never changes

/// Values that must never reach SQL as anything but a value.
fn injections() -> Vec<String> {
    vec![
        "' OR 1=1 --".into(),
        "\"; DROP TABLE items; --".into(),
        "'); DELETE FROM items; --".into(),
        "NEAR(".into(),
        "NEAR(a b".into(),
        "*".into(),
        "\0".into(),
        "a\0b".into(),
        "%".into(),
        "_".into(),
        "\\".into(),
        "\"".into(),
        "'".into(),
        "\u{202e}\u{fffd}\u{10ffff}".into(),
        "x".repeat(20_000),
    ]
}

const GET_PARAMETERS: [&str; 14] = [
    "ids",
    "collections",
    "q",
    "filter",
    "sortby",
    "fields",
    "datetime",
    "bbox",
    "token",
    "query",
    "intersects",
    "filter-lang",
    "filter-crs",
    "limit",
];

/// CQL2 text nested `depth` deep.
fn deep_text(depth: usize) -> String {
    format!("{}id = 'x'{}", "NOT (".repeat(depth), ")".repeat(depth))
}

/// CQL2 JSON nested `depth` deep.
fn deep_json(depth: usize) -> String {
    let mut text = String::new();
    for _ in 0..depth {
        text.push_str(r#"{"op":"not","args":["#);
    }
    text.push_str(r#"{"op":"=","args":[{"property":"id"},"x"]}"#);
    text.push_str(&"]}".repeat(depth));
    text
}

/// `n` comparisons joined by one flat `op` (CQL2 JSON).
fn flat_json(op: &str, n: usize) -> Value {
    let terms: Vec<Value> = (0..n)
        .map(|i| json!({"op": "=", "args": [{"property": "title"}, format!("t{i}")]}))
        .collect();
    json!({"op": op, "args": terms})
}

/// `n` comparisons joined by `op` (CQL2 text).
fn flat_text(op: &str, n: usize) -> String {
    (0..n).map(|i| format!("title = 't{i}'")).collect::<Vec<_>>().join(&format!(" {op} "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_are_refused_cleanly_and_change_nothing() {
    let fixture = Fixture::demo();
    let app = fixture.app();
    let mut failures = Failures::default();
    let ok = [StatusCode::OK];
    let bad = [StatusCode::BAD_REQUEST];
    let not_found = [StatusCode::NOT_FOUND];
    let matched = |reply: &Reply| reply.json()["numberMatched"].as_u64();

    for value in injections() {
        // Every GET parameter, on both search endpoints.
        for name in GET_PARAMETERS {
            let query = format!("{name}={}", common::pct(&value));
            let reply = probe(&app, Method::GET, &format!("/search?{query}"), Vec::new()).await;
            if matches!(name, "ids" | "collections") {
                // A string that matches nothing, nothing more.
                if failures.check(&reply, &ok) && matched(&reply) != Some(0) {
                    failures.push(format!("{}: matched {:?}", reply.what, matched(&reply)));
                }
            } else if failures.check(&reply, &OK_OR_CLIENT_ERROR)
                && name == "filter"
                && reply.status == StatusCode::OK
                && matched(&reply) != Some(0)
            {
                failures.push(format!("{}: matched {:?}", reply.what, matched(&reply)));
            }
            let uri = format!("/collections/{DEMO}/items?{query}");
            let reply = probe(&app, Method::GET, &uri, Vec::new()).await;
            if name == "ids" {
                if failures.check(&reply, &ok) && matched(&reply) != Some(0) {
                    failures.push(format!("{}: matched {:?}", reply.what, matched(&reply)));
                }
            } else {
                failures.check(&reply, &OK_OR_CLIENT_ERROR);
            }
        }
        // In a POST body.
        let bodies = [
            json!({"ids": [value]}),
            json!({"collections": [value]}),
            json!({"q": value}),
            json!({"q": [value, value]}),
            json!({"filter": value}),
            json!({"filter": value, "filter-lang": "cql2-json"}),
            json!({"filter": {"op": "=", "args": [{"property": value}, value]}}),
            json!({"filter": {"op": "like", "args": [{"property": "id"}, value]}}),
            json!({"filter": {"op": value, "args": [{"property": "id"}, value]}}),
            json!({"sortby": [{"field": value, "direction": "asc"}]}),
            json!({"sortby": [{"field": "id", "direction": value}]}),
            json!({"fields": {"include": [value], "exclude": [value]}}),
            json!({"datetime": value}),
            json!({"bbox": value}),
            json!({"token": value}),
            json!({"query": {value.clone(): {"eq": value}}}),
            json!({"query": {"title": {value.clone(): value}}}),
            json!({"intersects": value}),
            json!({"intersects": {"type": value, "coordinates": [0, 0]}}),
            json!({"filter-lang": value, "filter": "id = 'x'"}),
            json!({value.clone(): value}),
        ];
        for body in &bodies {
            let reply = probe(&app, Method::POST, "/search", body.to_string().into_bytes()).await;
            if body.get("ids").is_some() || body.get("collections").is_some() {
                if failures.check(&reply, &ok) && matched(&reply) != Some(0) {
                    failures.push(format!("{}: matched {:?}", reply.what, matched(&reply)));
                }
            } else {
                failures.check(&reply, &OK_OR_CLIENT_ERROR);
            }
        }
        // In path segments.
        let segment = common::pct(&value);
        for uri in [
            format!("/collections/{segment}"),
            format!("/collections/{segment}/queryables"),
            format!("/collections/{segment}/items"),
            format!("/collections/{segment}/items?limit=1"),
            format!("/collections/{segment}/items/{segment}"),
            format!("/collections/{segment}/items/alps-001"),
            format!("/collections/{DEMO}/items/{segment}"),
            format!("/{segment}"),
        ] {
            failures.check(&probe(&app, Method::GET, &uri, Vec::new()).await, &not_found);
        }
    }

    // Path segments that are not UTF-8, or try to climb.
    for segment in ["%FF", "%C0%AF", "%ED%A0%80", "..%2F..%2Fetc%2Fpasswd", "%2E%2E", "%2F"] {
        for uri in [
            format!("/collections/{segment}"),
            format!("/collections/{segment}/items"),
            format!("/collections/{segment}/queryables"),
            format!("/collections/{DEMO}/items/{segment}"),
        ] {
            let reply = probe(&app, Method::GET, &uri, Vec::new()).await;
            failures.check(&reply, &[StatusCode::NOT_FOUND, StatusCode::BAD_REQUEST]);
        }
    }
    // Query strings that are not UTF-8.
    for query in ["ids=%FF", "q=%FF%FE", "filter=id%20%3D%20%27%FF%27", "%FF=1", "bbox=%FF"] {
        let reply = probe(&app, Method::GET, &format!("/search?{query}"), Vec::new()).await;
        failures.check(&reply, &OK_OR_CLIENT_ERROR);
    }

    // Limits.
    for limit in ["-1", "0", "-0", "1e30", "99999999999999999999", "18446744073709551616", "NaN"] {
        let reply = probe(&app, Method::GET, &format!("/search?limit={limit}"), Vec::new()).await;
        failures.check(&reply, &bad);
        let body = format!(r#"{{"limit": {limit}}}"#).into_bytes();
        failures.check(&probe(&app, Method::POST, "/search", body).await, &bad);
    }

    // Nested 5,000 deep: CQL2 text and JSON, by GET and POST; JSON arrays; a GeoJSON geometry.
    // (A GET URI holds at most 64 KiB, so the JSON forms by GET nest 1,000 and 300 deep, past
    // serde_json's limit of 128 all the same.)
    let mut requests: Vec<(Method, String, Vec<u8>)> = Vec::new();
    let text = deep_text(5000);
    let json_text = deep_json(5000);
    let json_get = deep_json(1000);
    let geometry = |depth: usize| {
        format!(
            r#"{}{{"type":"Point","coordinates":[0,0]}}{}"#,
            r#"{"type":"GeometryCollection","geometries":["#.repeat(depth),
            "]}".repeat(depth)
        )
    };
    for query in [
        format!("filter={}", common::pct(&text)),
        format!("filter={}", common::pct(&json_get)),
        format!("filter-lang=cql2-json&filter={}", common::pct(&json_get)),
        format!("intersects={}", common::pct(&geometry(300))),
        format!("query={}", common::pct(&format!("{}1{}", "[".repeat(5000), "]".repeat(5000)))),
    ] {
        requests.push((Method::GET, format!("/search?{query}"), Vec::new()));
    }
    for body in [
        json!({"filter": text}).to_string(),
        json!({"filter": json_text, "filter-lang": "cql2-json"}).to_string(),
        format!(r#"{{"filter": {json_text}}}"#),
        json!({"filter": format!("{}id = 'x'{}", "(".repeat(5000), ")".repeat(5000))}).to_string(),
        json!({"filter": "NOT (".repeat(5000)}).to_string(),
        json!({"filter": format!("{}true", "NOT ".repeat(5000))}).to_string(),
        format!(r#"{{"intersects": {}}}"#, geometry(5000)),
        format!("{}1{}", "[".repeat(5000), "]".repeat(5000)),
        format!(r#"{{"q": {}"x"{}}}"#, "[".repeat(5000), "]".repeat(5000)),
    ] {
        requests.push((Method::POST, "/search".into(), body.into_bytes()));
    }
    for (method, uri, body) in requests {
        failures.check(&probe(&app, method, &uri, body).await, &bad);
    }

    // Wide rather than deep: thousands of terms in one flat AND or OR, and a `query` of many
    // properties. Answered, refused as too large, or cut off by the time limit; never another
    // server error.
    // On a slow machine (a debug build, other work) the widest may reach the time limit.
    let answered_or_refused =
        [StatusCode::OK, StatusCode::BAD_REQUEST, StatusCode::SERVICE_UNAVAILABLE];
    let mut wide: Vec<Value> = Vec::new();
    for n in [999, 1000, 2000, 9000] {
        wide.push(json!({"filter": flat_json("or", n)}));
        wide.push(json!({"filter": flat_json("and", n)}));
    }
    for n in [999, 1000, 2000] {
        wide.push(json!({"filter": flat_text("OR", n)}));
        wide.push(json!({"filter": flat_text("AND", n)}));
        let query: serde_json::Map<String, Value> =
            (0..n).map(|i| (format!("p{i}"), json!({"eq": i}))).collect();
        wide.push(json!({"query": query}));
        let values: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        wide.push(json!({"filter": {"op": "in", "args": [{"property": "title"}, values]}}));
        wide.push(json!({"ids": values, "collections": values}));
    }
    for body in wide {
        let reply = probe(&app, Method::POST, "/search", body.to_string().into_bytes()).await;
        failures.check(&reply, &answered_or_refused);
    }
    let reply = probe(
        &app,
        Method::GET,
        &format!("/search?filter={}", common::pct(&flat_text("OR", 1000))),
        vec![],
    )
    .await;
    failures.check(&reply, &answered_or_refused);

    // Malformed bodies, and a 10 MB one.
    for body in [&b"{\"bbox\": [1, 2, "[..], b"{\"datetime\": }", b"\x00\x01\x02", b"{}{}"] {
        failures.check(&probe(&app, Method::POST, "/search", body.to_vec()).await, &bad);
    }
    let big = format!(r#"{{"q": "{}"}}"#, "a ".repeat(5 << 20)).into_bytes();
    let reply = probe(&app, Method::POST, "/search", big).await;
    failures.check(&reply, &[StatusCode::PAYLOAD_TOO_LARGE]);

    failures.assert_none();
    // Still serving, and the file is as it was.
    assert_eq!(get(&app, "/search?limit=1").await.json()["numberMatched"], 13);
    fixture.assert_unchanged(app);
}

/// A search that runs out of time is a 503 with a JSON error, not a 500 (and not a hang).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_past_its_time_limit_is_a_503() {
    let fixture = Fixture::demo();
    let options = ServeOptions { timeout: Duration::from_nanos(1), ..Default::default() };
    let app = fixture.app_with(options);
    // A flat OR of many terms: thousands of SQLite instructions per row, so the time limit's
    // check (every 1,000 instructions) runs during the search.
    let terms: Vec<Value> = (0..500)
        .map(|i| json!({"op": "=", "args": [{"property": "title"}, format!("t{i}")]}))
        .collect();
    let body = json!({"filter": {"op": "or", "args": terms}});
    let reply = probe(&app, Method::POST, "/search", body.to_string().into_bytes()).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.content_type, JSON);
    let error = reply.json();
    assert_eq!(error["code"], "Timeout");
    assert!(error["description"].as_str().is_some_and(|d| d.contains("time limit")), "{error}");
    fixture.assert_unchanged(app);
}
