//! Failures of the file system under stacdb (issue 7, "Failures"): each gives a clear error
//! and no corruption.
//!
//! * A full disk: a 4 MiB tmpfs (`mount -t tmpfs -o size=4m`, which needs root; without it the
//!   test falls back to `prlimit --fsize`, so writes past a size fail with EFBIG, SIGXFSZ
//!   ignored).
//! * A read-only file system: the same tmpfs remounted with `-o remount,ro` (skipped loudly
//!   when mounting is not permitted: a root process can write through chmod, so there is no
//!   honest substitute).
//! * The catalog file deleted under a running `stacdb serve`: it keeps serving the data from
//!   the connections it has open, and never answers 5xx.

mod common;
mod process_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use stacdb::Catalog;

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "4m"), or `None` when this process may not mount.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", p(dir.path())])
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}"), p(self.path())])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount {options}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", p(self.dir.path())]).status();
    }
}

fn skip(test: &str, why: &str) {
    use std::io::Write;
    if std::env::var("STACDB_REQUIRE_MOUNT").is_ok_and(|v| v == "1") {
        panic!("{test}: {why} and STACDB_REQUIRE_MOUNT=1");
    }
    let _ = writeln!(std::io::stderr().lock(), "\n*** SKIPPED {test}: {why} ***\n");
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// (items, sorted contents) of a catalog.
fn content(cat: &Path) -> (i64, Vec<String>) {
    let catalog = Catalog::open_read_only(cat).unwrap();
    let mut stmt =
        catalog.connection().prepare("SELECT content FROM items ORDER BY collection, id").unwrap();
    let rows: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    (rows.len() as i64, rows)
}

fn assert_check(cat: &Path, context: &str) {
    let out = common::stacdb(["check", p(cat)]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).starts_with("ok:"),
        "{context}: check failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
}

struct Data {
    _dir: tempfile::TempDir,
    collections: PathBuf,
    small: PathBuf,
    big: PathBuf,
}

fn data(test: &str) -> Option<Data> {
    let data = common::data_dir(test)?;
    let naip = common::data_file(&data, "bench/stac-fastapi-geoparquet/naip.ndjson.gz");
    let collections = common::data_file(&data, "bench/stac-fastapi-geoparquet/collections.json");
    let dir = tempfile::tempdir().unwrap();
    let lines = common::gz_lines(&naip, 3100);
    let small = common::write_ndjson(&dir.path().join("small.ndjson"), &lines[..100]);
    let big = common::write_ndjson(&dir.path().join("big.ndjson"), &lines[100..]);
    Some(Data { _dir: dir, collections, small, big })
}

#[test]
fn a_full_disk_fails_clearly_and_changes_nothing() {
    const TEST: &str = "failures::a_full_disk_fails_clearly_and_changes_nothing";
    let Some(data) = data(TEST) else { return };
    let Some(fs) = Tmpfs::mount("4m") else {
        return full_file_size_limit(&data);
    };
    let cat = fs.path().join("full.stacdb");
    common::stacdb_ok(["ingest", p(&cat), p(&data.collections), p(&data.small)]);
    let before = content(&cat);

    // 3,000 items (about 12 MB stored) into 4 MiB.
    let out = common::stacdb(["ingest", p(&cat), p(&data.big)]);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("disk is full"), "not a clear error: {said}");
    assert_check(&cat, "after the full disk");
    assert_eq!(content(&cat), before, "a failed ingest changed the catalog");
    let leftovers: Vec<_> = std::fs::read_dir(fs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "full.stacdb")
        .collect();

    // A new catalog on the full disk: the run fails and leaves no file behind.
    let new = fs.path().join("new.stacdb");
    let out = common::stacdb(["ingest", p(&new), p(&data.collections), p(&data.big)]);
    let said_new = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said_new}");
    assert!(said_new.contains("disk is full"), "not a clear error: {said_new}");
    assert!(!new.exists(), "a failed first ingest left a catalog");
    let creating: Vec<_> = std::fs::read_dir(fs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("new.stacdb"))
        .collect();
    assert!(creating.is_empty(), "left behind: {creating:?}");

    // With room again, the same command completes the work.
    fs.remount("size=64m");
    common::stacdb_ok(["ingest", p(&cat), p(&data.big)]);
    assert_check(&cat, "after the re-run");
    assert_eq!(content(&cat).0, 3100);
    eprintln!(
        "failures: full disk (4 MiB tmpfs): ingest exit 1, {:?}; catalog unchanged, check ok, sidecars left: {leftovers:?}; new catalog: exit 1, no file left; re-run with room: 3100 items, check ok",
        said.trim()
    );
}

