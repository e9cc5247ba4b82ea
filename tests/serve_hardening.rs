//! `stacdb serve` against hostile and careless clients (issue 7, "Server hardening"):
//!
//! * read-only proof: the file's sha256 and mtime are unchanged after a suite of requests,
//!   among them every write a STAC API transaction extension would send;
//! * limits: pathological CQL2 and `q` searches are cut off by the time limit, and the server
//!   answers `GET /` within a second while they run;
//! * slow clients: slowloris connections (headers sent byte by byte), slow bodies and idle
//!   keep-alive connections are closed after `--client-timeout`, and other clients are served
//!   meanwhile, also at the `--max-connections` cap;
//! * 10,000 random hostile requests (seeded; `STACDB_HOSTILE_SEED` replays one and
//!   `STACDB_HOSTILE_REQUESTS` sets how many) through the router, and 600 raw ones against a
//!   process: no 5xx.

mod common;
mod process_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, header};
use process_support::{Server, request, sha256, sidecar};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tower::ServiceExt;

const DEMO: &str = "demo-orthophotos";

/// A catalog of `fixtures/demo`, closed by its last writer (so no `-wal` is left).
fn demo_catalog(dir: &Path) -> PathBuf {
    let path = dir.join("demo.stacdb");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    common::stacdb_ok(["ingest", path.to_str().unwrap(), demo.to_str().unwrap()]);
    path
}

/// The bytes and times of a catalog file and its sidecars.
#[derive(Debug, PartialEq)]
struct FileState {
    main: String,
    mtime: std::time::SystemTime,
    wal: String,
}

fn file_state(path: &Path) -> FileState {
    let wal = sidecar(path, "-wal");
    FileState {
        main: sha256(path),
        mtime: std::fs::metadata(path).unwrap().modified().unwrap(),
        // A read-only connection may leave an empty -wal behind: it holds nothing.
        wal: if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            sha256(&wal)
        } else {
            "empty".into()
        },
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Read-only proof

#[test]
fn requests_that_try_to_write_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cat = demo_catalog(dir.path());
    let before = file_state(&cat);
    // Make the mtime comparison meaningful even on file systems with coarse timestamps.
    std::thread::sleep(Duration::from_millis(20));
    let server = Server::start(&cat, &[]);
    let port = server.port;

    let item = common::stacdb_ok(["get", cat.to_str().unwrap(), DEMO, "alps-001", "--compact"]);
    let mut new_item: Value = serde_json::from_str(&item).unwrap();
    new_item["id"] = json!("injected");
    let collection = common::stacdb_ok(["get", cat.to_str().unwrap(), DEMO, "--compact"]);
    let mut new_collection: Value = serde_json::from_str(&collection).unwrap();
    new_collection["id"] = json!("injected-collection");
    let patch = json!({"properties": {"title": "patched"}});
    let bulk = json!({"items": {"injected": new_item}, "method": "upsert"});
    let feature_collection = json!({"type": "FeatureCollection", "features": [new_item]});

    let mut writes = 0;
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let targets = [
        "/collections".to_string(),
        format!("/collections/{DEMO}"),
        format!("/collections/{DEMO}/items"),
        format!("/collections/{DEMO}/items/alps-001"),
        format!("/collections/{DEMO}/items/injected"),
        format!("/collections/{DEMO}/bulk_items"),
        "/collections/injected-collection".into(),
        "/search".into(),
        "/".into(),
        "/queryables".into(),
        format!("/collections/{DEMO}/queryables"),
    ];
    let bodies = [&new_item, &new_collection, &patch, &bulk, &feature_collection];
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        for target in &targets {
            for body in bodies {
                let text = body.to_string();
                let (status, answer) = request(
                    port,
                    method,
                    target,
                    &[("Content-Type", "application/json")],
                    text.as_bytes(),
                );
                writes += 1;
                *statuses.entry(status).or_default() += 1;
                assert!(
                    (200..500).contains(&status),
                    "{method} {target}: status {status}: {answer}"
                );
                if method != "POST" || target != "/search" {
                    assert!(
                        [404, 405].contains(&status),
                        "{method} {target} was accepted ({status}): {answer}"
                    );
                }
            }
        }
    }
    // And the read side, including searches that page and sort.
    let reads = [
        "/",
        "/conformance",
        "/api",
        "/api.html",
        "/queryables",
        "/collections",
        "/collections/demo-orthophotos",
        "/collections/demo-orthophotos/items?limit=3",
        "/collections/demo-orthophotos/items/alps-001",
        "/search?limit=2&sortby=-datetime",
        "/search?filter=id%20LIKE%20%27alps%25%27",
        "/search?q=alps",
        "/search?bbox=170,-20,-170,-10",
    ];
    for path in reads {
        let (status, answer) = server.get(path);
        assert_eq!(status, 200, "GET {path}: {answer}");
    }
    let (_, page) = server.get("/search?limit=1");
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["numberMatched"], 13, "no item was added or removed");
    server.stop();

    let after = file_state(&cat);
    assert_eq!(after, before, "the served file changed");
    eprintln!(
        "serve_hardening: {writes} write attempts ({statuses:?}) and {} reads; sha256 {} and mtime unchanged",
        reads.len(),
        &after.main[..16]
    );
}

