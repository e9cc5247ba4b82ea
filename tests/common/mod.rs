//! Shared test harness: where the shared data is, and how to run the binary.
//!
//! Tests that read real STAC data find it through `STACDB_TEST_DATA` (default
//! `../shared/data`, beside the project). When the folder is missing such a test prints a loud
//! SKIPPED line and passes, unless `STACDB_REQUIRE_DATA=1` (set by `.ci/run`), which turns the
//! missing folder into a failure.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The shared data folder, or `None` (after saying so loudly) when it is missing.
pub fn data_dir(test: &str) -> Option<PathBuf> {
    let dir = match std::env::var_os("STACDB_TEST_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    };
    if dir.join("MANIFEST.md").is_file() {
        return Some(dir);
    }
    if std::env::var("STACDB_REQUIRE_DATA").is_ok_and(|v| v == "1") {
        panic!("{test}: shared data folder {} is missing and STACDB_REQUIRE_DATA=1", dir.display());
    }
    // Written to the stderr handle itself, not with eprintln!, which the test harness
    // captures and hides for passing tests: a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** SKIPPED {test}: shared data folder {} not found (set STACDB_TEST_DATA) ***\n",
        dir.display()
    );
    None
}

/// A file under the shared data folder, which must exist when the folder does.
pub fn data_file(data: &Path, relative: &str) -> PathBuf {
    let path = data.join(relative);
    assert!(path.exists(), "missing shared data file {}", path.display());
    path
}

/// The `stacdb` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stacdb"))
}

/// Runs `stacdb` with arguments and returns its output.
pub fn stacdb<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    bin().args(args).output().expect("run stacdb")
}

/// Runs `stacdb`, asserts it exited 0, and returns its standard output.
pub fn stacdb_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = stacdb(args);
    assert!(
        out.status.success(),
        "stacdb failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Every JSON document in a JSON or NDJSON file (gzip allowed), as values.
pub fn read_documents(path: &Path) -> Vec<serde_json::Value> {
    use std::io::Read;
    let mut bytes = std::fs::read(path).expect("read file");
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..]).read_to_end(&mut text).expect("gunzip");
        bytes = text;
    }
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(value) => vec![value],
        Err(_) => bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.trim_ascii().is_empty())
            .map(|line| serde_json::from_slice(line).expect("ndjson line"))
            .collect(),
    }
}

/// The first `limit` non-blank lines of a gzipped NDJSON file, exactly as stored.
pub fn gz_lines(path: &Path, limit: usize) -> Vec<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_string(&mut text)
        .expect("gunzip");
    text.lines().filter(|l| !l.trim().is_empty()).take(limit).map(str::to_owned).collect()
}

/// Writes lines as an NDJSON file and returns its path.
pub fn write_ndjson(path: &Path, lines: &[String]) -> PathBuf {
    std::fs::write(path, lines.join("\n") + "\n").expect("write ndjson");
    path.to_path_buf()
}

/// Percent-encodes every byte but the unreserved ones (for a query value or a path segment).
pub fn pct(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every file under `dir` (relative path -> bytes).
pub fn file_tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                files.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}
