//! `kill -9` at random moments: a writer that dies leaves the catalog whole.
//!
//! The items are cut into chunks of distinct items, most small and some big enough that their
//! commit also checkpoints the write-ahead log. Each step starts one process that
//! either ingests an absent chunk or deletes a present one, and kills it with SIGKILL after a
//! random delay (seeded; the seed is printed). After every kill, `stacdb check` must pass and
//! every chunk must be wholly present or wholly absent, with exactly one change-log row per
//! item of each committed run: a run is all or nothing. A process that finished before the
//! kill must have committed. Finally a normal run completes the work.
//!
//! `STACDB_CRASH_RUNS` raises the number of killed ingests and deletes (at least 50 of each in
//! `fifty_killed_ingests_and_deletes_in_small_runs`), `STACDB_CRASH_EXPORTS` that of killed
//! exports (default 50) and `STACDB_CRASH_SEED` replays a seed.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use stacdb::Catalog;

/// Items in a small chunk: one ingest or delete run.
const SMALL: usize = 150;
/// Items in a big chunk: its run writes more than the 1000 WAL pages that trigger a checkpoint.
const BIG: usize = 1200;
/// The chunk sizes; the first two are the calibration runs.
const SIZES: [usize; 16] = [
    BIG, SMALL, SMALL, SMALL, SMALL, BIG, SMALL, SMALL, SMALL, BIG, SMALL, SMALL, SMALL, BIG,
    SMALL, SMALL,
];

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(value.trim().parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

fn seed() -> u64 {
    env_number("STACDB_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            as u64
    })
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Starts the binary with its stderr captured.
fn spawn(args: &[&str]) -> Child {
    common::bin()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stacdb")
}

/// How a process ended.
#[derive(Debug)]
enum End {
    /// It finished by itself before the kill, with this status and stderr, after this long.
    Finished(ExitStatus, String, Duration),
    /// SIGKILL ended it.
    Killed,
}

/// Kills the child `delay` after it was started, unless it has finished by then.
fn kill_after(mut child: Child, started: Instant, delay: Duration) -> End {
    let finished = loop {
        if child.try_wait().expect("try_wait").is_some() {
            break Some(started.elapsed());
        }
        if started.elapsed() >= delay {
            // Killing a child that exited just now is harmless: it is a zombie until waited for.
            child.kill().expect("kill");
            break None;
        }
        std::thread::sleep(Duration::from_millis(1).min(delay.saturating_sub(started.elapsed())));
    };
    let status = child.wait().expect("wait");
    let mut stderr = String::new();
    child.stderr.take().expect("piped").read_to_string(&mut stderr).expect("read stderr");
    match finished {
        _ if status.signal() == Some(9) => End::Killed,
        Some(elapsed) => End::Finished(status, stderr, elapsed),
        None => End::Finished(status, stderr, delay),
    }
}

/// Runs `stacdb check` and panics unless it passes.
fn assert_check(cat: &Path, context: &str) {
    let out = common::stacdb(["check", p(cat)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok:"),
        "{context}: `stacdb check` failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many items of each chunk are stored, and the number of change-log rows.
fn observe(cat: &Path, chunk_of: &HashMap<String, usize>, chunks: usize) -> (Vec<usize>, i64) {
    let catalog = Catalog::open_read_only(cat).expect("open read-only after crash");
    let conn = catalog.connection();
    let mut per_chunk = vec![0; chunks];
    let mut stmt = conn.prepare("SELECT collection, id FROM items").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)));
    for row in rows.unwrap() {
        let (collection, id) = row.unwrap();
        assert_eq!(collection, "naip");
        let chunk = chunk_of.get(&id).unwrap_or_else(|| panic!("unknown item {id} stored"));
        per_chunk[*chunk] += 1;
    }
    let changes = conn.query_row("SELECT count(*) FROM changes", [], |r| r.get(0)).unwrap();
    (per_chunk, changes)
}

struct Pool {
    _dir: tempfile::TempDir,
    sizes: Vec<usize>,
    cat: PathBuf,
    collections: PathBuf,
    chunks: Vec<PathBuf>,
    ids: Vec<Vec<String>>,
    lines: Vec<String>,
    chunk_of: HashMap<String, usize>,
}

fn pool(data: &Path, sizes: &[usize]) -> Pool {
    let naip = common::data_file(data, "bench/stac-fastapi-geoparquet/naip.ndjson.gz");
    let collections = common::data_file(data, "bench/stac-fastapi-geoparquet/collections.json");
    let total = sizes.iter().sum();
    let lines = common::gz_lines(&naip, total);
    assert_eq!(lines.len(), total);
    let dir = tempfile::tempdir().unwrap();
    let mut chunks = Vec::new();
    let mut ids = Vec::new();
    let mut chunk_of = HashMap::new();
    let mut start = 0;
    for (k, size) in sizes.iter().enumerate() {
        let part = &lines[start..start + size];
        start += size;
        chunks.push(common::write_ndjson(&dir.path().join(format!("chunk-{k:02}.ndjson")), part));
        let part_ids: Vec<String> = part
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["id"].as_str().unwrap().to_owned()
            })
            .collect();
        for id in &part_ids {
            assert!(chunk_of.insert(id.clone(), k).is_none(), "duplicate id {id} in the data");
        }
        ids.push(part_ids);
    }
    let cat = dir.path().join("crash.stacdb");
    Pool { cat, collections, chunks, ids, lines, chunk_of, _dir: dir, sizes: sizes.to_vec() }
}