// ---------------------------------------------------------------------------------------------
// (b) Limits

/// The p-th fraction of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn pathological_searches_are_cut_off_and_others_are_served_meanwhile() {
    let Some(data) = common::data_dir(
        "serve_hardening::pathological_searches_are_cut_off_and_others_are_served_meanwhile",
    ) else {
        return;
    };
    const ITEMS: usize = 3000;
    const PATHOLOGICAL: usize = 8;
    let naip = common::data_file(&data, "bench/stac-fastapi-geoparquet/naip.ndjson.gz");
    let collections = common::data_file(&data, "bench/stac-fastapi-geoparquet/collections.json");
    let dir = tempfile::tempdir().unwrap();
    let items =
        common::write_ndjson(&dir.path().join("items.ndjson"), &common::gz_lines(&naip, ITEMS));
    let cat = dir.path().join("naip.stacdb");
    common::stacdb_ok([
        "ingest",
        cat.to_str().unwrap(),
        collections.to_str().unwrap(),
        items.to_str().unwrap(),
    ]);
    let server = Server::start(&cat, &["--timeout", "1"]);
    let port = server.port;

    // Thousands of operations per row on properties without an index, a polygon of 20,000
    // vertices tested against every footprint, and free text of many prefix terms.
    let likes: Vec<Value> = (0..400)
        .map(|i| json!({"op": "like", "args": [{"property": "naip:state"}, format!("%{i}%a%b%c%d%")]}))
        .collect();
    let arithmetic: Vec<String> = (0..300)
        .map(|i| format!("(gsd * {i} + gsd / (gsd + {i}) - {i}) * 2 > {i}.5 * gsd"))
        .collect();
    let ring: Vec<Value> = (0..=20_000)
        .map(|i| {
            let a = i as f64 / 20_000.0 * std::f64::consts::TAU;
            let r = if i % 2 == 0 { 30.0 } else { 29.0 };
            json!([-100.0 + r * a.cos(), 40.0 + r * 0.5 * a.sin()])
        })
        .collect();
    let polygon = json!({"type": "Polygon", "coordinates": [ring]});
    let terms: Vec<String> = (0..2000).map(|i| format!("t{i}*")).collect();
    let bodies = [
        json!({"filter": {"op": "or", "args": likes}, "limit": 1}),
        json!({"filter": arithmetic.join(" OR "), "limit": 1, "sortby": [{"field": "naip:state", "direction": "desc"}]}),
        json!({"filter": {"op": "s_intersects", "args": [{"property": "geometry"}, polygon]}, "limit": 1}),
        json!({"intersects": polygon, "limit": 1}),
        json!({"q": terms.join(" OR "), "limit": 1}),
    ];

    let done = std::sync::atomic::AtomicBool::new(false);
    let (results, latencies) = std::thread::scope(|scope| {
        let mut workers = Vec::new();
        for k in 0..PATHOLOGICAL {
            let kinds = bodies.len();
            let body = bodies[k % kinds].to_string();
            workers.push(scope.spawn(move || {
                let started = Instant::now();
                let (status, answer) = request(
                    port,
                    "POST",
                    "/search",
                    &[("Content-Type", "application/json")],
                    body.as_bytes(),
                );
                (k % kinds, status, started.elapsed(), answer)
            }));
        }
        let prober = scope.spawn(|| {
            let mut latencies = Vec::new();
            // Probe at least until every pathological request has been sent and answered.
            while !done.load(std::sync::atomic::Ordering::SeqCst) || latencies.len() < 10 {
                let started = Instant::now();
                let (status, answer) = server.get("/");
                assert_eq!(status, 200, "GET / while pathological searches run: {answer}");
                latencies.push(started.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            latencies
        });
        let results: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (results, prober.join().unwrap())
    });
    let mut summary = Vec::new();
    for (kind, status, took, answer) in &results {
        assert!(
            *status == 503 || (400..500).contains(status) || *status == 200,
            "pathological search {kind}: status {status} after {took:?}: {answer}\nserver log:\n{}",
            server.log.lock().unwrap()
        );
        if *status == 503 {
            assert!(
                answer.contains("Timeout"),
                "search {kind}: a 503 that is not the time limit: {answer}"
            );
        }
        // The time limit plus the time to wind down and answer, on a loaded 2-core machine.
        assert!(*took < Duration::from_secs(6), "search {kind} took {took:?} (status {status})");
        summary.push(format!("#{kind}: {status} in {:.2} s", took.as_secs_f64()));
    }
    let cut = results.iter().filter(|r| r.1 == 503).count();
    assert!(
        cut >= PATHOLOGICAL / 2,
        "most pathological searches should hit the 1 s limit: {summary:?}"
    );
    let mut sorted = latencies.clone();
    sorted.sort();
    let max = *sorted.last().unwrap();
    eprintln!(
        "serve_hardening: {PATHOLOGICAL} pathological searches ({}); {cut} cut off at 1 s; GET / meanwhile: {} probes, p50 {:?}, max {:?}",
        summary.join(", "),
        sorted.len(),
        percentile(&sorted, 0.5),
        max
    );
    assert!(max < Duration::from_secs(1), "GET / took {max:?} while pathological searches ran");
    let (status, _) = server.get("/search?limit=1");
    assert_eq!(status, 200);
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// (c) Slow clients

/// Opens a connection and starts a request it never finishes: the first bytes of a header.
fn slow_client(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    stream
}

/// Whether the server has closed the connection (a read gives EOF or an error).
fn closed_by_server(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // an error response before closing
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_clients_are_cut_off_and_do_not_starve_others() {
    const SLOW: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    let cat = demo_catalog(dir.path());
    let server = Server::start(&cat, &["--client-timeout", "2"]);
    let port = server.port;

    // Slowloris: many connections, each trickling its header one byte at a time.
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..SLOW).map(|_| slow_client(port)).collect();
    // A slow body: the headers promise 1,000 bytes, and a few arrive.
    let mut slow_body = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow_body
        .write_all(b"POST /search HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"li")
        .unwrap();
    // An idle keep-alive connection, after one answered request.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).unwrap();
    idle.write_all(b"GET /conformance HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut first = [0u8; 64];
    let n = idle.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&first[..n]));

    // Meanwhile, other clients are answered at once. The slow ones keep trickling.
    let mut latencies = Vec::new();
    let mut trickled = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        for stream in slow.iter_mut().step_by(7) {
            if stream.write_all(b"s").is_ok() {
                trickled += 1;
            }
        }
        let t = Instant::now();
        let (status, _) = server.get("/");
        assert_eq!(status, 200);
        latencies.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Past the 2 s limit, every slow connection has been closed by the server.
    std::thread::sleep(Duration::from_millis(
        2500u64.saturating_sub(started.elapsed().as_millis() as u64),
    ));
    let mut closed = 0;
    for stream in &mut slow {
        if closed_by_server(stream, Duration::from_secs(3)) {
            closed += 1;
        }
    }
    let mut answer = Vec::new();
    slow_body.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = slow_body.read_to_end(&mut answer);
    let (body_status, body_text) = process_support::parse(&answer);
    let idle_closed = closed_by_server(&mut idle, Duration::from_secs(3));
    let elapsed = started.elapsed();
    latencies.sort();
    let max = *latencies.last().unwrap();
    eprintln!(
        "serve_hardening: {SLOW} slowloris connections ({trickled} bytes trickled): {closed} closed by the server after the 2 s client timeout; slow body: {body_status}; idle keep-alive closed: {idle_closed}; {} other requests meanwhile, max {max:?}; {:.1} s",
        latencies.len(),
        elapsed.as_secs_f64()
    );
    assert_eq!(closed, SLOW, "slow connections left open");
    assert_eq!(body_status, 408, "a body that never arrives: {body_text}");
    assert!(idle_closed, "an idle keep-alive connection was left open");
    assert!(max < Duration::from_secs(1), "a normal request took {max:?} beside slow clients");

    // At the connection cap, new clients wait for a slot: slow clients hold theirs at most
    // the client timeout, so a normal request is answered within about that.
    drop(slow);
    let capped = Server::start(&cat, &["--client-timeout", "2", "--max-connections", "20"]);
    let hogs: Vec<TcpStream> = (0..20).map(|_| slow_client(capped.port)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let (status, _) = capped.get("/");
    let waited = t.elapsed();
    eprintln!(
        "serve_hardening: at a cap of 20 connections held by slow clients, a request waited {waited:?}"
    );
    assert_eq!(status, 200);
    assert!(waited < Duration::from_secs(5), "a request waited {waited:?} at the connection cap");
    drop(hogs);
    capped.stop();
    server.stop();
}

// ---------------------------------------------------------------------------------------------
// (d) Random hostile requests

const INJECTIONS: &[&str] = &[
    "' OR 1=1 --",
    "\"; DROP TABLE items; --",
    "'); DELETE FROM items; --",
    "1; ATTACH DATABASE '/tmp/x' AS x; --",
    "NEAR(",
    "*",
    "\0",
    "a\0b",
    "%",
    "_",
    "\\",
    "\"",
    "'",
    "../../etc/passwd",
    "..%2F..%2F",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "\u{202e}\u{fffd}\u{10ffff}",
    "é́ Ω 𝔘 中文 🛰",
    "\u{feff}",
    "NaN",
    "Infinity",
    "-0",
    "1e309",
    "-1e309",
    "99999999999999999999999",
    "-9223372036854775809",
    "18446744073709551616",
    "0x7fffffff",
    "null",
    "true",
    "[]",
    "{}",
    "{\"op\":",
    "[[[[[[",
    "]]]]",
    "id = 'x' OR",
    "S_INTERSECTS(geometry, POLYGON((0 0, 1 1)))",
    "T_AFTER(datetime, TIMESTAMP('9999-99-99T00:00:00Z'))",
    "A_CONTAINS(x, ('a', ",
    "CASEI(",
    "eo:cloud_cover < 10 AND",
    "2021-13-45T25:61:61Z",
    "2021-01-01T00:00:00Z/2020-01-01T00:00:00Z",
    "../..",
    "-1",
    "0",
    "1.5",
    "-180,-90,180",
    "180,90,-180,-90",
    "1,2,3,4,5,6,7",
];

const PARAMETERS: &[&str] = &[
    "ids",
    "collections",
    "q",
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
    "fields",
    "datetime",
    "bbox",
    "token",
    "query",
    "intersects",
    "limit",
    "f",
    "page",
    "offset",
];

fn random_text(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0..=3 => INJECTIONS[rng.random_range(0..INJECTIONS.len())].to_string(),
        4 => {
            // Random unicode, NULs and controls included.
            let n = rng.random_range(0..40);
            (0..n)
                .map(|_| {
                    loop {
                        if let Some(c) = char::from_u32(rng.random_range(0..0x11_0000)) {
                            break c;
                        }
                    }
                })
                .collect()
        }
        5 => {
            let n: i128 = rng.random_range(-(1i128 << 100)..(1i128 << 100));
            format!("{n}")
        }
        6 => format!("{}", rng.random::<f64>() * 10f64.powi(rng.random_range(-300..300))),
        7 => {
            let depth = rng.random_range(1..400);
            let open = ["[", "{\"a\":", "(", "NOT (", "{\"op\":\"not\",\"args\":["];
            let k = rng.random_range(0..open.len());
            format!("{}x{}", open[k].repeat(depth), ")".repeat(rng.random_range(0..depth)))
        }
        8 => {
            // A combination of two.
            let a = INJECTIONS[rng.random_range(0..INJECTIONS.len())];
            let b = INJECTIONS[rng.random_range(0..INJECTIONS.len())];
            format!("{a} {b}")
        }
        _ => "x".repeat(rng.random_range(0..5000)),
    }
}

fn random_value(rng: &mut StdRng, depth: usize) -> Value {
    match rng.random_range(0..if depth > 3 { 5 } else { 8 }) {
        0 => Value::String(random_text(rng)),
        1 => json!(rng.random::<i64>()),
        2 => json!(rng.random::<f64>() * 1e300 * if rng.random_bool(0.5) { -1.0 } else { 1.0 }),
        3 => Value::Null,
        4 => json!(rng.random_bool(0.5)),
        5 => Value::Array(
            (0..rng.random_range(0..6)).map(|_| random_value(rng, depth + 1)).collect(),
        ),
        6 => {
            let mut object = serde_json::Map::new();
            for _ in 0..rng.random_range(0..5) {
                let key = if rng.random_bool(0.5) {
                    const KEYS: [&str; 13] = [
                        "op",
                        "args",
                        "property",
                        "type",
                        "coordinates",
                        "field",
                        "direction",
                        "eq",
                        "lt",
                        "in",
                        "interval",
                        "timestamp",
                        "bbox",
                    ];
                    KEYS[rng.random_range(0..KEYS.len())].to_string()
                } else {
                    random_text(rng)
                };
                object.insert(key, random_value(rng, depth + 1));
            }
            Value::Object(object)
        }
        _ => {
            const OPS: [&str; 15] = [
                "=",
                "<",
                "and",
                "or",
                "not",
                "like",
                "between",
                "in",
                "s_intersects",
                "t_after",
                "a_contains",
                "casei",
                "+",
                "/",
                "isNull",
            ];
            let op = OPS[rng.random_range(0..OPS.len())];
            let property = random_text(rng);
            json!({"op": op, "args": [{"property": property}, random_value(rng, depth + 1)]})
        }
    }
}

/// One random hostile request: method, URI and body.
fn random_request(rng: &mut StdRng) -> (Method, String, Vec<u8>) {
    let methods = [
        Method::GET,
        Method::GET,
        Method::GET,
        Method::POST,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
    ];
    let mut method = methods[rng.random_range(0..methods.len())].clone();
    if rng.random_bool(0.01) {
        method = Method::from_bytes(b"FOO").unwrap();
    }
    let segment = |rng: &mut StdRng| -> String {
        match rng.random_range(0..6) {
            0 => DEMO.into(),
            1 => "alps-001".into(),
            2 => "%FF%FE".into(),
            3 => "..".into(),
            _ => common::pct(&random_text(rng)),
        }
    };
    let path = match rng.random_range(0..12) {
        0 => "/".into(),
        1 => "/search".into(),
        2 | 3 => "/search".into(),
        4 => format!("/collections/{}", segment(rng)),
        5 => format!("/collections/{}/items", segment(rng)),
        6 => format!("/collections/{}/items/{}", segment(rng), segment(rng)),
        7 => format!("/collections/{}/queryables", segment(rng)),
        8 => ["/queryables", "/conformance", "/api", "/api.html", "/collections"]
            [rng.random_range(0..5)]
        .into(),
        9 => format!("/{}/{}", segment(rng), segment(rng)),
        10 => format!("//{}//..//{}", segment(rng), segment(rng)),
        _ => format!("/collections/{DEMO}/items"),
    };
    let mut query = Vec::new();
    for _ in 0..rng.random_range(0..5) {
        let name = if rng.random_bool(0.85) {
            PARAMETERS[rng.random_range(0..PARAMETERS.len())].to_string()
        } else {
            random_text(rng)
        };
        let value =
            if rng.random_bool(0.2) { random_value(rng, 0).to_string() } else { random_text(rng) };
        query.push(format!("{}={}", common::pct(&name), common::pct(&value)));
    }
    // Keep URIs under hyper's limits for a real server; the router takes any.
    let mut uri = path;
    if !query.is_empty() {
        uri.push('?');
        uri.push_str(&query.join("&"));
    }
    let body = if method == Method::GET || rng.random_bool(0.1) {
        Vec::new()
    } else {
        match rng.random_range(0..6) {
            0 => {
                let n = rng.random_range(0..200);
                (0..n).map(|_| rng.random::<u8>()).collect()
            }
            1 => random_value(rng, 0).to_string().into_bytes(),
            2 => {
                let mut text = random_value(rng, 0).to_string();
                let mut cut = rng.random_range(0..=text.len());
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.into_bytes()
            }
            _ => {
                let mut object = serde_json::Map::new();
                for _ in 0..rng.random_range(1..5) {
                    let name = PARAMETERS[rng.random_range(0..PARAMETERS.len())];
                    object.insert(name.into(), random_value(rng, 0));
                }
                Value::Object(object).to_string().into_bytes()
            }
        }
    };
    (method, uri, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_hostile_requests_never_get_a_server_error() {
    let requests = std::env::var("STACDB_HOSTILE_REQUESTS")
        .ok()
        .map(|v| v.parse().expect("STACDB_HOSTILE_REQUESTS"))
        .unwrap_or(10_000usize);
    let seed = std::env::var("STACDB_HOSTILE_SEED")
        .ok()
        .map(|v| v.parse().expect("STACDB_HOSTILE_SEED"))
        .unwrap_or(20_240_707u64);
    eprintln!("serve_hardening: hostile seed {seed} (replay with STACDB_HOSTILE_SEED={seed})");
    let dir = tempfile::tempdir().unwrap();
    let cat = demo_catalog(dir.path());
    let before = file_state(&cat);
    let app = stacdb::server::router(&cat, stacdb::server::ServeOptions::default()).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    let hosts = ["stac.test", "", "a b", "x:99999", "[::1]:80", "\u{7f}"];
    for n in 0..requests {
        let (method, uri, body) = random_request(&mut rng);
        let mut builder = axum::http::Request::builder().method(method.clone()).uri(&uri);
        let host = hosts[rng.random_range(0..hosts.len())];
        if let Ok(value) = header::HeaderValue::from_str(host) {
            builder = builder.header(header::HOST, value);
        }
        if rng.random_bool(0.7) {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
        }
        if rng.random_bool(0.3) {
            builder = builder.header(header::ACCEPT_ENCODING, "gzip");
        }
        let Ok(request) = builder.body(Body::from(body.clone())) else {
            // Not a request a client can send (the URI does not parse).
            *statuses.entry(0).or_default() += 1;
            continue;
        };
        let response = tokio::spawn(app.clone().oneshot(request))
            .await
            .unwrap_or_else(|e| panic!("request {n}: {method} {uri}: the handler panicked: {e}"))
            .unwrap();
        let status = response.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        if status >= 500 {
            let text = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            failures.push(format!(
                "request {n}: {method} {} body {:?}: {status} {}",
                &uri[..uri.len().min(300)],
                String::from_utf8_lossy(&body[..body.len().min(300)]),
                String::from_utf8_lossy(&text[..text.len().min(300)])
            ));
        }
    }
    drop(app);
    let sent = requests - statuses.get(&0).copied().unwrap_or(0);
    eprintln!(
        "serve_hardening: {requests} random hostile requests ({sent} well-formed enough to send) in {:.1} s: statuses {statuses:?}; {} server errors",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} server errors:\n{}", failures.len(), failures.join("\n"));
    assert!(sent >= requests * 9 / 10, "too few requests could be built: {sent}");
    assert_eq!(file_state(&cat), before, "the catalog file changed");
}

#[test]
fn random_raw_requests_against_a_process_never_get_a_server_error() {
    const REQUESTS: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let cat = demo_catalog(dir.path());
    let before = file_state(&cat);
    let server = Server::start(&cat, &["--client-timeout", "2"]);
    let mut rng = StdRng::seed_from_u64(7);
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for n in 0..REQUESTS {
        let kind = rng.random_range(0..10);
        let bytes = match kind {
            // Garbage, including bytes that are not HTTP at all.
            0 => (0..rng.random_range(1..300)).map(|_| rng.random::<u8>()).collect::<Vec<u8>>(),
            // A request line with raw hostile bytes in the target.
            1 => {
                let mut line = b"GET /search?q=".to_vec();
                line.extend(random_text(&mut rng).bytes());
                line.extend(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                line
            }
            // Bad headers: a huge one, a NUL, a lying Content-Length, chunked garbage.
            2 => format!("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: {}\r\n\r\n", "a".repeat(rng.random_range(1..200_000))).into_bytes(),
            3 => b"POST /search HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\n{\"limit\": 1}".to_vec(),
            4 => b"POST /search HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
            5 => b"POST /search HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: -1\r\n\r\n".to_vec(),
            _ => {
                let (method, uri, body) = random_request(&mut rng);
                let mut head = format!("{method} {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
                if !body.is_empty() {
                    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
                }
                head.push_str("\r\n");
                let mut bytes = head.into_bytes();
                bytes.extend(body);
                bytes
            }
        };
        // Garbage may not be a whole request: end it, rather than wait for the client timeout.
        let (status, answer) = process_support::raw(server.port, &bytes, kind == 0);
        *statuses.entry(status).or_default() += 1;
        if status >= 500 {
            failures.push(format!(
                "request {n}: {:?}: {status} {answer}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ));
        }
    }
    let (status, _) = server.get("/search?limit=1");
    assert_eq!(status, 200, "the server stopped answering");
    server.stop();
    eprintln!(
        "serve_hardening: {REQUESTS} raw hostile requests to a process: statuses {statuses:?} (0: closed without an answer); {} server errors",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(file_state(&cat), before, "the catalog file changed");
}
