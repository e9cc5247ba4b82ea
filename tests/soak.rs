//! Concurrency soak (issue 7): for a bounded time, 8 writer processes insert, upsert and delete
//! on one catalog file, 4 reader processes search, count and get, and a `stacdb serve` process
//! is queried, all at once. Afterwards the file must hold exactly what a serial replay of the
//! committed operations gives, pass `stacdb check`, and no process may have reported a lock.
//!
//! How the replay is defined. Every writer owns a disjoint id range (`soak-wN-…`) and works on
//! whole batches of it (insert a new batch, upsert a stored or deleted batch with new content,
//! delete a stored batch), so its own operations commute with everyone else's and replay in
//! its own order. Besides, writers upsert 10 shared ids (`soak-shared-K`), each time with
//! content naming the operation, plus one witness item of their own range; the witness's row in
//! the change log gives the operation's place in commit order, and the 10 shared rows must sit
//! just before it (a run is one transaction and holds the write lock throughout). The final
//! content of each shared id is the last committed operation's. Every change-log row is
//! accounted for: each writer's rows, in log order, are exactly its operations' rows in its
//! order. Readers check that a batch is never seen half-present.
//!
//! CI runs `soak_short` (`STACDB_SOAK_SECONDS`, default 30). The long soak:
//! `STACDB_SOAK_SECONDS=600 cargo test --release --test soak -- --ignored` (or `scripts/soak.sh`).
//! `STACDB_SOAK_SEED` replays a seed.

mod common;
mod process_support;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use stacdb::Catalog;

const WRITERS: usize = 8;
const READERS: usize = 4;
const SHARED: usize = 10;
const LOCK_TIMEOUT: &str = "300";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// What a process said, when it failed or mentioned a lock.
fn trouble(label: &str, out: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lower = stderr.to_lowercase();
    let locked =
        lower.contains("locked") || lower.contains("busy") || lower.contains("another process");
    (!out.status.success() || locked).then(|| format!("{label}: {} stderr: {stderr}", out.status))
}

/// One committed operation of a writer.
#[derive(Debug, Clone)]
enum Op {
    /// Upsert or insert of whole documents (id -> content); `rows` are the change-log ops
    /// expected for them, in input order.
    Write { docs: Vec<(String, Value)>, rows: Vec<&'static str> },
    /// Delete of these ids.
    Delete { ids: Vec<String> },
    /// Upsert of the shared ids with this content, and of a witness item.
    Shared { tag: String, witness: (String, Value) },
}

/// A batch of a writer's range.
struct Batch {
    ids: Vec<String>,
    present: bool,
}

/// An item of the naip collection with a new id and a version mark.
fn document(template: &Value, id: &str, tag: &str) -> Value {
    let mut item = template.clone();
    item["id"] = json!(id);
    item["properties"]["soak:tag"] = json!(tag);
    item
}

fn write_docs(path: &Path, docs: &[(String, Value)]) {
    let lines: Vec<String> = docs.iter().map(|(_, v)| v.to_string()).collect();
    common::write_ndjson(path, &lines);
}

struct Shared<'a> {
    cat: &'a str,
    dir: &'a Path,
    templates: &'a [Value],
    deadline: Instant,
    troubles: &'a Mutex<Vec<String>>,
    /// Batches (ids) committed or about to be, for readers to probe.
    probes: &'a Mutex<Vec<Vec<String>>>,
    done: &'a AtomicBool,
    commands: &'a AtomicU64,
}

fn run(shared: &Shared, label: &str, args: &[&str]) -> bool {
    let out = common::stacdb(args);
    shared.commands.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = trouble(label, &out) {
        shared.troubles.lock().unwrap().push(t);
        return false;
    }
    true
}

