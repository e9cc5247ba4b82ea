//! `stacdb serve`: the catalog file as a read-only STAC API (axum on tokio, tower-http).
//!
//! Every handler runs its SQLite work on tokio's blocking pool, on a read-only connection
//! taken from a small pool ([`Pool`]); nothing a request does can change the file. Searches
//! run under a time limit; request bodies and page sizes are bounded; errors are JSON
//! `{"code", "description"}` with a 4xx status for anything the client can fix.
//!
//! Connections are served by hyper's HTTP/1 server directly (not `axum::serve`, which sets no
//! header timeout): a client must send a request's headers within
//! [`ServeOptions::client_timeout`] (idle keep-alive connections too) and a body within the
//! same time, and at most [`ServeOptions::max_connections`] connections are open at once, so
//! slow clients (slowloris) are cut off and cannot starve the others.

mod features;
mod openapi;
mod queryables;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};

use crate::search::{Request, SearchError, SearchOptions, request};
use crate::{Catalog, Error};

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The base URL links are built from; `None` to take it from each request's Host header.
    pub base_url: Option<String>,
    /// The largest request body, in bytes.
    pub max_body: usize,
    /// The largest page (`limit`); a larger one is lowered to it.
    pub max_limit: u64,
    /// The page size when a request names none.
    pub default_limit: u64,
    /// How long one search may run.
    pub timeout: Duration,
    /// How long a client may take to send a request's headers (counted from when the server
    /// waits for them, so an idle keep-alive connection is closed after it too), and its body.
    pub client_timeout: Duration,
    /// The most connections served at once; more wait in the listen queue.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            base_url: None,
            max_body: 1024 * 1024,
            max_limit: 10_000,
            default_limit: 10,
            timeout: Duration::from_secs(10),
            client_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// Read-only connections to the catalog file, reused between requests.
///
/// The pool only ever opens the file it was started on: if that file is removed (or replaced
/// by another file) while the server runs, requests are served from the connections already
/// open, which keep reading the original file, as any open Unix file does (see
/// docs/RELIABILITY.md, "Failures").
#[derive(Debug)]
struct Pool {
    path: PathBuf,
    /// The file's identity (device, inode) when the server started.
    identity: Option<(u64, u64)>,
    idle: Mutex<Vec<Catalog>>,
    returned: Condvar,
    /// How long a request waits for an open connection when no new one can be opened.
    wait: Duration,
}

/// A file's device and inode number.
fn identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

impl Pool {
    fn take(&self) -> crate::Result<Catalog> {
        let idle = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        if let Some(catalog) = idle {
            return Ok(catalog);
        }
        match self.open() {
            Ok(catalog) => Ok(catalog),
            Err(e) => {
                // The file is gone or is another file now: wait for a connection to the
                // original to come back.
                let Ok(idle) = self.idle.lock() else { return Err(e) };
                match self.returned.wait_timeout_while(idle, self.wait, |idle| idle.is_empty()) {
                    Ok((mut idle, _)) => idle.pop().ok_or(e),
                    Err(_) => Err(e),
                }
            }
        }
    }

    /// Opens a new connection, if the path still names the file the server started on.
    fn open(&self) -> crate::Result<Catalog> {
        let moved = || {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    path = %self.path.display(),
                    "the catalog file was removed or replaced while being served; serving the \
                     original from the connections already open (restart to serve the new file)"
                );
            });
            Error::NoSuchCatalog { path: self.path.clone() }
        };
        if identity(&self.path) != self.identity {
            return Err(moved());
        }
        let catalog = Catalog::open_read_only(&self.path)?;
        if identity(&self.path) != self.identity {
            return Err(moved());
        }
        Ok(catalog)
    }

    fn give_back(&self, catalog: Catalog) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < 16
        {
            idle.push(catalog);
            self.returned.notify_one();
        }
    }
}

/// What every handler shares.
#[derive(Debug)]
struct AppState {
    pool: Pool,
    options: ServeOptions,
    conformance: Vec<&'static str>,
}

type Shared = Arc<AppState>;

/// The conformance classes this server implements.
const CONFORMANCE: &[&str] = &[
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "https://api.stacspec.org/v1.0.0/item-search#filter",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/array-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/property-property",
    "http://www.opengis.net/spec/cql2/1.0/conf/arithmetic",
    "https://api.stacspec.org/v1.0.0/item-search#sort",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#sort",
    "https://api.stacspec.org/v1.1.0/item-search#sort",
    "https://api.stacspec.org/v1.1.0/ogcapi-features#sort",
    "https://api.stacspec.org/v1.0.0/item-search#fields",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#fields",
    "https://api.stacspec.org/v1.0.0/item-search#query",
    "https://api.stacspec.org/v1.0.0/ogcapi-features#query",
    "https://api.stacspec.org/v1.0.0-rc.1/item-search#free-text",
    "https://api.stacspec.org/v1.0.0-rc.1/ogcapi-features#free-text",
];

