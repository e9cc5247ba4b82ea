//! `stacdb serve` as a process: it keeps answering while `stacdb ingest` writes to the same
//! file from another process (new items appear on the next request), and SIGTERM stops it
//! gracefully.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `stacdb serve` child on a free port, killed if the test ends early.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(catalog: &Path) -> Server {
    let mut child = common::bin()
        .args(["serve", catalog.to_str().unwrap(), "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stacdb serve");
    // The first line on stderr says where it listens: "... at http://127.0.0.1:PORT/ ...".
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let port = line
        .split("http://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    // Keep draining stderr (request logs) so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = stderr.read_to_string(&mut sink);
    });
    Server { child, port }
}

/// A plain HTTP/1.1 GET; returns the status and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

fn matched(port: u16, query: &str) -> u64 {
    let (status, body) = get(port, &format!("/search?{query}"));
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    page["numberMatched"].as_u64().unwrap()
}

#[test]
fn serve_answers_while_another_process_ingests_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("live.stacdb");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    common::stacdb_ok(["ingest", catalog.to_str().unwrap(), demo.to_str().unwrap()]);

    let server = start(&catalog);
    assert_eq!(matched(server.port, "limit=1"), 13);
    assert_eq!(matched(server.port, "ids=alps-001-copy"), 0);

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
        let n = matched(server.port, "limit=1");
        assert!(n == 13 || n == 14, "an impossible count {n}");
    }
    writer.join().unwrap();
    // The next request sees the new item.
    assert_eq!(matched(server.port, "limit=1"), 14);
    assert_eq!(matched(server.port, "ids=alps-001-copy"), 1);
    let (status, _) = get(server.port, "/collections/demo-orthophotos/items/alps-001-copy");
    assert_eq!(status, 200);

    // SIGTERM: the server finishes and exits with success.
    let mut server = server;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            assert!(exit.success(), "stacdb serve exited with {exit} after SIGTERM");
            break;
        }
        assert!(Instant::now() < deadline, "stacdb serve did not stop within 10 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
