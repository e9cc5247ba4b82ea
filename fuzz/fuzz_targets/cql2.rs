//! CQL2 filters (text, and JSON when the input is a JSON object) through the path a search
//! request takes: `Request::from_json`, the plan, and the generated SQL prepared and run
//! against a small catalog. Property: a page (and an equal count) or a clean `SearchError`;
//! never a panic, never an SQLite or internal error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    stacdb_fuzz::search(&stacdb_fuzz::filter_body(text));
    // The same filter leaving the language to be guessed, and with a sort that reads the
    // documents, so that the filter's SQL meets every statement shape.
    let mut body = stacdb_fuzz::filter_body(text);
    body.as_object_mut().unwrap().remove("filter-lang");
    body["sortby"] = json!([{"field": "properties.eo:cloud_cover", "direction": "asc"}]);
    body["limit"] = json!(2);
    stacdb_fuzz::search(&body);
});
