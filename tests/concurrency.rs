//! Many processes on one catalog file at once.
//!
//! Writer processes (the real binary) ingest their own chunks of real NAIP items in several
//! runs each, so their transactions interleave; one of them mixes inserts, upserts and deletes
//! on ids only it owns, and all of them upsert one shared chunk, so the final state is known
//! exactly whatever the order. A reader process loops over `info`, `get` and `check` the whole
//! time and must never fail. No process may ever report a lock: waiting for the write lock is
//! the library's job, not the user's.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::Value;
use stacdb::Catalog;

/// Generous, so that a real deadlock fails the test instead of hanging it for 10 minutes,
/// and far above any wait a healthy run needs.
const LOCK_TIMEOUT: &str = "120";

const WRITERS: usize = 4;
const RUNS_PER_WRITER: usize = 5;
const ITEMS_PER_RUN: usize = 300;
const ANCHORS: usize = 10;
const SHARED: usize = 200;
const MIXER_ROUNDS: usize = 4;

/// Runs the binary and panics unless it exited 0 with no sign of a lock error on stderr.
fn run_clean(label: &str, args: &[&str]) -> Output {
    let out = common::stacdb(args);
    assert_clean(label, &out);
    out
}

fn assert_clean(label: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lower = stderr.to_lowercase();
    assert!(
        out.status.success()
            && !lower.contains("locked")
            && !lower.contains("busy")
            && !lower.contains("another process"),
        "{label}: `stacdb` failed or reported a lock ({}):\nstdout: {}\nstderr: {stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
    );
}

fn id_of(line: &str) -> String {
    let value: Value = serde_json::from_str(line).expect("json line");
    value["id"].as_str().expect("item id").to_owned()
}