#[test]
fn killed_writers_leave_whole_runs() {
    let Some(data) = common::data_dir("crash::killed_writers_leave_whole_runs") else { return };
    let ingest_runs = env_number("STACDB_CRASH_RUNS").unwrap_or(20) as usize;
    kill_loop(&data, &SIZES, ingest_runs, (ingest_runs / 4).max(5));
}

/// The figure: at least 50 killed ingests and 50 killed deletes, in runs of 20 items
/// so that it stays quick; `STACDB_CRASH_RUNS` raises both.
#[test]
fn fifty_killed_ingests_and_deletes_in_small_runs() {
    let Some(data) = common::data_dir("crash::fifty_killed_ingests_and_deletes_in_small_runs")
    else {
        return;
    };
    let runs = env_number("STACDB_CRASH_RUNS").unwrap_or(50).max(50) as usize;
    kill_loop(&data, &[20; 30], runs, runs);
}

/// Kills `ingest_runs` ingests and `delete_runs` deletes of chunks of the given sizes, checking
/// the file after each kill; the first two chunks calibrate the kill delays.
fn kill_loop(data: &Path, sizes: &[usize], ingest_runs: usize, delete_runs: usize) {
    let started = Instant::now();
    let seed = seed();
    eprintln!("crash: seed {seed} (replay with STACDB_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let pool = pool(data, sizes);
    let sizes = &pool.sizes;
    let cat = &pool.cat;
    common::stacdb_ok(["ingest", p(cat), p(&pool.collections)]);
    let delete_args = |k: usize| {
        let mut args = vec!["delete".to_owned(), p(cat).to_owned(), "naip".to_owned()];
        args.extend(pool.ids[k].iter().cloned());
        args
    };
    // Calibrate: how long undisturbed runs of a big and a small chunk take here. The estimate
    // follows the runs that finish before their kill, as the machine's load changes.
    let mut window: HashMap<(&str, usize), Duration> = HashMap::new();
    for k in [0, 1] {
        let t = Instant::now();
        common::stacdb_ok(["ingest", p(cat), p(&pool.chunks[k])]);
        window.insert(("ingest", sizes[k]), t.elapsed());
        let t = Instant::now();
        common::stacdb_ok(delete_args(k));
        window.insert(("delete", sizes[k]), t.elapsed());
    }
    eprintln!("crash: undisturbed runs take {window:?}");
    // 4 collection inserts, then the calibration's inserts and deletes.
    let mut expected_changes = 4 + 2 * (sizes[0] + sizes[1]) as i64;
    let chunks = sizes.len();
    let mut present = vec![false; chunks];

    let (mut ingests, mut deletes) = (0, 0);
    let (mut interrupted, mut committed_then_killed, mut finished) = (0, 0, 0);
    let mut step = 0;
    while ingests < ingest_runs || deletes < delete_runs {
        step += 1;
        let absent: Vec<usize> = (0..chunks).filter(|&k| !present[k]).collect();
        let stored: Vec<usize> = (0..chunks).filter(|&k| present[k]).collect();
        let want_delete =
            deletes < delete_runs && (ingests >= ingest_runs || rng.random_bool(0.25));
        let delete = !stored.is_empty() && (want_delete || absent.is_empty());
        let started = Instant::now();
        let what = if delete { "delete" } else { "ingest" };
        let (k, child) = if delete {
            deletes += 1;
            let k = stored[rng.random_range(0..stored.len())];
            let args = delete_args(k);
            (k, spawn(&args.iter().map(String::as_str).collect::<Vec<_>>()))
        } else {
            ingests += 1;
            let k = absent[rng.random_range(0..absent.len())];
            (k, spawn(&["ingest", p(cat), p(&pool.chunks[k])]))
        };
        // Anywhere from before the catalog is opened to a little after an undisturbed run ends.
        let size = sizes[k];
        let typical = window[&(what, size)];
        let delay = typical.mul_f64(rng.random_range(0.0..1.2));
        let end = kill_after(child, started, delay);
        let context = format!(
            "seed {seed}, step {step}: {what} of chunk {k} ({size} items) killed after {delay:?}"
        );
        if let End::Finished(status, stderr, took) = &end {
            assert!(status.success(), "{context}: it failed by itself ({status}):\n{stderr}");
            window.insert((what, size), (typical + *took) / 2);
        }

        assert_check(cat, &context);
        let (per_chunk, changes) = observe(cat, &pool.chunk_of, sizes.len());
        for (j, &n) in per_chunk.iter().enumerate() {
            assert!(n == 0 || n == sizes[j], "{context}: chunk {j} is partly stored ({n} items)");
            let now = n == sizes[j];
            assert!(j == k || now == present[j], "{context}: chunk {j}, not touched, changed");
        }
        let flipped = (per_chunk[k] == size) != present[k];
        match (&end, flipped) {
            (End::Finished(..), true) => finished += 1,
            (End::Finished(..), false) => {
                panic!("{context}: the process exited 0 but its run is not in the catalog")
            }
            (End::Killed, true) => committed_then_killed += 1,
            (End::Killed, false) => interrupted += 1,
        }
        if flipped {
            present[k] = !present[k];
            expected_changes += size as i64;
        }
        assert_eq!(changes, expected_changes, "{context}: change log rows (whole runs only)");
    }
    eprintln!(
        "crash: {ingests} ingests and {deletes} deletes killed: {interrupted} rolled back, \
         {committed_then_killed} killed after their commit, {finished} finished first"
    );
    assert!(
        interrupted > 0,
        "seed {seed}: no kill landed inside a transaction; nothing was tested"
    );

    // A normal run completes the work.
    let mut args = vec!["ingest", p(cat), "--mode", "ignore"];
    args.extend(pool.chunks.iter().map(|c| p(c)));
    common::stacdb_ok(args);
    assert_check(cat, "after the final run");
    let (per_chunk, _) = observe(cat, &pool.chunk_of, sizes.len());
    assert_eq!(&per_chunk, sizes, "after the final run");
    let catalog = Catalog::open_read_only(cat).unwrap();
    assert_eq!(catalog.info().unwrap().item_count as usize, pool.lines.len());
    for line in &pool.lines {
        let value: Value = serde_json::from_str(line).unwrap();
        let stored = catalog.item("naip", value["id"].as_str().unwrap()).unwrap();
        assert_eq!(stored, value);
    }
    eprintln!("crash: done in {:.1} s", started.elapsed().as_secs_f64());
}

/// A process killed while it creates the catalog leaves either no catalog, an empty one, or
/// the whole first run; the next run always works.
#[test]
fn killed_while_creating_the_catalog() {
    let Some(data) = common::data_dir("crash::killed_while_creating_the_catalog") else { return };
    const ROUNDS: usize = 12;
    const ITEMS: usize = 50;
    let seed = seed();
    eprintln!("crash: creation seed {seed} (replay with STACDB_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let naip = common::data_file(&data, "bench/stac-fastapi-geoparquet/naip.ndjson.gz");
    let collections = common::data_file(&data, "bench/stac-fastapi-geoparquet/collections.json");
    let dir = tempfile::tempdir().unwrap();
    let items =
        common::write_ndjson(&dir.path().join("items.ndjson"), &common::gz_lines(&naip, ITEMS));
    let run = |cat: &Path, extra: &[&str]| {
        let mut args = vec!["ingest", p(cat), p(&collections), p(&items)];
        args.extend(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };

    let calibration = dir.path().join("calibration.stacdb");
    let t = Instant::now();
    common::stacdb_ok(run(&calibration, &[]));
    let window = t.elapsed();

    for round in 0..ROUNDS {
        let cat = dir.path().join(format!("new-{round}.stacdb"));
        let delay = window.mul_f64(rng.random_range(0.0..1.2));
        let args = run(&cat, &[]);
        let started = Instant::now();
        let child = spawn(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let end = kill_after(child, started, delay);
        let context = format!("seed {seed}, round {round}: killed after {delay:?}");
        if let End::Finished(status, stderr, _) = &end {
            assert!(status.success(), "{context}: it failed by itself ({status}):\n{stderr}");
        }
        if cat.exists() {
            assert_check(&cat, &context);
            let info = Catalog::open_read_only(&cat).unwrap().info().unwrap();
            let whole = match (info.collections.len(), info.item_count) {
                (0, 0) => false,
                (4, n) if n as usize == ITEMS => true,
                other => panic!("{context}: partial first run {other:?}"),
            };
            assert!(whole || matches!(end, End::Killed), "{context}: finished but empty");
        } else {
            assert!(matches!(end, End::Killed), "{context}: finished but made no file");
        }
        common::stacdb_ok(run(&cat, &["--mode", "ignore"]));
        assert_check(&cat, &context);
        let info = Catalog::open_read_only(&cat).unwrap().info().unwrap();
        assert_eq!((info.collections.len(), info.item_count as usize), (4, ITEMS), "{context}");
        assert_eq!(info.catalog.id, format!("new-{round}"), "{context}: catalog id");
    }
}

/// Every file under `dir` (relative path -> bytes), or `None` when `dir` does not exist.
fn tree(dir: &Path) -> Option<std::collections::BTreeMap<String, Vec<u8>>> {
    dir.exists().then(|| common::file_tree(dir))
}

/// `stacdb export` killed at random moments: a full export (new, or `--overwrite`) leaves the
/// output directory either as it was or complete, never partly written; an `--incremental`
/// one (which replaces files one at a time, by design) leaves only whole files. Each time a
/// re-run completes the export, equal byte for byte to a fresh export of the same state.
/// `STACDB_CRASH_EXPORTS` sets the number of kills (default 50, the figure; each step
/// makes three exports of 300 items).
#[test]
fn killed_exports_leave_the_old_or_the_new_export() {
    let Some(data) = common::data_dir("crash::killed_exports_leave_the_old_or_the_new_export")
    else {
        return;
    };
    let started = Instant::now();
    let seed = seed();
    eprintln!("crash: export seed {seed} (replay with STACDB_CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed ^ 0xE4);
    let kills = env_number("STACDB_CRASH_EXPORTS").unwrap_or(50) as usize;
    let naip = common::data_file(&data, "bench/stac-fastapi-geoparquet/naip.ndjson.gz");
    let collections = common::data_file(&data, "bench/stac-fastapi-geoparquet/collections.json");
    let dir = tempfile::tempdir().unwrap();
    let lines = common::gz_lines(&naip, 300);
    let items = common::write_ndjson(&dir.path().join("items.ndjson"), &lines);
    let cat = dir.path().join("export.stacdb");
    let out = dir.path().join("out");
    common::stacdb_ok(["ingest", p(&cat), p(&collections), p(&items)]);
    let t = Instant::now();
    common::stacdb_ok(["export", p(&cat), p(&out)]);
    let mut window = t.elapsed();
    let mut previous = tree(&out).unwrap();

    let (mut interrupted, mut finished) = (0, 0);
    for step in 0..kills {
        // A new state: a new title, and a few items changed.
        common::stacdb_ok(["init", p(&cat), "--title", &format!("version {step}")]);
        let changed: Vec<String> = (0..5)
            .map(|_| {
                let mut item: Value =
                    serde_json::from_str(&lines[rng.random_range(0..lines.len())]).unwrap();
                item["properties"]["crash:step"] = Value::from(step);
                item.to_string()
            })
            .collect();
        let changes = common::write_ndjson(&dir.path().join("changes.ndjson"), &changed);
        common::stacdb_ok(["ingest", p(&cat), p(&changes), "--mode", "upsert"]);
        // The export this state gives, made undisturbed elsewhere.
        let reference_dir = dir.path().join(format!("reference-{step}"));
        common::stacdb_ok(["export", p(&cat), p(&reference_dir)]);
        let reference = tree(&reference_dir).unwrap();
        std::fs::remove_dir_all(&reference_dir).unwrap();

        let incremental = step % 3 == 2;
        let mode = if incremental { "--incremental" } else { "--overwrite" };
        let delay = window.mul_f64(rng.random_range(0.0..1.2));
        let begun = Instant::now();
        let child = spawn(&["export", p(&cat), p(&out), mode]);
        let end = kill_after(child, begun, delay);
        let context = format!("seed {seed}, step {step}: export {mode} killed after {delay:?}");
        match &end {
            End::Finished(status, stderr, took) => {
                assert!(status.success(), "{context}: it failed by itself ({status}):\n{stderr}");
                window = (window + *took) / 2;
                finished += 1;
            }
            End::Killed => interrupted += 1,
        }
        let now = tree(&out);
        if incremental {
            // Files are replaced one at a time: each is whole (an old or a new version).
            let now = now.unwrap_or_else(|| panic!("{context}: the export disappeared"));
            for (path, bytes) in &now {
                if path.ends_with(".json") {
                    serde_json::from_slice::<Value>(bytes)
                        .unwrap_or_else(|e| panic!("{context}: {path} is not whole JSON: {e}"));
                }
            }
        } else {
            let now = now.unwrap_or_else(|| panic!("{context}: the output directory is gone"));
            assert!(
                now == previous || now == reference,
                "{context}: the output is neither the old nor the new export ({} files; old {}, new {})",
                now.len(),
                previous.len(),
                reference.len()
            );
        }
        // A re-run completes it.
        common::stacdb_ok(["export", p(&cat), p(&out), mode]);
        let now = tree(&out).unwrap();
        assert!(now == reference, "{context}: the re-run is not equal to a fresh export");
        previous = now;
        // Side directories of killed runs (named by their process id) stay behind.
        // The re-run removed the side directories of killed runs (named by process id).
        let leftovers: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".out."))
            .collect();
        assert!(leftovers.is_empty(), "{context}: left beside the output: {leftovers:?}");
    }
    eprintln!(
        "crash: {kills} exports killed ({interrupted} interrupted, {finished} finished first): the output was always the old or the new export, and every re-run completed it and removed what the killed runs left; {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(interrupted > 0, "seed {seed}: no kill landed during an export");
}