const GEOJSON: &str = "application/geo+json";
const JSON: &str = "application/json";
const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";

/// An error answered as `{"code", "description"}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    description: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> ApiError {
        ApiError { status, code, description: description.into() }
    }

    fn bad_request(description: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BadRequest", description)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        match e {
            Error::Search(SearchError::Timeout(_)) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "Timeout", e.to_string())
            }
            Error::Search(s) => ApiError::bad_request(s.to_string()),
            Error::CollectionNotFound(_) | Error::ItemNotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "NotFound", e.to_string())
            }
            other => {
                // Never show SQL or internals to the client; log them.
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "the catalog could not answer this request; try again",
                )
            }
        }
    }
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> ApiError {
        Error::Search(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"code": self.code, "description": self.description}).to_string();
        (self.status, [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))], body)
            .into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// Path segments, with a malformed one (not UTF-8 once decoded) answered as a JSON 400.
struct Segments<T>(T);

impl<T, S> axum::extract::FromRequestParts<S> for Segments<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        match UrlPath::<T>::from_request_parts(parts, state).await {
            Ok(UrlPath(value)) => Ok(Segments(value)),
            Err(e) => Err(ApiError::bad_request(format!("malformed path: {}", e.body_text()))),
        }
    }
}

/// A JSON response with the given content type.
fn respond(content_type: &'static str, value: &Value) -> Response {
    respond_text(content_type, value.to_string())
}

/// A response of JSON text already written.
fn respond_text(content_type: &'static str, text: String) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], text)
        .into_response()
}

/// A stored document that does not read back as JSON: the file is damaged.
fn stored(e: serde_json::Error) -> ApiError {
    Error::InvalidArgument(format!("a stored item is not a JSON object: {e}")).into()
}

/// Builds the router over a catalog file (opened read-only, lazily, per worker).
pub fn router(path: &Path, options: ServeOptions) -> crate::Result<Router> {
    // Open once now, so a missing or foreign file fails at start-up rather than per request.
    let identity = identity(path);
    let first = Catalog::open_read_only(path)?;
    let state = Arc::new(AppState {
        pool: Pool {
            path: path.to_path_buf(),
            identity,
            idle: Mutex::new(vec![first]),
            returned: Condvar::new(),
            wait: options.timeout,
        },
        conformance: CONFORMANCE.to_vec(),
        options,
    });
    let max_body = state.options.max_body;
    let cors = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_origin(Any)
        .allow_headers(Any);
    Ok(Router::new()
        .route("/", get(landing))
        .route("/conformance", get(conformance))
        .route("/api", get(api))
        .route("/api.html", get(api_html))
        .route("/queryables", get(catalog_queryables))
        .route("/collections", get(collections))
        .route("/collections/{collection}", get(collection))
        .route("/collections/{collection}/queryables", get(collection_queryables))
        .route("/collections/{collection}/items", get(collection_items))
        .route("/collections/{collection}/items/{item}", get(item))
        .route("/search", get(search_get).post(search_post))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CompressionLayer::new())
        .layer(cors)
        .layer(axum::middleware::from_fn(access_log))
        .with_state(state))
}

