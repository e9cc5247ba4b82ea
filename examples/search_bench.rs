//! Times searches on a catalog file, in process: each search of a list runs `--runs` times
//! (round-robin over the list, after one warm-up pass) and its p50 and p95 are printed.
//!
//! usage: search_bench CATALOG SEARCHES.json [--runs N] [--json]
//!
//! SEARCHES.json is an array of `{"name": "...", "search": {STAC API search body},
//! "count_only": false, "page": 1}`; `page` > 1 follows that many `next` tokens first (timing
//! the last page only). `bench/search.sh` writes it and runs this.

use std::time::Instant;

use serde_json::{Value, json};
use stacdb::Catalog;
use stacdb::search::{Request, SearchOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: search_bench CATALOG SEARCHES.json [--runs N] [--json]");
        std::process::exit(2);
    }
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .map_or(Ok(20), |n| n.parse())?;
    let as_json = args.iter().any(|a| a == "--json");
    let catalog = Catalog::open_read_only(&args[1])?;
    let searches: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&args[2])?)?;
    let options = SearchOptions::default();

    // Resolve each search into the request actually timed (following tokens for deep pages).
    let mut cases = Vec::new();
    for s in &searches {
        let name = s["name"].as_str().unwrap_or("?").to_string();
        let count_only = s["count_only"].as_bool().unwrap_or(false);
        let mut request = Request::from_json(&s["search"])?;
        for _ in 1..s["page"].as_u64().unwrap_or(1) {
            let page = catalog.search(&request, &options)?;
            request.token = page.next;
            if request.token.is_none() {
                return Err(format!("{name}: fewer pages than asked").into());
            }
        }
        cases.push((name, count_only, request, s["search"].clone()));
    }
    let run = |count_only: bool, request: &Request| -> Result<(u64, usize), stacdb::Error> {
        if count_only {
            Ok((catalog.count(request, &options)?, 0))
        } else {
            let page = catalog.search(request, &options)?;
            Ok((page.number_matched, page.items.len()))
        }
    };
    let mut results = Vec::new();
    for (_, count_only, request, _) in &cases {
        results.push(run(*count_only, request)?); // warm-up
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..runs {
        for (n, (_, count_only, request, _)) in cases.iter().enumerate() {
            let start = Instant::now();
            run(*count_only, request)?;
            times[n].push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let mut rows = Vec::new();
    for (n, (name, count_only, _, search)) in cases.iter().enumerate() {
        let t = &mut times[n];
        t.sort_by(f64::total_cmp);
        let pct = |p: f64| t[((t.len() - 1) as f64 * p).round() as usize];
        let (matched, returned) = results[n];
        rows.push(json!({
            "name": name, "p50_ms": pct(0.5), "p95_ms": pct(0.95), "runs": t.len(),
            "matched": matched, "returned": returned, "count_only": count_only, "search": search,
        }));
        if !as_json {
            println!(
                "{name:<32} p50 {:>9.3} ms  p95 {:>9.3} ms  matched {matched:>8}  returned {returned:>4}",
                pct(0.5),
                pct(0.95)
            );
        }
    }
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}
