//! `stacdb serve` as a process: it keeps answering while `stacdb ingest` writes to the same
//! file from another process (new items appear on the next request), SIGTERM stops it
//! gracefully, and each request gets a log line.

mod common;
mod process_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use process_support::Server;
use serde_json::Value;

fn matched(server: &Server, query: &str) -> u64 {
    let (status, body) = server.get(&format!("/search?{query}"));
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    page["numberMatched"].as_u64().unwrap()
}

/// A catalog of fixtures/demo made by `stacdb ingest`, in a directory removed when the first
/// value is dropped.
fn demo_catalog() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("demo.stacdb");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    common::stacdb_ok(["ingest", catalog.to_str().unwrap(), demo.to_str().unwrap()]);
    (dir, catalog)
}

#[test]
fn serve_answers_while_another_process_ingests_and_stops_on_sigterm() {
    let (dir, catalog) = demo_catalog();

    let server = Server::start(&catalog, &[]);
    assert_eq!(matched(&server, "limit=1"), 13);
    assert_eq!(matched(&server, "ids=alps-001-copy"), 0);

    // Another process writes new items while the server runs.
    let copy = dir.path().join("copy.json");
    let stored = common::stacdb_ok([
        "get",
        catalog.to_str().unwrap(),
        "demo-orthophotos",
        "alps-001",
        "--compact",
    ]);
    let mut item: Value = serde_json::from_str(&stored).unwrap();
    item["id"] = Value::from("alps-001-copy");
    std::fs::write(&copy, item.to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let writer = std::thread::spawn({
        let catalog = catalog.clone();
        move || common::stacdb_ok(["ingest", catalog.to_str().unwrap(), copy.to_str().unwrap()])
    });
    // The server keeps answering during the write.
    while !writer.is_finished() && Instant::now() < deadline {
        let n = matched(&server, "limit=1");
        assert!(n == 13 || n == 14, "an impossible count {n}");
    }
    writer.join().unwrap();
    // The next request sees the new item.
    assert_eq!(matched(&server, "limit=1"), 14);
    assert_eq!(matched(&server, "ids=alps-001-copy"), 1);
    let (status, _) = server.get("/collections/demo-orthophotos/items/alps-001-copy");
    assert_eq!(status, 200);

    // SIGTERM: the server finishes and exits with success.
    server.stop();
}

#[test]
fn each_request_gets_a_log_line_written_soon_and_before_the_server_stops() {
    let (_dir, catalog) = demo_catalog();
    let server = Server::start_logging(&catalog, &[], None);
    assert_eq!(server.get("/collections").0, 200);
    assert_eq!(server.get("/search?limit=x").0, 400);
    // Routine lines are held at most 0.1 s (src/logging.rs).
    let deadline = Instant::now() + Duration::from_secs(5);
    let has = |line: &str| server.log.lock().unwrap().lines().any(|l| l.contains(line));
    while !(has("GET /collections 200 ") && has("GET /search?limit=x 400 ")) {
        assert!(Instant::now() < deadline, "no request lines in {:?}", server.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    // A line made just before SIGTERM is written before the server's last line.
    assert_eq!(server.get("/conformance").0, 200);
    let log = server.log.clone();
    server.stop();
    std::thread::sleep(Duration::from_millis(200));
    let log = log.lock().unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let last = lines.iter().rposition(|l| l.contains("GET /conformance 200 "));
    let stopped = lines.iter().position(|l| l.contains("stacdb: stopped"));
    assert!(last.is_some() && stopped.is_some() && last < stopped, "{log}");
    assert!(lines.iter().all(|l| !l.contains('\u{1b}')), "no terminal colours in a pipe: {log}");
}