/// A writer's loop; returns its committed operations in order.
fn writer(shared: &Shared, w: usize, seed: u64) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed ^ (w as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut batches: Vec<Batch> = Vec::new();
    let mut committed = Vec::new();
    let file = shared.dir.join(format!("w{w}.ndjson"));
    let mut n = 0;
    while Instant::now() < shared.deadline {
        n += 1;
        let tag = format!("w{w}-op{n}");
        let template = &shared.templates[rng.random_range(0..shared.templates.len())];
        let lt = ["--lock-timeout", LOCK_TIMEOUT];
        let roll = rng.random_range(0..100);
        let stored: Vec<usize> = (0..batches.len()).filter(|&b| batches[b].present).collect();
        if roll < 35 || batches.is_empty() {
            // Insert a new batch.
            let size = rng.random_range(1..=20);
            let ids: Vec<String> =
                (0..size).map(|i| format!("soak-w{w}-b{}-{i}", batches.len())).collect();
            let docs: Vec<(String, Value)> =
                ids.iter().map(|id| (id.clone(), document(template, id, &tag))).collect();
            write_docs(&file, &docs);
            shared.probes.lock().unwrap().push(ids.clone());
            if run(
                shared,
                &tag,
                &[&["ingest", shared.cat, p(&file), "--mode", "insert"], &lt[..]].concat(),
            ) {
                committed.push(Op::Write { rows: vec!["insert"; docs.len()], docs });
                batches.push(Batch { ids, present: true });
            }
        } else if roll < 60 {
            // Upsert a batch: new content for a stored one, or the deleted one back.
            let b = rng.random_range(0..batches.len());
            let docs: Vec<(String, Value)> = batches[b]
                .ids
                .iter()
                .map(|id| (id.clone(), document(template, id, &tag)))
                .collect();
            write_docs(&file, &docs);
            let row = if batches[b].present { "update" } else { "insert" };
            if run(
                shared,
                &tag,
                &[&["ingest", shared.cat, p(&file), "--mode", "upsert"], &lt[..]].concat(),
            ) {
                committed.push(Op::Write { rows: vec![row; docs.len()], docs });
                batches[b].present = true;
            }
        } else if roll < 80 && !stored.is_empty() {
            // Delete a stored batch.
            let b = stored[rng.random_range(0..stored.len())];
            let mut args = vec!["delete", shared.cat, "naip"];
            args.extend(batches[b].ids.iter().map(String::as_str));
            args.extend(lt);
            if run(shared, &tag, &args) {
                committed.push(Op::Delete { ids: batches[b].ids.clone() });
                batches[b].present = false;
            }
        } else {
            // The shared ids, and a witness of this operation.
            let witness_id = format!("soak-w{w}-x{n}");
            let mut docs: Vec<(String, Value)> = (0..SHARED)
                .map(|k| {
                    let id = format!("soak-shared-{k}");
                    let doc = document(template, &id, &tag);
                    (id, doc)
                })
                .collect();
            let witness = (witness_id.clone(), document(template, &witness_id, &tag));
            docs.push(witness.clone());
            write_docs(&file, &docs);
            if run(
                shared,
                &tag,
                &[&["ingest", shared.cat, p(&file), "--mode", "upsert"], &lt[..]].concat(),
            ) {
                committed.push(Op::Shared { tag, witness });
            }
        }
    }
    committed
}

/// A reader's loop: searches, counts and gets; a batch is never seen half-present.
fn reader(shared: &Shared, r: usize, seed: u64, anchors: &[String]) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed ^ (0xABCD + r as u64));
    let mut loops = 0;
    while !shared.done.load(Ordering::SeqCst) {
        loops += 1;
        let probe = {
            let probes = shared.probes.lock().unwrap();
            (!probes.is_empty()).then(|| probes[rng.random_range(0..probes.len())].clone())
        };
        let label = format!("reader {r} loop {loops}");
        match (loops % 3, probe) {
            (0, Some(ids)) => {
                let out = common::stacdb(["count", shared.cat, "--ids", &ids.join(",")]);
                shared.commands.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = trouble(&label, &out) {
                    shared.troubles.lock().unwrap().push(t);
                    continue;
                }
                let n: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
                // Stored whole or not at all (a batch that was deleted and upserted back is
                // whole either way).
                if n != 0 && n != ids.len() {
                    shared.troubles.lock().unwrap().push(format!(
                        "{label}: batch {} seen with {n} of {} items",
                        ids[0],
                        ids.len()
                    ));
                }
            }
            (1, _) => {
                let anchor = &anchors[rng.random_range(0..anchors.len())];
                let out = common::stacdb(["get", shared.cat, "naip", anchor, "--compact"]);
                shared.commands.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = trouble(&label, &out) {
                    shared.troubles.lock().unwrap().push(t);
                }
            }
            _ => {
                let out = common::stacdb([
                    "search",
                    shared.cat,
                    "--collections",
                    "naip",
                    "--filter",
                    "id LIKE 'soak-shared-%'",
                    "--fields",
                    "id,properties.soak:tag",
                ]);
                shared.commands.fetch_add(1, Ordering::Relaxed);
                if let Some(t) = trouble(&label, &out) {
                    shared.troubles.lock().unwrap().push(t);
                    continue;
                }
                // The shared ids are upserted together: every reader sees them with one tag.
                let tags: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<Value>(l).unwrap()["properties"]["soak:tag"]
                            .to_string()
                    })
                    .collect();
                if tags.len() != 1 {
                    shared
                        .troubles
                        .lock()
                        .unwrap()
                        .push(format!("{label}: shared ids seen with tags {tags:?}"));
                }
            }
        }
    }
    loops
}