/// One log line per request: method, path and query, status, and the time until the
/// response's head was ready, in milliseconds (`INFO stacdb::server: GET /search?... 200
/// 0.31 ms`). tower-http's trace layer, used before, said `latency=0 ms` for most requests.
async fn access_log(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let start = std::time::Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    tracing::info!(
        "{method} {uri} {} {:.2} ms",
        response.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
    response
}

/// Serves the catalog until SIGINT or SIGTERM.
pub async fn serve(path: &Path, address: &str, options: ServeOptions) -> anyhow::Result<()> {
    let client_timeout = options.client_timeout;
    let max_connections = options.max_connections.max(1);
    let app = router(path, options)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
    let local = listener.local_addr()?;
    eprintln!("stacdb: serving {} at http://{local}/ (Ctrl-C to stop)", path.display());
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let (closing, closed) = tokio::sync::watch::channel(false);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        // A free slot first: at the cap, new connections wait in the listen queue.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(client_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = closed.changed() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Let requests under way finish (each is bounded by the search and client time limits).
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ =
        tokio::time::timeout(client_timeout.max(Duration::from_secs(1)), slots.acquire_many(all))
            .await;
    crate::logging::flush();
    eprintln!("stacdb: stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Runs `f` with a pooled read-only catalog on the blocking pool.
///
/// A search stops itself at its time limit, but SQLite checks the clock only between its
/// instructions, and one instruction can run long: a spatial test of one row against a
/// polygon of 20,000 vertices took over a minute (geo's `relate` nodes the polygon again for
/// every row). So a little after the time limit the request answers 503 whatever its work is
/// doing, and that work is interrupted (`sqlite3_interrupt`, which SQLite checks at every
/// row): it ends when its current SQL function call returns, and its connection goes back to
/// the pool then.
async fn with_catalog<T, F>(state: &Shared, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Catalog) -> Result<T, ApiError> + Send + 'static,
{
    // The connection's interrupt handle while `f` runs on it, and only then: the connection
    // goes back to the pool afterwards, and another request's work must not be interrupted.
    let running: Arc<Mutex<Option<rusqlite::InterruptHandle>>> = Arc::default();
    let task = {
        let state = state.clone();
        let running = running.clone();
        tokio::task::spawn_blocking(move || {
            let catalog = state.pool.take()?;
            if let Ok(mut running) = running.lock() {
                *running = Some(catalog.connection().get_interrupt_handle());
            }
            let result = f(&catalog);
            if let Ok(mut running) = running.lock() {
                *running = None;
            }
            state.pool.give_back(catalog);
            result
        })
    };
    tokio::pin!(task);
    let limit = state.options.timeout;
    let grace = limit / 10 + Duration::from_millis(100);
    let joined = tokio::select! {
        joined = &mut task => joined,
        () = tokio::time::sleep(limit + grace) => {
            if let Ok(running) = running.lock()
                && let Some(handle) = running.as_ref()
            {
                handle.interrupt();
            }
            // Past the limit whatever happens now: the work ends by itself, detached.
            return Err(Error::Search(crate::search::SearchError::Timeout(limit)).into());
        }
    };
    match joined {
        Ok(result) => result,
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "the request could not be completed",
        )),
    }
}

/// The base URL of links: the configured one, or `http://<Host>`.
fn base_url(state: &Shared, headers: &HeaderMap) -> String {
    if let Some(base) = &state.options.base_url {
        return base.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn link(rel: &str, href: String, media: &str) -> Value {
    json!({"rel": rel, "href": href, "type": media})
}

pub(crate) fn collection_ids(catalog: &Catalog) -> crate::Result<Vec<String>> {
    let mut stmt = catalog
        .connection()
        .prepare_cached("SELECT id FROM collections WHERE content IS NOT NULL ORDER BY id")?;
    let ids = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

async fn landing(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    let base = base_url(&state, &headers);
    let conformance = state.conformance.clone();
    with_catalog(&state, move |catalog| {
        let meta = catalog.metadata()?;
        let mut links = vec![
            link("self", format!("{base}/"), JSON),
            link("root", format!("{base}/"), JSON),
            link("conformance", format!("{base}/conformance"), JSON),
            link("data", format!("{base}/collections"), JSON),
            json!({"rel": "search", "href": format!("{base}/search"), "type": GEOJSON, "method": "GET"}),
            json!({"rel": "search", "href": format!("{base}/search"), "type": GEOJSON, "method": "POST"}),
            link("service-desc", format!("{base}/api"), OPENAPI),
            link("service-doc", format!("{base}/api.html"), "text/html"),
            link(
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                format!("{base}/queryables"),
                "application/schema+json",
            ),
        ];
        for id in collection_ids(catalog)? {
            links.push(link("child", format!("{base}/collections/{}", encode(&id)), JSON));
        }
        let mut body = json!({
            "type": "Catalog",
            "stac_version": "1.1.0",
            "id": meta.id,
            "description": meta.description.unwrap_or_else(|| "A STAC catalog served by stacdb".into()),
            "conformsTo": conformance,
            "links": links,
        });
        if let Some(title) = meta.title {
            body["title"] = Value::String(title);
        }
        Ok(respond(JSON, &body))
    })
    .await
}

async fn conformance(State(state): State<Shared>) -> ApiResult {
    Ok(respond(JSON, &json!({"conformsTo": state.conformance})))
}

async fn api(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    Ok(respond(OPENAPI, &openapi::document(&base_url(&state, &headers))))
}

async fn api_html(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    let html = openapi::html(&openapi::document(&base_url(&state, &headers)));
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], html)
        .into_response())
}

async fn catalog_queryables(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    let base = base_url(&state, &headers);
    with_catalog(&state, move |catalog| {
        Ok(respond("application/schema+json", &queryables::schema(catalog, None, &base)?))
    })
    .await
}

async fn collection_queryables(
    State(state): State<Shared>,
    headers: HeaderMap,
    Segments(id): Segments<String>,
) -> ApiResult {
    let base = base_url(&state, &headers);
    with_catalog(&state, move |catalog| {
        Ok(respond("application/schema+json", &queryables::schema(catalog, Some(&id), &base)?))
    })
    .await
}

/// A collection document with the API's links (and its current extent).
fn collection_body(catalog: &Catalog, id: &str, base: &str) -> crate::Result<Value> {
    let mut document = catalog.collection(id)?;
    let own = format!("{base}/collections/{}", encode(id));
    if let Value::Object(object) = &mut document {
        let mut links = keep_links(object.remove("links"));
        links.extend([
            link("self", own.clone(), JSON),
            link("root", format!("{base}/"), JSON),
            link("parent", format!("{base}/"), JSON),
            link("items", format!("{own}/items"), GEOJSON),
            link(
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                format!("{own}/queryables"),
                "application/schema+json",
            ),
        ]);
        object.insert("links".into(), Value::Array(links));
    }
    Ok(document)
}

/// The link relations the API writes itself; stored links with them are dropped.
const API_RELS: [&str; 6] = ["self", "root", "parent", "collection", "items", "next"];

/// A document's links without those the API writes itself.
fn keep_links(links: Option<Value>) -> Vec<Value> {
    match links {
        Some(Value::Array(links)) => links
            .into_iter()
            .filter(|l| {
                !l.get("rel").and_then(Value::as_str).is_some_and(|r| API_RELS.contains(&r))
            })
            .collect(),
        _ => Vec::new(),
    }
}

async fn collections(State(state): State<Shared>, headers: HeaderMap) -> ApiResult {
    let base = base_url(&state, &headers);
    with_catalog(&state, move |catalog| {
        let mut documents = Vec::new();
        for id in collection_ids(catalog)? {
            documents.push(collection_body(catalog, &id, &base)?);
        }
        let body = json!({
            "collections": documents,
            "links": [
                link("self", format!("{base}/collections"), JSON),
                link("root", format!("{base}/"), JSON),
                link("parent", format!("{base}/"), JSON),
            ],
        });
        Ok(respond(JSON, &body))
    })
    .await
}

async fn collection(
    State(state): State<Shared>,
    headers: HeaderMap,
    Segments(id): Segments<String>,
) -> ApiResult {
    let base = base_url(&state, &headers);
    with_catalog(&state, move |catalog| Ok(respond(JSON, &collection_body(catalog, &id, &base)?)))
        .await
}

async fn item(
    State(state): State<Shared>,
    headers: HeaderMap,
    Segments((collection, id)): Segments<(String, String)>,
) -> ApiResult {
    let base = base_url(&state, &headers);
    with_catalog(&state, move |catalog| {
        let text = catalog.item_text(&collection, &id)?;
        Ok(respond_text(GEOJSON, features::item(&text, &base, Some(&collection)).map_err(stored)?))
    })
    .await
}

/// GET parameters as a search body (the names and forms of STAC API GET search).
fn get_body(query: Option<&str>) -> Result<Map<String, Value>, ApiError> {
    let mut body = Map::new();
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
    for (name, value) in pairs {
        let name = name.into_owned();
        let value = value.into_owned();
        let list = |v: &str| -> Value {
            v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Value::from).collect()
        };
        let parsed = match name.as_str() {
            "bbox" => json!(request::bbox_from_text(&value)?),
            "limit" => json!(value.trim().parse::<u64>().map_err(|_| ApiError::bad_request(
                format!("limit: must be a whole number of at least 1, not '{value}'")
            ))?),
            "ids" | "collections" => list(&value),
            "intersects" | "query" => serde_json::from_str(&value)
                .map_err(|e| ApiError::bad_request(format!("{name}: not valid JSON: {e}")))?,
            "filter" => {
                if value.trim_start().starts_with('{') {
                    serde_json::from_str(&value).map_err(|e| {
                        ApiError::bad_request(format!("filter: not valid CQL2 JSON: {e}"))
                    })?
                } else {
                    Value::String(value)
                }
            }
            "sortby" => request::sortby_from_text(&value),
            "fields" => list(&value),
            "datetime" | "filter-lang" | "q" | "token" | "filter-crs" => Value::String(value),
            _ => continue,
        };
        if body.insert(name.clone(), parsed).is_some() {
            return Err(ApiError::bad_request(format!("{name}: given more than once")));
        }
    }
    if let Some(Value::String(crs)) = body.remove("filter-crs")
        && crs != "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    {
        return Err(ApiError::bad_request(format!(
            "filter-crs: only http://www.opengis.net/def/crs/OGC/1.3/CRS84 is supported, not '{crs}'"
        )));
    }
    Ok(body)
}

