//! Round trip: every valid Item and Collection of real STAC sets is ingested and read back
//! equal to the input, counts match, `check()` is ok, and each collection's current extent is
//! the union of its items.

mod common;
mod ingest_support;

use std::path::PathBuf;

use ingest_support::*;
use serde_json::Value;
use stacdb::Mode;

const COLLECTIONLESS: &str = "collectionless-examples";

/// The stac-spec style example folders: items of several files share one id and two
/// collection files share one id, so each document gets a catalog of its own, with the
/// collection document its items name when the set has it.
fn spec_examples(test: &str, set: &str) {
    let Some(data) = common::data_dir(test) else { return };
    let root = common::data_file(&data, set);
    let docs = documents_under(&[root]);
    let collections: Vec<&(PathBuf, Value)> =
        docs.iter().filter(|(_, d)| is_collection(d)).collect();
    let (mut items, mut catalogs) = (0, 0);
    for (file, doc) in &docs {
        let context = format!("{}: '{}'", file.display(), id_of(doc));
        if is_catalog(doc) {
            catalogs += 1;
            continue;
        }
        let mut t = temp_catalog();
        if is_collection(doc) {
            let report =
                ingest(&mut t.catalog, &[file], &options(Mode::Insert, false, None)).unwrap();
            assert_eq!((report.collections.inserted, report.items.inserted), (1, 0), "{context}");
            let stored = t.catalog.collection_document(id_of(doc)).unwrap();
            assert_same_json(&stored, doc, &context);
            assert_current_extent(&t.catalog, id_of(doc), &[]);
            assert_eq!(stored_collections(&t.catalog), [id_of(doc)]);
        } else {
            assert!(is_item(doc), "{context}: neither item, collection nor catalog");
            items += 1;
            let named = doc["collection"].as_str();
            let own: Vec<&&(PathBuf, Value)> =
                collections.iter().filter(|(_, c)| Some(id_of(c)) == named).collect();
            assert!(own.len() <= 1, "{context}: several collection files with its id");
            let mut inputs: Vec<&PathBuf> = own.iter().map(|(f, _)| f).collect();
            inputs.push(file);
            let opts =
                options(Mode::Insert, own.is_empty(), named.is_none().then_some(COLLECTIONLESS));
            let report = ingest(&mut t.catalog, &inputs, &opts)
                .unwrap_or_else(|e| panic!("{context}: ingest failed: {e}"));
            assert_eq!(report.items.inserted, 1, "{context}");
            assert_eq!(report.collections.inserted as usize, own.len(), "{context}");
            assert_eq!(report.collections_created, u64::from(own.is_empty()), "{context}");
            let collection = named.unwrap_or(COLLECTIONLESS);
            let stored = t.catalog.item(collection, id_of(doc)).unwrap();
            assert_same_json(&stored, doc, &context);
            if let Some((_, c)) = own.first() {
                assert_same_json(&t.catalog.collection_document(collection).unwrap(), c, &context);
            }
            assert_current_extent(&t.catalog, collection, &[doc]);
            assert_eq!(t.catalog.info().unwrap().item_count, 1, "{context}");
        }
        assert_check_ok(&t.catalog, &context);
    }
    // MANIFEST.md: each example folder holds 1 catalog, 4 collections and 5 items.
    assert_eq!((catalogs, collections.len(), items), (1, 4, 5), "{set}");
}

#[test]
fn stac_spec_v1_0_0_examples() {
    spec_examples("stac_spec_v1_0_0_examples", "fixtures/stac-spec/v1.0.0/examples");
}

#[test]
fn stac_spec_v1_1_0_beta_1_examples() {
    spec_examples("stac_spec_v1_1_0_beta_1_examples", "fixtures/stac-spec/v1.1.0-beta.1/examples");
}

#[test]
fn rustac_spec_examples_v1_1_0() {
    spec_examples("rustac_spec_examples_v1_1_0", "fixtures/rustac/spec-examples/v1.1.0");
}

#[test]
fn pgstac_testdata_items_and_collections() {
    let Some(data) = common::data_dir("pgstac_testdata_items_and_collections") else { return };
    let dir = "fixtures/pgstac/src/pgstac/tests/testdata";
    // collections.ndjson: two pre-1.0 collections without `type`; only the first has items.
    let t = assert_round_trip(
        &[
            common::data_file(&data, &format!("{dir}/collections.ndjson")),
            common::data_file(&data, &format!("{dir}/items.ndjson")),
        ],
        &options(Mode::Insert, false, None),
        100,
        2,
    );
    assert_eq!(
        info_counts(&t.catalog).into_iter().collect::<Vec<_>>(),
        [("pgstac-test-collection".to_string(), 100), ("pgstac-test-collection2".to_string(), 0)]
    );
    // collections.json holds the first collection as a single pretty-printed document.
    assert_round_trip(
        &[common::data_file(&data, &format!("{dir}/collections.json"))],
        &options(Mode::Insert, false, None),
        0,
        1,
    );
}

#[test]
fn stac_fastapi_pgstac_joplin() {
    let Some(data) = common::data_dir("stac_fastapi_pgstac_joplin") else { return };
    let dir = "fixtures/stac-fastapi-pgstac/testdata/joplin";
    let t = assert_round_trip(
        &[
            common::data_file(&data, &format!("{dir}/collection.json")),
            common::data_file(&data, &format!("{dir}/index.geojson")),
        ],
        &options(Mode::Insert, false, None),
        30,
        1,
    );
    assert_eq!(info_counts(&t.catalog)["joplin"], 30);
}

#[test]
fn stac_fastapi_elasticsearch_sample_data() {
    let Some(data) = common::data_dir("stac_fastapi_elasticsearch_sample_data") else { return };
    let dir = "fixtures/stac-fastapi-elasticsearch-opensearch/sample_data";
    // The collection file's id is 'sentinel-s2-l2a-cogs-test' while the items name
    // 'sentinel-s2-l2a-cogs', so that collection is built from the items.
    let t = assert_round_trip(
        &[
            common::data_file(&data, &format!("{dir}/collection.json")),
            common::data_file(&data, &format!("{dir}/sentinel-s2-l2a-cogs_0_100.json")),
        ],
        &options(Mode::Insert, true, None),
        100,
        1,
    );
    assert_eq!(
        info_counts(&t.catalog).into_iter().collect::<Vec<_>>(),
        [("sentinel-s2-l2a-cogs".to_string(), 100), ("sentinel-s2-l2a-cogs-test".to_string(), 0)]
    );
    let created = t.catalog.collection_document("sentinel-s2-l2a-cogs").unwrap();
    assert_eq!(created["type"], "Collection");
    assert_eq!(created["id"], "sentinel-s2-l2a-cogs");
}

#[test]
fn stac_geoparquet_planetary_computer_items() {
    let Some(data) = common::data_dir("stac_geoparquet_planetary_computer_items") else { return };
    // The folder: 12 `*-pc.json` JSON arrays of items, umbra-sar.json (an array of 2) and one
    // collection document (3dep-lidar-copc); naip.parquet and README.md are not picked up.
    let dir = common::data_file(&data, "fixtures/stac-geoparquet/tests/data");
    let t = assert_round_trip(&[dir], &options(Mode::Insert, true, None), 50, 1);
    let counts = info_counts(&t.catalog);
    assert_eq!(counts.len(), 13);
    assert_eq!(counts["umbra-sar"], 2);
    assert_eq!(counts["3dep-lidar-copc"], 4);
    assert!(counts.iter().filter(|(id, _)| *id != "umbra-sar").all(|(_, n)| *n == 4), "{counts:?}");
}
