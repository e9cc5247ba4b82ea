//! The document parser and normaliser, as the ingest path calls them on one unit of input
//! (a whole JSON file, or one NDJSON line): the fast path for an NDJSON item line, then the
//! general path (`serde_json` and `document::documents`). Properties: no panic; every
//! rejection formats; and the two paths agree on everything the catalog stores when the fast
//! path accepts a line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stacdb::Location;
use stacdb::document::{self, Doc, ItemDoc};

fuzz_target!(|data: &[u8]| {
    unit(data);
    // As NDJSON: each line on its own, as the reader hands them over.
    if data.contains(&b'\n') {
        for line in data.split(|b| *b == b'\n') {
            unit(line);
        }
    }
});

fn unit(data: &[u8]) {
    let line = Location { source: "fuzz.ndjson".into(), line: Some(1), pointer: None };
    let fast = document::fast_item(data, &line);
    let value: Value = match serde_json::from_slice(data) {
        Ok(value) => value,
        Err(e) => {
            assert!(fast.is_none(), "the fast path accepted text that is not JSON");
            let _ = (e.to_string(), e.line(), e.column());
            return;
        }
    };
    let docs = document::documents(value, &line);
    for doc in &docs {
        match doc {
            Ok(Doc::Item(item)) => {
                let _ = (document::format_micros(item.start), document::format_micros(item.end));
                assert!(item.start <= item.end, "start after end: {item:?}");
                serde_json::from_str::<Value>(&item.content).expect("stored content is JSON");
                if let Some(blob) = &item.geometry {
                    stacdb::geometry::from_blob(blob).expect("stored geometry reads back");
                }
            }
            Ok(_) => {}
            Err(e) => {
                let message = e.to_string();
                assert!(message.starts_with("fuzz.ndjson:1"), "no location: {message}");
            }
        }
    }
    if let Some(fast) = fast {
        // The fast path only takes a single valid item, and must agree with the general one.
        assert_eq!(docs.len(), 1, "fast path took a line the general path splits");
        match &docs[0] {
            Ok(Doc::Item(slow)) => assert_same(&fast, slow),
            other => panic!("fast path accepted what the general path gives as {other:?}"),
        }
    }
}

fn assert_same(fast: &ItemDoc, slow: &ItemDoc) {
    assert_eq!(fast.id, slow.id);
    assert_eq!(fast.collection, slow.collection);
    assert_eq!((fast.start, fast.end), (slow.start, slow.end));
    assert_eq!(fast.bbox, slow.bbox);
    assert_eq!(fast.index_box, slow.index_box);
    assert_eq!(fast.geometry, slow.geometry);
    assert_eq!(fast.text, slow.text);
    assert_eq!(fast.properties, slow.properties);
    assert_eq!(fast.indexed, slow.indexed);
}