fn soak(seconds: u64) {
    let Some(data) = common::data_dir("soak") else { return };
    let seed = env_u64("STACDB_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
    });
    eprintln!("soak: {seconds} s, seed {seed} (replay with STACDB_SOAK_SEED={seed})");
    let naip = common::data_file(&data, "bench/stac-fastapi-geoparquet/naip.ndjson.gz");
    let collections = common::data_file(&data, "bench/stac-fastapi-geoparquet/collections.json");
    let lines = common::gz_lines(&naip, 60);
    let templates: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let anchors: Vec<String> =
        templates[..10].iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect();
    let dir = tempfile::tempdir().unwrap();
    let cat: PathBuf = dir.path().join("soak.stacdb");
    let cat_s = p(&cat).to_owned();

    // Setup: the collections, 10 anchors, and the shared ids (so every later write of them is
    // an update).
    let setup = dir.path().join("setup.ndjson");
    let mut setup_docs: Vec<Value> = templates[..10].to_vec();
    setup_docs
        .extend((0..SHARED).map(|k| document(&templates[0], &format!("soak-shared-{k}"), "setup")));
    common::write_ndjson(&setup, &setup_docs.iter().map(Value::to_string).collect::<Vec<_>>());
    common::stacdb_ok(["ingest", &cat_s, p(&collections), p(&setup)]);
    let setup_changes = Catalog::open_read_only(&cat).unwrap().info().unwrap().last_change;

    let server = process_support::Server::start(&cat, &[]);
    let troubles = Mutex::new(Vec::new());
    let probes = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let commands = AtomicU64::new(0);
    let started = Instant::now();
    let shared = Shared {
        cat: &cat_s,
        dir: dir.path(),
        templates: &templates,
        deadline: started + Duration::from_secs(seconds),
        troubles: &troubles,
        probes: &probes,
        done: &done,
        commands: &commands,
    };
    let (logs, reader_loops, http) = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let shared = &shared;
                scope.spawn(move || writer(shared, w, seed))
            })
            .collect();
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (shared, anchors) = (&shared, &anchors);
                scope.spawn(move || reader(shared, r, seed, anchors))
            })
            .collect();
        let (port, done, troubles) = (server.port, &done, &troubles);
        let http = scope.spawn(move || {
            let mut requests = 0u64;
            while !done.load(Ordering::SeqCst) {
                for path in [
                    "/",
                    "/collections/naip",
                    "/search?collections=naip&limit=5&filter=id%20LIKE%20%27soak-shared-%25%27",
                    "/collections/naip/items?limit=3",
                ] {
                    let (status, body) = process_support::request(port, "GET", path, &[], b"");
                    requests += 1;
                    if status != 200 {
                        troubles.lock().unwrap().push(format!("serve GET {path}: {status} {body}"));
                    } else if path.starts_with("/search") {
                        let page: Value = serde_json::from_str(&body).unwrap();
                        if page["numberMatched"] != SHARED {
                            troubles.lock().unwrap().push(format!(
                                "serve: shared ids matched {}",
                                page["numberMatched"]
                            ));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            requests
        });
        let logs: Vec<Vec<Op>> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        let loops: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        (logs, loops, http.join().unwrap())
    });
    let elapsed = started.elapsed();
    server.stop();
    let troubles = troubles.into_inner().unwrap();
    assert!(troubles.is_empty(), "{} problems:\n{}", troubles.len(), troubles.join("\n"));

    // The serial replay.
    let catalog = Catalog::open_read_only(&cat).unwrap();
    let conn = catalog.connection();
    let mut log: Vec<(i64, String, String)> = Vec::new();
    {
        let mut stmt = conn
            .prepare("SELECT seq, op, item_id FROM changes WHERE seq > ?1 AND kind = 'item' ORDER BY seq")
            .unwrap();
        let rows =
            stmt.query_map([setup_changes], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        for row in rows {
            log.push(row.unwrap());
        }
    }
    let all_changes: i64 =
        conn.query_row("SELECT count(*) FROM changes", [], |r| r.get(0)).unwrap();
    assert_eq!(
        all_changes as usize,
        setup_changes as usize + log.len(),
        "changes that are not item changes"
    );
    let seq_of: HashMap<&str, usize> =
        log.iter().enumerate().map(|(i, (_, _, id))| (id.as_str(), i)).collect();

    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    for template in &templates[..10] {
        expected.insert(template["id"].as_str().unwrap().into(), template.clone());
    }
    let mut shared_ops: Vec<(usize, String, &Op)> = Vec::new();
    let mut expected_rows = 0;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (w, ops) in logs.iter().enumerate() {
        let prefix = format!("soak-w{w}-");
        // This writer's rows in log order must be its operations' rows in its order.
        let mine: Vec<(&str, &str)> = log
            .iter()
            .filter(|(_, _, id)| id.starts_with(&prefix))
            .map(|(_, op, id)| (op.as_str(), id.as_str()))
            .collect();
        let mut wanted: Vec<(&str, &str)> = Vec::new();
        for op in ops {
            match op {
                Op::Write { docs, rows } => {
                    *counts
                        .entry(if rows[0] == "update" { "upsert (update)" } else { "insert" })
                        .or_default() += 1;
                    for ((id, doc), row) in docs.iter().zip(rows) {
                        wanted.push((row, id));
                        expected.insert(id.clone(), doc.clone());
                    }
                }
                Op::Delete { ids } => {
                    *counts.entry("delete").or_default() += 1;
                    for id in ids {
                        wanted.push(("delete", id));
                        assert!(expected.remove(id).is_some(), "replay: delete of an absent {id}");
                    }
                }
                Op::Shared { tag, witness } => {
                    *counts.entry("shared upsert").or_default() += 1;
                    wanted.push(("insert", &witness.0));
                    expected.insert(witness.0.clone(), witness.1.clone());
                    let at = *seq_of
                        .get(witness.0.as_str())
                        .unwrap_or_else(|| panic!("witness {} not logged", witness.0));
                    // The shared rows sit just before the witness: one transaction.
                    for (k, (_, op, id)) in log[at - SHARED..at].iter().enumerate() {
                        assert_eq!(
                            (op.as_str(), id.as_str()),
                            ("update", format!("soak-shared-{k}").as_str()),
                            "{tag}: not one transaction"
                        );
                    }
                    shared_ops.push((at, tag.clone(), op));
                    expected_rows += SHARED;
                }
            }
        }
        assert_eq!(
            mine, wanted,
            "writer {w}: its change-log rows are not its committed operations in order"
        );
        expected_rows += wanted.len();
    }
    assert_eq!(log.len(), expected_rows, "change-log rows that no committed operation explains");
    shared_ops.sort_by_key(|(at, _, _)| *at);
    if let Some((_, _, Op::Shared { tag, witness })) = shared_ops.last() {
        for k in 0..SHARED {
            let id = format!("soak-shared-{k}");
            let mut doc = witness.1.clone();
            doc["id"] = json!(id);
            assert_eq!(doc["properties"]["soak:tag"], json!(tag));
            expected.insert(id, doc);
        }
    } else {
        for k in 0..SHARED {
            let id = format!("soak-shared-{k}");
            expected.insert(id.clone(), document(&templates[0], &id, "setup"));
        }
    }

    let mut stored: BTreeMap<String, Value> = BTreeMap::new();
    let mut stmt = conn.prepare("SELECT id, content FROM items WHERE collection = 'naip'").unwrap();
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).unwrap()
    {
        let (id, content) = row.unwrap();
        stored.insert(id, serde_json::from_str(&content).unwrap());
    }
    let lost: Vec<&String> = expected.keys().filter(|id| !stored.contains_key(*id)).collect();
    let extra: Vec<&String> = stored.keys().filter(|id| !expected.contains_key(*id)).collect();
    let differ: Vec<&String> = expected
        .iter()
        .filter(|(id, v)| stored.get(*id).is_some_and(|s| s != *v))
        .map(|(id, _)| id)
        .collect();
    assert!(
        lost.is_empty() && extra.is_empty() && differ.is_empty(),
        "replay mismatch: lost {lost:?}, extra {extra:?}, different {differ:?}"
    );
    drop(stmt);
    drop(catalog);
    let out = common::stacdb_ok(["check", &cat_s]);
    assert!(out.starts_with("ok:"), "{out}");
    let ops: usize = logs.iter().map(Vec::len).sum();
    eprintln!(
        "soak: {:.0} s, {WRITERS} writers, {READERS} readers, serve: {ops} committed writes ({counts:?}), {} log rows replayed, {} items in the end; {} commands, {reader_loops} reader loops, {http} HTTP requests; 0 failed, 0 lock errors, 0 lost updates; check ok",
        elapsed.as_secs_f64(),
        log.len(),
        stored.len(),
        commands.load(Ordering::Relaxed),
    );
}

#[test]
fn soak_short() {
    soak(env_u64("STACDB_SOAK_SECONDS").unwrap_or(30));
}

/// The long soak: `STACDB_SOAK_SECONDS=600 cargo test --release --test soak -- --ignored`.
#[test]
#[ignore]
fn soak_long() {
    soak(env_u64("STACDB_SOAK_SECONDS").unwrap_or(600));
}