fn search_options(state: &Shared) -> SearchOptions {
    SearchOptions {
        default_limit: state.options.default_limit,
        max_limit: state.options.max_limit,
        timeout: Some(state.options.timeout),
    }
}

/// How the next page is asked for.
enum Paging {
    /// GET: the same URL with the token.
    Get { url: String, query: Vec<(String, String)> },
    /// POST: the same body with the token, merged.
    Post { url: String },
}

/// Runs a search and answers with an ItemCollection.
async fn run_search(state: &Shared, base: String, body: Value, paging: Paging) -> ApiResult {
    let request = Request::from_json(&body)?;
    let options = search_options(state);
    let page = with_catalog(state, move |catalog| Ok(catalog.search(&request, &options)?)).await?;
    let items = page
        .items
        .iter()
        .map(|text| features::item(text, &base, None))
        .collect::<Result<Vec<_>, _>>()
        .map_err(stored)?;
    let mut links = vec![link("root", format!("{base}/"), JSON)];
    links.push(match &paging {
        Paging::Get { url, query } => {
            let encoded =
                form_urlencoded::Serializer::new(String::new()).extend_pairs(query.iter()).finish();
            let href = if encoded.is_empty() { url.clone() } else { format!("{url}?{encoded}") };
            json!({"rel": "self", "href": href, "type": GEOJSON})
        }
        Paging::Post { url } => json!({"rel": "self", "href": url, "type": GEOJSON}),
    });
    if let Some(token) = &page.next {
        links.push(match paging {
            Paging::Get { url, mut query } => {
                query.retain(|(k, _)| k != "token");
                query.push(("token".into(), token.clone()));
                let encoded = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(query.iter())
                    .finish();
                json!({"rel": "next", "href": format!("{url}?{encoded}"), "type": GEOJSON, "method": "GET"})
            }
            Paging::Post { url } => json!({
                "rel": "next", "href": url, "type": GEOJSON, "method": "POST",
                "body": {"token": token}, "merge": true,
            }),
        });
    }
    let body = features::feature_collection(&items, &links, page.number_matched).map_err(stored)?;
    Ok(respond_text(GEOJSON, body))
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

async fn search_get(
    State(state): State<Shared>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let base = base_url(&state, &headers);
    let body = get_body(query.as_deref())?;
    let paging =
        Paging::Get { url: format!("{base}/search"), query: query_pairs(query.as_deref()) };
    run_search(&state, base, Value::Object(body), paging).await
}

async fn search_post(
    State(state): State<Shared>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> ApiResult {
    let base = base_url(&state, &headers);
    // The body must arrive within the client time limit: a client trickling it byte by byte
    // would otherwise hold the connection for as long as it likes.
    let read =
        tokio::time::timeout(state.options.client_timeout, Bytes::from_request(request, &()));
    let body: Result<Bytes, BytesRejection> = read.await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            format!(
                "the request body did not arrive within {} s",
                state.options.client_timeout.as_secs_f64()
            ),
        )
    })?;
    let bytes = body.map_err(|e| {
        ApiError::new(
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            },
            "BadRequest",
            format!("the request body could not be read: {e}"),
        )
    })?;
    let body: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?
    };
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let paging = Paging::Post { url: format!("{base}/search") };
    run_search(&state, base, body, paging).await
}

async fn collection_items(
    State(state): State<Shared>,
    headers: HeaderMap,
    Segments(id): Segments<String>,
    RawQuery(query): RawQuery,
) -> ApiResult {
    let base = base_url(&state, &headers);
    let mut body = get_body(query.as_deref())?;
    if body.contains_key("collections") {
        return Err(ApiError::bad_request(
            "collections: not a parameter of /collections/{collectionId}/items",
        ));
    }
    // A missing collection is a 404, not an empty page.
    let check = id.clone();
    with_catalog(&state, move |catalog| Ok(catalog.collection_document(&check).map(drop)?)).await?;
    body.insert("collections".into(), json!([id]));
    let url = format!("{base}/collections/{}/items", encode(&id));
    let paging = Paging::Get { url, query: query_pairs(query.as_deref()) };
    run_search(&state, base, Value::Object(body), paging).await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "no such endpoint (see /api)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "this endpoint does not accept this method (see /api)",
    )
}

/// Percent-encodes one path segment (everything but unreserved characters).
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