/// Without mount rights: RLIMIT_FSIZE, so that writes past the limit fail with EFBIG.
fn full_file_size_limit(data: &Data) {
    eprintln!("failures: cannot mount a tmpfs here; using RLIMIT_FSIZE (prlimit --fsize)");
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("full.stacdb");
    common::stacdb_ok(["ingest", p(&cat), p(&data.collections), p(&data.small)]);
    let before = content(&cat);
    let size = std::fs::metadata(&cat).unwrap().len() + 2 * 1024 * 1024;
    let out = Command::new("sh")
        .args([
            "-c",
            "trap '' XFSZ; exec prlimit --fsize=\"$0\" \"$1\" ingest \"$2\" \"$3\"",
            &size.to_string(),
            env!("CARGO_BIN_EXE_stacdb"),
            p(&cat),
            p(&data.big),
        ])
        .output()
        .unwrap();
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert_check(&cat, "after EFBIG");
    assert_eq!(content(&cat), before);
    common::stacdb_ok(["ingest", p(&cat), p(&data.big)]);
    assert_check(&cat, "after the re-run");
    eprintln!("failures: file size limit: exit 1, {:?}; unchanged; re-run ok", said.trim());
}

#[test]
fn a_read_only_file_system_refuses_writes_clearly_and_can_be_read() {
    const TEST: &str = "failures::a_read_only_file_system_refuses_writes_clearly_and_can_be_read";
    let Some(data) = data(TEST) else { return };
    let Some(fs) = Tmpfs::mount("16m") else {
        return skip(TEST, "this process may not mount a tmpfs (needs root)");
    };
    let cat = fs.path().join("ro.stacdb");
    common::stacdb_ok(["ingest", p(&cat), p(&data.collections), p(&data.small)]);
    let before = content(&cat);
    let bytes = process_support::sha256(&cat);
    fs.remount("ro");

    let mut said = Vec::new();
    for args in [
        vec!["ingest", p(&cat), p(&data.big)],
        vec!["delete", p(&cat), "naip", "x", "--missing-ok"],
        vec!["init", p(&cat), "--title", "t"],
    ] {
        let out = common::stacdb(&args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(text.contains("read-only"), "{args:?}: not a clear error: {text}");
        said.push(text.trim().to_string());
    }
    // Reading works: search, count, export and serve open the file read-only, and info, get
    // and check fall back to it.
    assert_eq!(common::stacdb_ok(["count", p(&cat)]).trim(), "100");
    assert!(common::stacdb_ok(["info", p(&cat)]).contains("items:    100 in "));
    assert!(common::stacdb_ok(["get", p(&cat), "naip"]).contains("\"naip\""));
    common::stacdb_ok(["check", p(&cat)]);
    let found = common::stacdb_ok(["search", p(&cat), "--ids", "x"]);
    assert!(found.is_empty());
    let out_dir = tempfile::tempdir().unwrap();
    common::stacdb_ok(["export", p(&cat), p(&out_dir.path().join("export"))]);
    let server = process_support::Server::start(&cat, &[]);
    let (status, body) = server.get("/search?limit=1");
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["numberMatched"], 100);
    server.stop();

    fs.remount("rw");
    assert_eq!(process_support::sha256(&cat), bytes, "the file changed on a read-only mount");
    assert_check(&cat, "after the read-only mount");
    assert_eq!(content(&cat), before);
    eprintln!(
        "failures: read-only file system (tmpfs remounted ro): writes exit 1 with {:?}; count, search, info, get, check, export and serve read it; bytes unchanged",
        said[0]
    );
}

#[test]
fn deleting_the_file_under_a_server_keeps_it_serving() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("gone.stacdb");
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    common::stacdb_ok(["ingest", p(&cat), p(&demo)]);
    let server = process_support::Server::start(&cat, &[]);
    let port = server.port;
    let burst = |label: &str| -> usize {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|t| {
                    scope.spawn(move || {
                        let mut answered = 0;
                        for i in 0..25 {
                            let path = match (t + i) % 4 {
                                0 => "/search?limit=20".to_string(),
                                1 => "/collections/demo-orthophotos/items/alps-001".into(),
                                2 => "/collections".into(),
                                _ => "/search?q=alps&limit=1".into(),
                            };
                            let (status, body) =
                                process_support::request(port, "GET", &path, &[], b"");
                            assert_eq!(status, 200, "{label}: GET {path}: {body}");
                            if path == "/search?limit=20" {
                                let page: Value = serde_json::from_str(&body).unwrap();
                                assert_eq!(page["numberMatched"], 13, "{label}");
                            }
                            answered += 1;
                        }
                        answered
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        })
    };
    let before = burst("before");
    // The file goes, then its -wal and -shm too.
    std::fs::remove_file(&cat).unwrap();
    let after_file = burst("after removing the file");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(process_support::sidecar(&cat, suffix));
    }
    let after_all = burst("after removing the -wal and -shm");
    let log = server.log.lock().unwrap().clone();
    server.stop();
    assert!(!log.contains("ERROR"), "the server logged errors: {log}");
    eprintln!(
        "failures: catalog deleted under a running server: {before} requests before, {after_file} after removing the file, {after_all} after removing -wal and -shm too: all 200 with the same answers"
    );
}
