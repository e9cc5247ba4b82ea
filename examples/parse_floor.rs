//! The ingest benchmark's floor: read a gzip NDJSON file and parse every line, with no SQLite.
//!
//! ```text
//! cargo run --release --example parse_floor -- MODE FILE.ndjson.gz
//! ```
//!
//! MODE is one of:
//!
//! * `gunzip`: decompress and split lines only (the cost of reading the input).
//! * `parse`: one thread decompresses, splits lines and parses each with
//!   `serde_json::from_slice::<serde_json::Value>`. This is the floor the benchmark's
//!   "within 3x" target is measured against: the least work that looks at every byte.
//! * `parse-par`: a reader thread decompresses and splits lines into batches of 2,048 (as
//!   `stacdb ingest` does); the batches are parsed into `Value`s on all cores with rayon.
//! * `normalize-par`: as `parse-par`, then each value also goes through
//!   `stacdb::document::documents` (recognise, check, geometry blob, compact JSON, property
//!   summary). That is all of the CPU work of an ingest except SQLite, so
//!   `ingest - normalize-par` is roughly what the database side costs.
//!
//! Prints one JSON line: `{"mode", "items", "bytes" (uncompressed), "elapsed" (seconds)}`.
//! `parse_floor --sqlite-version` prints the bundled SQLite's version.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use flate2::bufread::MultiGzDecoder;
use rayon::prelude::*;
use stacdb::Location;

const BATCH: usize = 2048;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--sqlite-version") {
        println!("{}", rusqlite::version());
        return;
    }
    let [mode, path] = args.as_slice() else {
        eprintln!("usage: parse_floor gunzip|parse|parse-par|normalize-par FILE.ndjson.gz");
        std::process::exit(2);
    };
    let started = Instant::now();
    let (items, bytes) = match mode.as_str() {
        "gunzip" => gunzip(path),
        "parse" => parse(path),
        "parse-par" => parallel(path, false),
        "normalize-par" => parallel(path, true),
        other => {
            eprintln!("unknown mode '{other}'");
            std::process::exit(2);
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    println!(r#"{{"mode":"{mode}","items":{items},"bytes":{bytes},"elapsed":{elapsed}}}"#);
}

fn open(path: &str) -> impl BufRead {
    let file = File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    BufReader::with_capacity(1 << 16, MultiGzDecoder::new(BufReader::with_capacity(1 << 16, file)))
}

/// Calls `f` with each non-blank line.
fn for_each_line(path: &str, mut f: impl FnMut(Vec<u8>)) -> u64 {
    let mut reader = open(path);
    let mut bytes = 0u64;
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line).expect("read");
        if n == 0 {
            return bytes;
        }
        bytes += n as u64;
        if !line.trim_ascii().is_empty() {
            f(line);
        }
    }
}

fn gunzip(path: &str) -> (u64, u64) {
    let mut items = 0u64;
    let bytes = for_each_line(path, |line| {
        std::hint::black_box(&line);
        items += 1;
    });
    (items, bytes)
}

fn parse(path: &str) -> (u64, u64) {
    let mut items = 0u64;
    let bytes = for_each_line(path, |line| {
        let value: serde_json::Value = serde_json::from_slice(&line).expect("valid JSON");
        std::hint::black_box(&value);
        items += 1;
    });
    (items, bytes)
}

fn parallel(path: &str, normalize: bool) -> (u64, u64) {
    let (tx, rx) = sync_channel::<Vec<Vec<u8>>>(2);
    let path = path.to_string();
    let reader = std::thread::spawn(move || {
        let mut batch = Vec::with_capacity(BATCH);
        let bytes = for_each_line(&path, |line| {
            batch.push(line);
            if batch.len() == BATCH {
                tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH))).expect("send");
            }
        });
        if !batch.is_empty() {
            tx.send(batch).expect("send");
        }
        bytes
    });
    let location = Location::file("bench");
    let mut items = 0u64;
    for batch in rx {
        items += batch
            .into_par_iter()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_slice(&line).expect("valid JSON");
                if normalize {
                    let docs = stacdb::document::documents(value, &location);
                    assert!(docs.iter().all(Result::is_ok), "invalid document");
                    docs.len() as u64
                } else {
                    std::hint::black_box(&value);
                    1
                }
            })
            .sum::<u64>();
    }
    (items, reader.join().expect("reader"))
}
