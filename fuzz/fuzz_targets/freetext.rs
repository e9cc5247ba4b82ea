//! The free-text `q` parameter: its translation into an FTS5 query, run against a small
//! catalog's FTS index. Properties: the translation ends in a query or a clean error that says
//! where; a translated query never makes FTS5 fail (that would be an SQLite error, which the
//! search harness refuses); never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::json;
use stacdb::search::freetext;

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else { return };
    match freetext::to_fts5(q) {
        Ok(fts) => assert!(!fts.is_empty() || q.trim().is_empty(), "empty FTS5 query for {q:?}"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    stacdb_fuzz::search(&json!({"q": q}));
    // `q` also comes as a list of strings (each one a term list, ORed).
    let parts: Vec<&str> = q.split('\u{1f}').collect();
    stacdb_fuzz::search(&json!({"q": parts, "collections": ["c", "d"]}));
});