/// (id -> stored document) of every item in a collection, read through the library.
fn stored_items(path: &Path, collection: &str) -> BTreeMap<String, Value> {
    let catalog = Catalog::open_read_only(path).expect("open read-only");
    let mut stmt = catalog
        .connection()
        .prepare("SELECT id, content FROM items WHERE collection = ?1")
        .expect("prepare");
    stmt.query_map([collection], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query")
        .map(|row| {
            let (id, content) = row.expect("row");
            (id, serde_json::from_str(&content).expect("stored json"))
        })
        .collect()
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn writers_and_a_reader_share_one_file() {
    let Some(data) = common::data_dir("concurrency::writers_and_a_reader_share_one_file") else {
        return;
    };
    let started = Instant::now();
    let naip = common::data_file(&data, "bench/stac-fastapi-geoparquet/naip.ndjson.gz");
    let collections = common::data_file(&data, "bench/stac-fastapi-geoparquet/collections.json");
    let mixer_items = MIXER_ROUNDS * ITEMS_PER_RUN;
    let needed = ANCHORS + WRITERS * RUNS_PER_WRITER * ITEMS_PER_RUN + SHARED + mixer_items;
    let lines = common::gz_lines(&naip, needed);
    assert_eq!(lines.len(), needed, "naip.ndjson.gz has fewer items than the test needs");

    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("shared.stacdb");
    let cat_s = p(&cat).to_owned();

    // Split the items into disjoint parts.
    let (anchors, rest) = lines.split_at(ANCHORS);
    let (writer_lines, rest) = rest.split_at(WRITERS * RUNS_PER_WRITER * ITEMS_PER_RUN);
    let (shared, mixer_lines) = rest.split_at(SHARED);
    let anchor_file = common::write_ndjson(&dir.path().join("anchors.ndjson"), anchors);
    let shared_file = common::write_ndjson(&dir.path().join("shared.ndjson"), shared);
    let writer_files: Vec<Vec<PathBuf>> = (0..WRITERS)
        .map(|w| {
            (0..RUNS_PER_WRITER)
                .map(|r| {
                    let start = (w * RUNS_PER_WRITER + r) * ITEMS_PER_RUN;
                    let chunk = &writer_lines[start..start + ITEMS_PER_RUN];
                    common::write_ndjson(&dir.path().join(format!("w{w}-r{r}.ndjson")), chunk)
                })
                .collect()
        })
        .collect();

    // The mixer: per round, insert a chunk, upsert a changed version of it, delete a third.
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    let mut mixer_rounds = Vec::new();
    for r in 0..MIXER_ROUNDS {
        let chunk = &mixer_lines[r * ITEMS_PER_RUN..(r + 1) * ITEMS_PER_RUN];
        let insert = common::write_ndjson(&dir.path().join(format!("m{r}.ndjson")), chunk);
        let mut changed = Vec::new();
        let mut deleted = Vec::new();
        for (i, line) in chunk.iter().enumerate() {
            let mut item: Value = serde_json::from_str(line).unwrap();
            item["properties"]["stacdb:round"] = Value::from(r as u64);
            item["properties"]["title"] = Value::from(format!("upserted in round {r}"));
            let id = item["id"].as_str().unwrap().to_owned();
            changed.push(serde_json::to_string(&item).unwrap());
            if i % 3 == 0 {
                deleted.push(id);
            } else {
                expected.insert(id, item);
            }
        }
        let upsert = common::write_ndjson(&dir.path().join(format!("m{r}-v2.ndjson")), &changed);
        mixer_rounds.push((insert, upsert, deleted));
    }
    for line in anchors.iter().chain(writer_lines).chain(shared) {
        let value: Value = serde_json::from_str(line).unwrap();
        expected.insert(value["id"].as_str().unwrap().to_owned(), value);
    }
    let anchor_ids: Vec<String> = anchors.iter().map(|l| id_of(l)).collect();

    // The catalog exists before the race starts, with its collections and a few items the
    // reader can always ask for.
    run_clean("setup", &["ingest", &cat_s, p(&collections), p(&anchor_file)]);
    let (base_items, base_changes) = (ANCHORS, ANCHORS + 4);

    let done = AtomicBool::new(false);
    let barrier = Barrier::new(WRITERS + 2);
    let reader_stats = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            barrier.wait();
            let (mut loops, mut checks, mut counts) = (0u64, 0u64, BTreeSet::new());
            let anchor_value: Value = serde_json::from_str(&anchors[0]).unwrap();
            while !done.load(Ordering::SeqCst) || loops < 2 {
                loops += 1;
                let out = run_clean("reader info", &["info", &cat_s, "--json"]);
                let info: Value = serde_json::from_slice(&out.stdout).expect("info json");
                assert_eq!(info["schema_version"], stacdb::SCHEMA_VERSION);
                let count = info["item_count"].as_u64().expect("item_count");
                assert!(
                    (ANCHORS as u64..=expected.len() as u64 + 400).contains(&count),
                    "reader saw an impossible item count {count}"
                );
                counts.insert(count);
                let out = run_clean(
                    "reader get item",
                    &["get", &cat_s, "naip", &anchor_ids[(loops % ANCHORS as u64) as usize]],
                );
                let got: Value = serde_json::from_slice(&out.stdout).expect("get json");
                if loops % ANCHORS as u64 == 0 {
                    assert_eq!(got, anchor_value, "anchor item changed");
                }
                let out = run_clean("reader get collection", &["get", &cat_s, "naip"]);
                let got: Value = serde_json::from_slice(&out.stdout).expect("get json");
                assert_eq!(got["id"], "naip");
                if loops % 2 == 1 {
                    let out = run_clean("reader check", &["check", &cat_s, "--json"]);
                    let report: Value = serde_json::from_slice(&out.stdout).expect("check json");
                    assert_eq!(report["problem_count"], 0, "check failed mid-race: {report}");
                    checks += 1;
                }
            }
            (loops, checks, counts.len())
        });

        let mut writers = Vec::new();
        for (w, files) in writer_files.iter().enumerate() {
            let (cat_s, shared_file, barrier) = (&cat_s, &shared_file, &barrier);
            writers.push(scope.spawn(move || {
                barrier.wait();
                for (r, file) in files.iter().enumerate() {
                    let label = format!("writer {w} run {r}");
                    let out = run_clean(
                        &label,
                        &["ingest", cat_s, p(file), "--json", "--lock-timeout", LOCK_TIMEOUT],
                    );
                    let report: Value = serde_json::from_slice(&out.stdout).expect("report");
                    assert_eq!(report["items"]["inserted"], ITEMS_PER_RUN, "{label}");
                    if r == 1 || r == 3 {
                        // Every writer upserts the same chunk: whoever comes first inserts it.
                        let label = format!("writer {w} shared upsert after run {r}");
                        let out = run_clean(
                            &label,
                            &[
                                "ingest",
                                cat_s,
                                p(shared_file),
                                "--mode",
                                "upsert",
                                "--json",
                                "--lock-timeout",
                                LOCK_TIMEOUT,
                            ],
                        );
                        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
                        let i = &report["items"];
                        assert_eq!(
                            i["inserted"].as_u64().unwrap() + i["updated"].as_u64().unwrap(),
                            SHARED as u64,
                            "{label}: {report}"
                        );
                    }
                }
            }));
        }

        let mixer = scope.spawn(|| {
            barrier.wait();
            for (r, (insert, upsert, deleted)) in mixer_rounds.iter().enumerate() {
                let lt = ["--lock-timeout", LOCK_TIMEOUT];
                run_clean(
                    &format!("mixer insert {r}"),
                    &[&["ingest", &cat_s, p(insert)], &lt[..]].concat(),
                );
                let out = run_clean(
                    &format!("mixer upsert {r}"),
                    &[&["ingest", &cat_s, p(upsert), "--mode", "upsert", "--json"], &lt[..]]
                        .concat(),
                );
                let report: Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(report["items"]["updated"], ITEMS_PER_RUN, "mixer upsert {r}");
                let mut args = vec!["delete", &cat_s, "naip"];
                args.extend(deleted.iter().map(String::as_str));
                args.extend(lt);
                let out = run_clean(&format!("mixer delete {r}"), &args);
                let said = String::from_utf8_lossy(&out.stdout);
                assert!(said.contains(&format!("deleted {} item(s)", deleted.len())), "{said}");
                if r == 1 {
                    // Replace the collection documents with themselves while items stream in.
                    run_clean(
                        "mixer collection upsert",
                        &[&["ingest", &cat_s, p(&collections), "--mode", "upsert"], &lt[..]]
                            .concat(),
                    );
                }
            }
        });

        for (w, writer) in writers.into_iter().enumerate() {
            if let Err(e) = writer.join() {
                done.store(true, Ordering::SeqCst);
                std::panic::resume_unwind(Box::new(format!("writer {w} panicked: {e:?}")));
            }
        }
        let mixed = mixer.join();
        done.store(true, Ordering::SeqCst);
        let stats = reader.join();
        if let Err(e) = mixed {
            std::panic::resume_unwind(e);
        }
        stats.unwrap_or_else(|e| std::panic::resume_unwind(e))
    });

    // Every item is there, exactly once, with the content its last writer gave it.
    let stored = stored_items(&cat, "naip");
    assert_eq!(stored.len(), expected.len(), "item count");
    let missing: Vec<_> = expected.keys().filter(|id| !stored.contains_key(*id)).take(5).collect();
    let extra: Vec<_> = stored.keys().filter(|id| !expected.contains_key(*id)).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, unexpected {extra:?}");
    for (id, value) in &expected {
        assert_eq!(&stored[id], value, "content of item {id}");
    }

    let info: Value =
        serde_json::from_str(&common::stacdb_ok(["info", &cat_s, "--json"])).expect("info");
    assert_eq!(info["item_count"], expected.len());
    // The change log holds every committed change once: the setup, each writer's inserts,
    // the shared chunk (once inserted, then updated by every later upsert), and the mixer's
    // inserts, updates, deletes and collection updates.
    let writes = WRITERS * RUNS_PER_WRITER * ITEMS_PER_RUN;
    let shared_changes = 2 * WRITERS * SHARED;
    let mixer_changes = mixer_items * 2 + mixer_items / 3 + 4;
    let changes = base_changes + writes + shared_changes + mixer_changes;
    assert_eq!(info["last_change"], changes, "change log length");
    let catalog = Catalog::open_read_only(&cat).unwrap();
    let logged: i64 =
        catalog.connection().query_row("SELECT count(*) FROM changes", [], |r| r.get(0)).unwrap();
    assert_eq!(logged as usize, changes, "change log rows");
    drop(catalog);
    let out = common::stacdb_ok(["check", &cat_s]);
    assert!(out.starts_with("ok:"), "{out}");
    assert!(stored.len() > base_items);

    let (loops, checks, distinct_counts) = reader_stats;
    eprintln!(
        "concurrency: {} writers + mixer + reader: {loops} reader loops ({checks} checks, {distinct_counts} distinct counts seen) in {:.1} s",
        WRITERS,
        started.elapsed().as_secs_f64()
    );
    assert!(checks >= 1, "the reader never ran a check while the writers ran");
}

