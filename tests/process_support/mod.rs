//! `stacdb serve` as a child process, and plain HTTP/1.1 over TCP, for the reliability tests
//! (`soak`, `failures`, `serve_hardening`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A `stacdb serve` child on a free port, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    /// Everything the server wrote on stderr after its first line.
    pub log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `stacdb serve CATALOG --port 0 EXTRA...` and waits until it listens. It logs
    /// warnings only.
    pub fn start(catalog: &Path, extra: &[&str]) -> Server {
        Server::start_logging(catalog, extra, Some("warn"))
    }

    /// [`Server::start`] with `STACDB_LOG` set to `filter`, or unset (the default logging: a
    /// line per request).
    pub fn start_logging(catalog: &Path, extra: &[&str], filter: Option<&str>) -> Server {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stacdb"));
        match filter {
            Some(filter) => command.env("STACDB_LOG", filter),
            None => command.env_remove("STACDB_LOG"),
        };
        let mut child = command
            .args(["serve", catalog.to_str().unwrap(), "--port", "0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stacdb serve");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        let port = line
            .split("http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Server { child, port, log }
    }

    /// Sends SIGTERM and waits (up to 15 s) for a successful exit.
    pub fn stop(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                assert!(exit.success(), "stacdb serve exited with {exit} after SIGTERM");
                return;
            }
            assert!(std::time::Instant::now() < deadline, "stacdb serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        request(self.port, "GET", path, &[], b"")
    }
}

/// One HTTP/1.1 request with `Connection: close`; returns the status (0 when the server
/// answered nothing parseable) and the body (de-chunked).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" || method == "PATCH" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    raw(port, &bytes, false)
}

/// Sends raw bytes and reads the answer until the server closes the connection. With
/// `half_close`, the sending side is shut down after the bytes (the server then closes at once
/// when they are not a whole request, without waiting for its client timeout).
pub fn raw(port: u16, bytes: &[u8], half_close: bool) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The server may answer (and close) before reading everything, for example a 413.
    let _ = stream.write_all(bytes);
    if half_close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    parse(&response)
}

/// The status and body of a response.
pub fn parse(response: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(response).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
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
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest.get(n + 2..).unwrap_or("");
    }
    out
}

/// The sha256 of a file's bytes (hex), or "absent".
pub fn sha256(path: &Path) -> String {
    use sha2::Digest;
    match std::fs::read(path) {
        Ok(bytes) => sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => "absent".into(),
    }
}

/// `path` with a suffix appended (`-wal`, `-shm`).
pub fn sidecar(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}
