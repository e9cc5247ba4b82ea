//! A CQL2 spatial filter with a literal geometry is narrowed by the R-tree first
//! (`cql2sql::spatial_bounds`). That narrowing must never drop a match: each search here is
//! compared with the same filter evaluated on every row, without the R-tree.

mod common;
mod ingest_support;

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use serde_json::json;
use stacdb::search::{Request, SearchOptions, cql2sql};
use stacdb::{Catalog, Mode};

fn ids(catalog: &Catalog, filter: &str) -> BTreeSet<String> {
    let request = Request::from_json(&json!({ "filter": filter })).unwrap();
    let mut out = BTreeSet::new();
    catalog
        .search_each(&request, &SearchOptions::default(), None, |item| {
            let v: serde_json::Value = serde_json::from_str(item).unwrap();
            out.insert(v["id"].as_str().unwrap().to_string());
            Ok(true)
        })
        .unwrap_or_else(|e| panic!("{filter}: {e}"));
    out
}

fn every_row(catalog: &Catalog, filter: &str) -> BTreeSet<String> {
    let sql = cql2sql::translate(&cql2sql::parse_text(filter).unwrap()).unwrap();
    let conn = catalog.connection();
    let mut stmt = conn.prepare(&format!("SELECT i.id FROM items i WHERE {}", sql.sql)).unwrap();
    stmt.query_map(rusqlite::params_from_iter(sql.params), |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn the_rtree_never_drops_a_spatial_filter_match() {
    let Some(data) = common::data_dir("the_rtree_never_drops_a_spatial_filter_match") else {
        return;
    };
    let mut t = ingest_support::temp_catalog();
    let files = [
        common::data_file(&data, "bench/pgstac/modis-13Q1-061.collections.ndjson.gz"),
        common::data_file(&data, "bench/pgstac/modis-13Q1-061-1400.items.ndjson.gz"),
        common::data_file(&data, "bench/rustac/1000-sentinel-2-items.ndjson.gz"),
    ];
    let options = ingest_support::options(Mode::Insert, true, None);
    ingest_support::ingest(&mut t.catalog, &files, &options).unwrap();

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut nonempty = 0;
    let predicates = ["S_INTERSECTS", "S_WITHIN", "S_CONTAINS", "S_OVERLAPS", "S_TOUCHES"];
    for case in 0..150 {
        let x0: f64 = rng.random_range(-200.0..190.0);
        let y0: f64 = rng.random_range(-70.0..60.0);
        let (w, h): (f64, f64) = (rng.random_range(0.1..40.0), rng.random_range(0.1..30.0));
        let op = predicates[case % predicates.len()];
        let filter = if case % 3 == 0 {
            // A BBOX, sometimes across the antimeridian (minx > maxx).
            let x1 = if case % 2 == 0 { x0 + w } else { (x0 - 180.0 + w).max(-180.0) };
            format!("{op}(geometry, BBOX({x0}, {y0}, {x1}, {}))", y0 + h)
        } else {
            let polygon = format!(
                "{op}(geometry, POLYGON(({x0} {y0}, {} {y0}, {} {}, {x0} {y0})))",
                x0 + w,
                x0 + w / 2.0,
                y0 + h
            );
            // Alone, inside a top-level AND (narrowed), or inside an OR (not narrowed).
            match case % 4 {
                0 | 1 => polygon,
                2 => format!("id <> 'x' AND {polygon}"),
                _ => format!("id = 'x' OR {polygon}"),
            }
        };
        let want = every_row(&t.catalog, &filter);
        let got = ids(&t.catalog, &filter);
        assert_eq!(got, want, "{filter}");
        nonempty += usize::from(!want.is_empty());
    }
    assert!(nonempty >= 20, "only {nonempty} of 150 spatial filters matched anything");
}
