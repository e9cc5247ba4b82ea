//! Inputs found by fuzzing (`scripts/fuzz.sh`, docs/RELIABILITY.md "Fuzzing") that crashed
//! stacdb, minimized, each with what stacdb now does with it. Every crash the fuzzers find is
//! added here before it is fixed.

mod common;

use serde_json::{Value, json};
use stacdb::Location;
use stacdb::document::{self, Doc};
use stacdb::search::{Request, SearchError};

/// fuzz target `document`: a position with one number inside a MultiPolygon (a real 0.8.1
/// label item, mutated) made the geojson crate index past the end of the position and panic,
/// aborting the whole ingest. Now the geometry is rejected, naming the field.
const SHORT_POSITION_ITEM: &str = r#"{"type":"Feature","stac_version":"1.0.0","id":"a","collection":"c","geometry":{"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1]]]]},"properties":{"datetime":"2020-01-01T00:00:00Z"},"links":[],"assets":{}}"#;

#[test]
fn short_position_is_rejected_not_a_panic() {
    let location = Location { source: "fuzz.ndjson".into(), line: Some(1), pointer: None };
    assert!(document::fast_item(SHORT_POSITION_ITEM.as_bytes(), &location).is_none());
    let value: Value = serde_json::from_str(SHORT_POSITION_ITEM).unwrap();
    let docs = document::documents(value, &location);
    let [Err(e)] = &docs[..] else { panic!("expected one rejection, got {docs:?}") };
    let message = e.to_string();
    assert!(
        message.starts_with("fuzz.ndjson:1: 'a': field `geometry`: not a GeoJSON geometry:")
            && message.contains("at least 2 numbers"),
        "{message}"
    );
    // Every geometry type, and the GeometryCollection around them.
    for geometry in [
        json!({"type": "MultiPoint", "coordinates": [[0, 0], [1]]}),
        json!({"type": "LineString", "coordinates": [[0, 0], []]}),
        json!({"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2]]]}),
        json!({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1], [0, 0]]]}),
        json!({"type": "GeometryCollection", "geometries": [{"type": "LineString", "coordinates": [[0, 0], [1]]}]}),
    ] {
        let mut item: Value = serde_json::from_str(SHORT_POSITION_ITEM).unwrap();
        item["geometry"] = geometry.clone();
        let result = document::normalize(item, Location::file("x.json"));
        assert!(
            matches!(&result, Err(e) if e.to_string().contains("position")),
            "{geometry}: {result:?}"
        );
    }
    // A valid position with an elevation is still fine.
    let mut item: Value = serde_json::from_str(SHORT_POSITION_ITEM).unwrap();
    item["geometry"] = json!({"type": "LineString", "coordinates": [[0, 0, 5], [1, 1, 5]]});
    assert!(matches!(document::normalize(item, Location::file("x.json")), Ok(Doc::Item(_))));
}

#[test]
fn short_position_through_the_cli_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("items.ndjson");
    let good = SHORT_POSITION_ITEM
        .replace(r#""id":"a""#, r#""id":"b""#)
        .replace("[1]]]]", "[1,1],[0,0]]]]");
    std::fs::write(&input, format!("{good}\n{SHORT_POSITION_ITEM}\n")).unwrap();
    let catalog = dir.path().join("c.stacdb");
    let out = common::stacdb([
        "ingest".as_ref(),
        catalog.as_os_str(),
        input.as_os_str(),
        "--create-collections".as_ref(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("items.ndjson:2: 'a': field `geometry`"), "{stderr}");
    assert!(!catalog.exists(), "a failed first load leaves no file");
    let out = common::stacdb([
        "ingest".as_ref(),
        catalog.as_os_str(),
        input.as_os_str(),
        "--create-collections".as_ref(),
        "--skip-invalid".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn short_position_in_intersects_is_a_parameter_error() {
    let body =
        json!({"intersects": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1], [0, 0]]]}});
    match Request::from_json(&body) {
        Err(SearchError::Parameter { name: "intersects", message }) => {
            assert!(message.contains("position"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}