/// Several processes create the same new file at the same moment: exactly one creates the
/// schema, the others wait for it, and none reports a lock.
#[test]
fn processes_race_to_create_a_new_file() {
    let Some(data) = common::data_dir("concurrency::processes_race_to_create_a_new_file") else {
        return;
    };
    const ROUNDS: usize = 25;
    const PROCESSES: usize = 5;
    const ITEMS: usize = 40;
    let started = Instant::now();
    let naip = common::data_file(&data, "bench/stac-fastapi-geoparquet/naip.ndjson.gz");
    let lines = common::gz_lines(&naip, PROCESSES * ITEMS);
    let dir = tempfile::tempdir().unwrap();
    let chunks: Vec<PathBuf> = (0..PROCESSES)
        .map(|k| {
            common::write_ndjson(
                &dir.path().join(format!("c{k}.ndjson")),
                &lines[k * ITEMS..(k + 1) * ITEMS],
            )
        })
        .collect();
    let ids: BTreeSet<String> = lines.iter().map(|l| id_of(l)).collect();
    for round in 0..ROUNDS {
        let cat = dir.path().join(format!("race-{round}.stacdb"));
        let cat_s = p(&cat);
        let mut children = Vec::new();
        for chunk in &chunks {
            let child = common::bin()
                .args(["ingest", cat_s, p(chunk), "--create-collections"])
                .args(["--lock-timeout", LOCK_TIMEOUT])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn");
            children.push(("ingest", child));
        }
        let child = common::bin()
            .args(["init", cat_s, "--title", "raced", "--lock-timeout", LOCK_TIMEOUT])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        children.push(("init", child));
        for (what, child) in children {
            let out = child.wait_with_output().expect("wait");
            assert_clean(&format!("round {round}: {what}"), &out);
        }
        let stored = stored_items(&cat, "naip");
        let stored: BTreeSet<String> = stored.into_keys().collect();
        assert_eq!(stored, ids, "round {round}: items");
        let catalog = Catalog::open_read_only(&cat).unwrap();
        assert_eq!(catalog.metadata().unwrap().title.as_deref(), Some("raced"));
        let version: i64 =
            catalog.connection().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, stacdb::SCHEMA_VERSION);
        assert!(catalog.check().unwrap().is_ok(), "round {round}: check");
    }
    eprintln!(
        "concurrency: {ROUNDS} creation races of {} processes in {:.1} s",
        PROCESSES + 1,
        started.elapsed().as_secs_f64()
    );
}

/// The same race inside one process, where threads can start at the same instant: every
/// `Catalog::create` of a new file succeeds, however many run at once.
#[test]
fn threads_race_to_create_a_new_file() {
    const ROUNDS: usize = 60;
    const THREADS: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    for round in 0..ROUNDS {
        let path = dir.path().join(format!("threads-{round}.stacdb"));
        let barrier = Barrier::new(THREADS);
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (path, barrier) = (&path, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    let catalog = Catalog::create(path)
                        .unwrap_or_else(|e| panic!("round {round} thread {t}: {e}"));
                    assert_eq!(catalog.metadata().unwrap().id, format!("threads-{round}"));
                });
            }
        });
    }
}
