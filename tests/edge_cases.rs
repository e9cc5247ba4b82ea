//! Edge cases of real STAC data (the hand-picked table of the shared data's EDGE_CASES.md):
//! one test per class, each asserting stacdb's documented behaviour on the real files.

mod common;
mod ingest_support;

use std::path::{Path, PathBuf};

use geo::BoundingRect;
use ingest_support::*;
use serde_json::Value;
use stacdb::{DocErrorKind, Mode};

/// The R-tree box stacdb documents for an item: the globe box of its bbox joined with the
/// globe box of its geometry's bounds; `None` for null geometry.
fn expected_index_box(item: &Value) -> Option<[f64; 4]> {
    if item["geometry"].is_null() {
        return None;
    }
    let boxes: Vec<[f64; 4]> = [bbox_2d(&item["bbox"]), geometry_bounds(&item["geometry"])]
        .into_iter()
        .flatten()
        .map(on_globe)
        .collect();
    boxes
        .into_iter()
        .reduce(|a, b| [a[0].min(b[0]), a[1].min(b[1]), a[2].max(b[2]), a[3].max(b[3])])
}

/// Asserts the stored row and R-tree entry of an item agree with its document: promoted time
/// span, bbox as given (2-D part), geometry present or not, R-tree box, and the document.
fn assert_promoted(catalog: &stacdb::Catalog, collection: &str, item: &Value, context: &str) {
    let row = item_row(catalog, collection, id_of(item));
    assert_eq!((row.start, row.end), item_time(item), "{context}: datetime_start/end");
    assert_eq!(row.bbox, item_bbox(item).map_or([None; 4], |b| b.map(Some)), "{context}: bbox");
    assert_eq!(row.has_geometry, !item["geometry"].is_null(), "{context}: geometry column");
    match (rtree_box(catalog, row.fid), expected_index_box(item)) {
        (None, None) => {}
        (Some(have), Some(want)) => assert_rtree_box(have, want, context),
        (have, want) => panic!("{context}: R-tree entry {have:?}, expected {want:?}"),
    }
    let stored = catalog.item(collection, id_of(item)).unwrap();
    assert_same_json(&stored, item, context);
}

fn single_document(path: &Path) -> Value {
    let mut docs = file_documents(path);
    assert_eq!(docs.len(), 1, "{}", path.display());
    docs.remove(0)
}

#[test]
fn antimeridian_items_keep_their_bbox_and_span_the_globe_in_the_rtree() {
    let Some(data) = common::data_dir("antimeridian") else { return };
    let s2 = common::data_file(&data, "fixtures/stactools-sentinel2/tests/data-files");
    let crossing: Vec<(PathBuf, Value)> = ingestible_files(&s2)
        .into_iter()
        .filter(|f| f.ends_with("expected_output.json"))
        .map(|f| {
            let item = single_document(&f);
            (f, item)
        })
        .filter(|(_, item)| item["bbox"][0].as_f64() > item["bbox"][2].as_f64())
        .collect();
    // EDGE_CASES.md counts 7 split tiles: these 6 and the example item tested below.
    assert_eq!(crossing.len(), 6, "Sentinel-2 tiles split at the antimeridian");

    let mut t = temp_catalog();
    let mut cases = Vec::new();
    // The stactools items have no `collection` field (and two share an id): one collection
    // per file, in successive runs on one catalog.
    for (n, (file, item)) in crossing.iter().enumerate() {
        let collection = format!("sentinel2-{n}");
        let opts = options(Mode::Insert, true, Some(&collection));
        let report = ingest(&mut t.catalog, &[file], &opts).unwrap();
        assert_eq!(report.items.inserted, 1);
        cases.push((collection, item.clone(), file.clone()));
    }
    let sqlalchemy = "fixtures/stac-fastapi-sqlalchemy/tests/data";
    let multipolygon =
        common::data_file(&data, &format!("{sqlalchemy}/test_item_multipolygon.json"));
    let collection_file = common::data_file(&data, &format!("{sqlalchemy}/test_collection.json"));
    ingest(&mut t.catalog, &[&collection_file, &multipolygon], &options(Mode::Insert, false, None))
        .unwrap();
    cases.push(("test-collection".into(), single_document(&multipolygon), multipolygon));

    let info = t.catalog.info().unwrap();
    for (collection, item, file) in &cases {
        let context = format!("{}", file.display());
        let bbox = bbox_2d(&item["bbox"]).unwrap();
        assert!(bbox[0] > bbox[2], "{context}: bbox does not cross");
        let row = item_row(&t.catalog, collection, id_of(item));
        assert_eq!(row.bbox, bbox.map(Some), "{context}: stored bbox is not the input's");
        let rtree = rtree_box(&t.catalog, row.fid).expect("R-tree entry");
        assert_eq!((rtree[0], rtree[2]), (-180.0, 180.0), "{context}: R-tree longitudes");
        assert!(rtree[1] <= bbox[1] && rtree[3] >= bbox[3], "{context}: R-tree latitudes");
        assert_promoted(&t.catalog, collection, item, &context);
        let extent = info.collections.iter().find(|c| c.id == *collection).unwrap();
        assert_eq!(extent.bbox.map(|b| (b[0], b[2])), Some((-180.0, 180.0)), "{context}");
        assert_current_extent(&t.catalog, collection, &[item]);
    }
    assert_check_ok(&t.catalog, "antimeridian");
}

#[test]
fn antimeridian_example_catalog_keeps_its_crossing_collection_bbox() {
    let Some(data) = common::data_dir("antimeridian_example_catalog") else { return };
    let dir = common::data_file(&data, "fixtures/stactools-sentinel2/examples");
    // catalog.json is passed over; 2 collections (l1c crosses the antimeridian), 2 items.
    let t = assert_round_trip(&[&dir], &options(Mode::Insert, false, None), 2, 2);
    let collection = "sentinel2-l1c-example";
    let document = t.catalog.collection_document(collection).unwrap();
    let bbox = bbox_2d(&document["extent"]["spatial"]["bbox"][0]).unwrap();
    assert!(bbox[0] > bbox[2], "the stored collection bbox still crosses: {bbox:?}");
    let current = t.catalog.collection(collection).unwrap();
    let current = bbox_2d(&current["extent"]["spatial"]["bbox"][0]).unwrap();
    assert_eq!(current, [-180.0, bbox[1], 180.0, bbox[3]]);

    let mut t = temp_catalog();
    let report = ingest(&mut t.catalog, &[dir], &options(Mode::Insert, false, None)).unwrap();
    assert_eq!(report.catalogs_passed_over, 1);
}

#[test]
fn null_geometry_items_are_stored_without_rtree_entry() {
    let Some(data) = common::data_dir("null_geometry") else { return };
    let cases: [(&[&str], Option<&str>, usize); 6] = [
        (
            &[
                "fixtures/stac-fastapi-sqlalchemy/tests/data/test_collection.json",
                "fixtures/stac-fastapi-sqlalchemy/tests/data/test_item_geometry_null.json",
            ],
            None,
            1,
        ),
        (&["fixtures/stac-pydantic/tests/example_stac/example-item_geometry-null.json"], None, 1),
        // null geometry with a bbox, and without one
        (&["fixtures/stac-check/sample_files/1.0.0/core-item-unlocated.json"], None, 1),
        (&["fixtures/stac-check/sample_files/1.0.0/core-item-unlocated-null-bbox.json"], None, 1),
        // NDJSON without `collection` fields: one null geometry, one polygon
        (&["fixtures/rustac/crates/core/data/items.ndjson"], Some("rustac"), 2),
        (
            &[
                "fixtures/pystac/tests/data-files/examples/1.0.0-beta.2/item-spec/examples/null-geom-item.json",
            ],
            None,
            1,
        ),
    ];
    let mut null_items = 0;
    for (files, collection, n) in cases {
        let paths: Vec<PathBuf> = files.iter().map(|f| common::data_file(&data, f)).collect();
        let t = temp_catalog();
        drop(t.catalog);
        let mut args: Vec<String> = vec!["ingest".into(), t.path.display().to_string()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        args.push("--create-collections".into());
        if let Some(c) = collection {
            args.extend(["--collection".to_string(), c.to_string()]);
        }
        common::stacdb_ok(&args);
        let catalog = stacdb::Catalog::open(&t.path).unwrap();
        let items: Vec<Value> =
            documents_under(&paths).into_iter().map(|(_, d)| d).filter(is_item).collect();
        assert_eq!(items.len(), n);
        for item in &items {
            let context = format!("{files:?}: '{}'", id_of(item));
            let coll = item["collection"].as_str().or(collection).unwrap();
            assert_promoted(&catalog, coll, item, &context);
            let row = item_row(&catalog, coll, id_of(item));
            if item["geometry"].is_null() {
                null_items += 1;
                assert!(!row.has_geometry && rtree_box(&catalog, row.fid).is_none(), "{context}");
            }
            // `stacdb get` prints the item as ingested.
            let out = common::stacdb_ok([
                "get",
                &t.path.display().to_string(),
                coll,
                id_of(item),
                "--compact",
            ]);
            let printed: Value = serde_json::from_str(&out).unwrap();
            assert_same_json(&printed, item, &context);
            let coll_items: Vec<&Value> = items
                .iter()
                .filter(|i| i["collection"].as_str().or(collection) == Some(coll))
                .collect();
            assert_current_extent(&catalog, coll, &coll_items);
        }
        assert_check_ok(&catalog, &format!("{files:?}"));
    }
    assert_eq!(null_items, 6);
}

#[test]
fn datetime_null_with_range_promotes_start_and_end() {
    let Some(data) = common::data_dir("datetime_null_with_range") else { return };
    let dir = "fixtures/stac-spec/v1.0.0/examples";
    let item_file = common::data_file(&data, &format!("{dir}/core-item.json"));
    let mut t = temp_catalog();
    let inputs = [common::data_file(&data, &format!("{dir}/collection.json")), item_file.clone()];
    ingest(&mut t.catalog, &inputs, &options(Mode::Insert, false, None)).unwrap();
    let item = single_document(&item_file);
    assert!(item["properties"]["datetime"].is_null());
    let row = item_row(&t.catalog, "simple-collection", "20201211_223832_CS2");
    // 2020-12-11T22:38:32.125Z and 2020-12-11T22:38:32.327Z
    assert_eq!((row.start, row.end), (1_607_726_312_125_000, 1_607_726_312_327_000));
    assert_promoted(&t.catalog, "simple-collection", &item, "core-item.json");
    let current = t.catalog.collection("simple-collection").unwrap();
    assert_eq!(
        current["extent"]["temporal"]["interval"][0],
        serde_json::json!(["2020-12-11T22:38:32.125Z", "2020-12-11T22:38:32.327Z"])
    );

    // A static catalog of interval-only items: 4 collections, 115 items (94 of them without a
    // `collection` field, so each collection folder is ingested with --collection).
    let noaa = common::data_file(&data, "fixtures/stactools-noaa-cdr/examples");
    let mut total = 0;
    for name in [
        "noaa-cdr-ocean-heat-content",
        "noaa-cdr-sea-ice-concentration",
        "noaa-cdr-sea-surface-temperature-optimum-interpolation",
        "noaa-cdr-sea-surface-temperature-whoi",
    ] {
        let dir = noaa.join(name);
        let items: Vec<Value> =
            documents_under(&[&dir]).into_iter().map(|(_, d)| d).filter(is_item).collect();
        let t =
            assert_round_trip(&[dir], &options(Mode::Insert, false, Some(name)), items.len(), 1);
        for item in &items {
            assert!(item["properties"]["datetime"].is_null(), "{}", id_of(item));
            assert_promoted(&t.catalog, name, item, id_of(item));
        }
        total += items.len();
    }
    assert_eq!(total, 115);
}

#[test]
fn datetime_null_without_range_is_rejected() {
    let Some(data) = common::data_dir("datetime_null_without_range") else { return };
    let dir = common::data_file(&data, "fixtures/cedadev-stac-generator/example/output");
    let mut t = temp_catalog();
    let before = snapshot(&t.catalog);
    let err = doc_error(ingest(&mut t.catalog, &[&dir], &options(Mode::Insert, false, None)));
    assert!(err.location.source.contains("CMIP6.CMIP.MOHC.UKESM1-0-LL.Amon.tas.v2019"), "{err}");
    assert!(err.id.as_deref().unwrap().starts_with("CMIP6.CMIP.MOHC.UKESM1-0-LL.Amon.tas."));
    assert!(
        matches!(&err.reason, DocErrorKind::InvalidField { field, .. } if field == "properties.datetime"),
        "{err}"
    );
    assert!(err.to_string().contains("properties.datetime"), "{err}");
    assert_eq!(snapshot(&t.catalog), before, "a strict run that fails changes nothing");

    // With --skip-invalid both items are reported and the collection (null extent) is stored.
    let mut opts = options(Mode::Insert, false, None);
    opts.skip_invalid = true;
    let report = ingest(&mut t.catalog, &[&dir], &opts).unwrap();
    assert_eq!((report.failed, report.items.inserted, report.collections.inserted), (2, 0, 1));
    assert!(report.errors.iter().all(|e| e.to_string().contains("properties.datetime")));
    let collection = single_document(&dir.join("collections/cmip6.json"));
    assert_same_json(&t.catalog.collection_document("cmip6").unwrap(), &collection, "cmip6");
    assert_same_json(&t.catalog.collection("cmip6").unwrap(), &collection, "cmip6 current");

    // No datetime member at all.
    let bad = common::data_file(
        &data,
        "fixtures/stac-validator/tests/test_data/1beta2/extensions/pointcloud/examples/bad-example-autzen.json",
    );
    let err = doc_error(ingest(&mut t.catalog, &[bad], &options(Mode::Insert, true, Some("x"))));
    assert!(matches!(err.reason, DocErrorKind::MissingField("properties.datetime")), "{err}");
    assert_check_ok(&t.catalog, "cedadev");
}

#[test]
fn longitudes_beyond_180_are_stored_as_given_and_indexed_full_width() {
    let Some(data) = common::data_dir("longitudes_beyond_180") else { return };
    let collections = common::data_file(&data, "bench/pgstac/modis-13Q1-061.collections.ndjson.gz");
    let items_file = common::data_file(&data, "bench/pgstac/modis-13Q1-061-1400.items.ndjson.gz");
    let mut t = temp_catalog();
    let report =
        ingest(&mut t.catalog, &[&collections, &items_file], &options(Mode::Insert, false, None))
            .unwrap();
    assert_eq!(report.items.inserted, 1400);
    let items = file_documents(&items_file);
    let mut beyond = 0;
    for item in &items {
        let context = id_of(item).to_string();
        let bbox = bbox_2d(&item["bbox"]).unwrap();
        let row = item_row(&t.catalog, "modis-13Q1-061", id_of(item));
        assert_eq!(row.bbox, bbox.map(Some), "{context}: bbox stored as given");
        let rtree = rtree_box(&t.catalog, row.fid).unwrap();
        let outside = geometry_bounds(&item["geometry"])
            .is_some_and(|g| g[0] < -180.0 || g[2] > 180.0)
            || bbox[0] < -180.0
            || bbox[2] > 180.0;
        if outside {
            beyond += 1;
            assert_eq!((rtree[0], rtree[2]), (-180.0, 180.0), "{context}: R-tree full width");
        }
        assert_rtree_box(rtree, expected_index_box(item).unwrap(), &context);
        assert_eq!((row.start, row.end), item_time(item), "{context}");
    }
    assert_eq!(beyond, 252, "MANIFEST.md: 252 MODIS items have longitudes beyond 180");
    let info = t.catalog.info().unwrap();
    let bbox = info.collections[0].bbox.unwrap();
    assert_eq!((bbox[0], bbox[2]), (-180.0, 180.0), "collection extent clamped to ±180");
    let refs: Vec<&Value> = items.iter().collect();
    assert_current_extent(&t.catalog, "modis-13Q1-061", &refs);
    let collection = single_document(&collections);
    assert_same_json(
        &t.catalog.collection_document("modis-13Q1-061").unwrap(),
        &collection,
        "modis",
    );
    assert_check_ok(&t.catalog, "modis");

    // A CMIP6 item with longitudes 0..357.5.
    let cmip6 = common::data_file(
        &data,
        "fixtures/stac-extensions-cmip6/examples/CMIP6.ScenarioMIP.THU.CIESM.ssp585.r1i1p1f1.Amon.rsus.gr.v20200806.json",
    );
    let mut t = temp_catalog();
    ingest(&mut t.catalog, &[&cmip6], &options(Mode::Insert, true, None)).unwrap();
    let item = single_document(&cmip6);
    let row = item_row(&t.catalog, "CMIP6", id_of(&item));
    assert_eq!(row.bbox, [Some(0.0), Some(-90.0), Some(357.5), Some(90.0)]);
    assert_eq!(rtree_box(&t.catalog, row.fid), Some([-180.0, -90.0, 180.0, 90.0]));
    assert_promoted(&t.catalog, "CMIP6", &item, "cmip6");
    assert_check_ok(&t.catalog, "cmip6");
}

#[test]
fn non_rfc3339_datetimes_are_accepted_when_unambiguous() {
    let Some(data) = common::data_dir("non_rfc3339_datetimes") else { return };
    let dir = common::data_file(&data, "fixtures/antimeridian/docs/examples");
    let files: Vec<PathBuf> = ingestible_files(&dir)
        .into_iter()
        .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with("S3A_"))
        .collect();
    assert_eq!(files.len(), 2);
    let mut t = temp_catalog();
    let report = ingest(&mut t.catalog, &files, &options(Mode::Insert, true, Some("s3"))).unwrap();
    assert_eq!(report.items.inserted, 2);
    // "2016-05-21 01:55:51.526891+00:00" etc.: space separator, both kept to the microsecond.
    let expected = [
        (
            "S3A_SL_2_LST_20160521T015552_20160521T033651_6059_004_217_____",
            1_463_795_751_526_891,
            1_463_801_810_747_700,
        ),
        (
            "S3A_SL_2_LST_20160521T033651_20160521T051750_6059_004_218_____",
            1_463_801_810_747_700,
            1_463_807_869_968_558,
        ),
    ];
    for (id, start, end) in expected {
        let row = item_row(&t.catalog, "s3", id);
        assert_eq!((row.start, row.end), (start, end), "{id}");
    }
    for file in &files {
        assert_promoted(&t.catalog, "s3", &single_document(file), &file.display().to_string());
    }

    // No offset at all: taken as UTC.
    let naive =
        common::data_file(&data, "fixtures/rustac/crates/core/data/invalid-item-datetime.json");
    ingest(&mut t.catalog, &[&naive], &options(Mode::Insert, true, None)).unwrap();
    let row = item_row(&t.catalog, "blacksky", "BSG-119-20230614-110844-101538021-areaortho");
    assert_eq!((row.start, row.end), (1_686_740_924_039_000, 1_686_740_924_039_000));
    assert_check_ok(&t.catalog, "non-RFC3339");

    // An offset followed by `Z` is not a datetime: rejected, naming the field and value.
    let autzen = common::data_file(
        &data,
        "fixtures/stac-spec/v0.9.0/extensions/pointcloud/examples/example-autzen.json",
    );
    let before = snapshot(&t.catalog);
    let err =
        doc_error(ingest(&mut t.catalog, &[&autzen], &options(Mode::Insert, true, Some("a"))));
    assert!(
        matches!(&err.reason, DocErrorKind::InvalidField { field, .. } if field == "properties.datetime"),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("example-autzen.json"), "{message}");
    assert!(message.contains("'autzen-full.laz'"), "{message}");
    assert!(message.contains("2013-07-17T00:00:00-05:00Z"), "{message}");
    assert_eq!(snapshot(&t.catalog), before);
}

#[test]
fn three_d_bboxes_and_coordinates_keep_their_2d_part_in_the_index() {
    let Some(data) = common::data_dir("three_d") else { return };
    let copc =
        common::data_file(&data, "fixtures/stac-geoparquet/tests/data/3dep-lidar-copc-pc.json");
    let collection = common::data_file(
        &data,
        "fixtures/stac-geoparquet/tests/data/3dep-lidar-copc-pc-collection.json",
    );
    let umbra = common::data_file(&data, "fixtures/stac-geoparquet/tests/data/umbra-sar.json");
    let mut t = temp_catalog();
    ingest(&mut t.catalog, &[&collection, &copc, &umbra], &options(Mode::Insert, true, None))
        .unwrap();

    let copc_items = file_documents(&copc);
    assert_eq!(copc_items.len(), 4);
    for item in &copc_items {
        let b: Vec<f64> =
            item["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(b.len(), 6, "a 3-D bbox");
        let row = item_row(&t.catalog, "3dep-lidar-copc", id_of(item));
        assert_eq!(row.bbox, [Some(b[0]), Some(b[1]), Some(b[3]), Some(b[4])], "2-D part");
        assert_promoted(&t.catalog, "3dep-lidar-copc", item, id_of(item));
        let stored = t.catalog.item("3dep-lidar-copc", id_of(item)).unwrap();
        assert_eq!(stored["bbox"].as_array().unwrap().len(), 6, "stored document keeps 6 numbers");
    }

    let umbra_items = file_documents(&umbra);
    assert_eq!(umbra_items.len(), 2);
    for item in &umbra_items {
        let first = &item["geometry"]["coordinates"][0][0];
        assert_eq!(first.as_array().unwrap().len(), 3, "3-D coordinates");
        assert_promoted(&t.catalog, "umbra-sar", item, id_of(item));
        let blob: Vec<u8> = t
            .catalog
            .connection()
            .query_row(
                "SELECT geometry FROM items WHERE collection = 'umbra-sar' AND id = ?1",
                [id_of(item)],
                |r| r.get(0),
            )
            .unwrap();
        let geometry = stacdb::geometry::from_blob(&blob).unwrap();
        let rect = geometry.bounding_rect().unwrap();
        let want = geometry_bounds(&item["geometry"]).unwrap();
        assert_eq!([rect.min().x, rect.min().y, rect.max().x, rect.max().y], want);
        let stored = t.catalog.item("umbra-sar", id_of(item)).unwrap();
        assert_eq!(stored["geometry"], item["geometry"], "Z values kept in the document");
    }
    assert_check_ok(&t.catalog, "3-D");
}

#[test]
fn unknown_top_level_members_are_kept() {
    let Some(data) = common::data_dir("unknown_members") else { return };
    let dir = "fixtures/pgstac/src/pgstac/tests/testdata";
    let items_file = common::data_file(&data, &format!("{dir}/items_private.ndjson"));
    let t = assert_round_trip(
        &[common::data_file(&data, &format!("{dir}/collections.ndjson")), items_file.clone()],
        &options(Mode::Insert, false, None),
        100,
        2,
    );
    for item in file_documents(&items_file) {
        assert!(item["private"].is_object(), "the input has `private`");
        let stored = t.catalog.item("pgstac-test-collection", id_of(&item)).unwrap();
        assert_eq!(stored["private"], item["private"], "{}", id_of(&item));
    }
    // A collection with `member_of_recipes` (and a null extent bbox and interval).
    let cmip6 = common::data_file(
        &data,
        "fixtures/cedadev-stac-generator/example/output/collections/cmip6.json",
    );
    let t = assert_round_trip(&[&cmip6], &options(Mode::Insert, false, None), 0, 1);
    let stored = t.catalog.collection_document("cmip6").unwrap();
    assert_eq!(stored["member_of_recipes"], single_document(&cmip6)["member_of_recipes"]);
    assert!(!stored["member_of_recipes"].is_null());
}

#[test]
fn invalid_json_is_rejected_with_file_and_line() {
    let Some(data) = common::data_dir("invalid_json") else { return };
    let zanzibar = "fixtures/stac-spec/v0.9.0/extensions/label/examples/multidataset/zanzibar";
    let bad = common::data_file(&data, &format!("{zanzibar}/znz029.json"));
    let good =
        common::data_file(&data, "fixtures/stac-fastapi-pgstac/testdata/joplin/index.geojson");
    let joplin =
        common::data_file(&data, "fixtures/stac-fastapi-pgstac/testdata/joplin/collection.json");

    // Library: the error names the file and line 21 (the trailing comma).
    let mut t = temp_catalog();
    let err = doc_error(ingest(&mut t.catalog, &[&bad], &options(Mode::Insert, true, Some("z"))));
    assert!(err.location.source.ends_with("znz029.json"), "{err}");
    assert_eq!(err.location.line, Some(21), "{err}");
    assert!(
        matches!(&err.reason, DocErrorKind::InvalidJson(m) if m.contains("trailing comma")),
        "{err}"
    );
    assert!(err.to_string().contains("znz029.json:21"), "{err}");

    // CLI: a valid file, then the invalid one: exit 1, the catalog is as it was.
    ingest(&mut t.catalog, &[&joplin, &good], &options(Mode::Insert, false, None)).unwrap();
    let before = snapshot(&t.catalog);
    let path = t.path.display().to_string();
    let out = common::stacdb([
        "ingest",
        &path,
        &data
            .join("fixtures/stac-fastapi-sqlalchemy/tests/data/test_collection.json")
            .display()
            .to_string(),
        &bad.display().to_string(),
        "--create-collections",
        "--collection",
        "z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("znz029.json:21"), "{stderr}");
    assert!(stderr.contains("invalid JSON"), "{stderr}");
    assert_eq!(snapshot(&t.catalog), before, "a failed run changes nothing");
    assert_check_ok(&t.catalog, "invalid JSON");
}

/// Items of every pre-1.0 and release-candidate example tree ingest with the right promoted
/// columns and an unchanged stored document; the few invalid ones are rejected.
#[test]
fn old_stac_versions_ingest_with_correct_promoted_columns() {
    let Some(data) = common::data_dir("old_stac_versions") else { return };
    let expected_rejections = [
        ("v0.8.1/extensions/pointcloud/examples/example-autzen.json", "properties.datetime"),
        ("v0.9.0/extensions/pointcloud/examples/example-autzen.json", "properties.datetime"),
        // Polygons written as a bare ring (one nesting level short)
        (
            "v0.9.0/extensions/label/examples/multidataset/spacenet-buildings/AOI_2_Vegas_img2636.json",
            "geometry",
        ),
        (
            "v0.9.0/extensions/label/examples/multidataset/spacenet-buildings/AOI_3_Paris_img1648.json",
            "geometry",
        ),
        (
            "v0.9.0/extensions/label/examples/multidataset/spacenet-buildings/AOI_4_Shanghai_img3344.json",
            "geometry",
        ),
        ("v0.9.0/extensions/label/examples/multidataset/zanzibar/znz001.json", "geometry"),
        ("v0.9.0/extensions/label/examples/multidataset/zanzibar/znz029.json", "invalid JSON"),
        // bbox with south > north
        ("v1.0.0-beta.2/extensions/tiled-assets/examples/example-dimension.json", "bbox"),
    ];
    let root = common::data_file(&data, "fixtures/stac-spec");
    let mut rejected = Vec::new();
    let mut accepted = std::collections::BTreeMap::<&str, usize>::new();
    let mut collections = 0;
    for version in ["v0.8.1", "v0.9.0", "v1.0.0-beta.2", "v1.0.0-rc.1"] {
        for file in ingestible_files(&root.join(version)) {
            let relative = file.strip_prefix(&root).unwrap().display().to_string();
            let mut t = temp_catalog();
            let mut opts = options(Mode::Insert, true, Some("legacy"));
            let Ok(values) = try_read_values(&file) else {
                let err = doc_error(ingest(&mut t.catalog, &[&file], &opts));
                assert!(matches!(err.reason, DocErrorKind::InvalidJson(_)), "{err}");
                rejected.push((relative, "invalid JSON".to_string()));
                continue;
            };
            let docs: Vec<Value> = values.into_iter().flat_map(split).collect();
            if !docs.iter().any(|d| is_item(d) || is_collection(d)) {
                continue; // catalogs, label GeoJSON without `stac_version`
            }
            // Each file in place, in a catalog of its own; invalid documents are reported.
            opts.skip_invalid = true;
            let report = ingest(&mut t.catalog, &[&file], &opts)
                .unwrap_or_else(|e| panic!("{relative}: ingest failed: {e}"));
            let mut rejected_ids = Vec::new();
            for e in &report.errors {
                match &e.reason {
                    // GeoJSON Features without `stac_version` (label data, 0.8 single-file STAC)
                    DocErrorKind::NotStac(_) => continue,
                    DocErrorKind::InvalidField { field, .. } => {
                        rejected.push((relative.clone(), field.clone()))
                    }
                    DocErrorKind::MissingField(field) => {
                        rejected.push((relative.clone(), field.to_string()))
                    }
                    other => panic!("{relative}: unexpected rejection: {other}"),
                }
                rejected_ids.push(e.id.clone().expect("rejected item has an id"));
            }
            for doc in &docs {
                let context = format!("{relative}: '{}'", id_of(doc));
                if is_collection(doc) {
                    let stored = t.catalog.collection_document(id_of(doc)).unwrap();
                    assert_same_json(&stored, doc, &context);
                    collections += 1;
                } else if is_item(doc) && !rejected_ids.iter().any(|id| id == id_of(doc)) {
                    let collection = doc["collection"].as_str().unwrap_or("legacy");
                    assert_promoted(&t.catalog, collection, doc, &context);
                    *accepted.entry(version).or_default() += 1;
                }
            }
            assert_check_ok(&t.catalog, &relative);
        }
    }
    let mut rejected: Vec<(&str, &str)> =
        rejected.iter().map(|(f, r)| (f.as_str(), r.as_str())).collect();
    rejected.sort();
    let mut expected_rejections = expected_rejections.to_vec();
    expected_rejections.sort();
    assert_eq!(rejected, expected_rejections);
    // Every item of each tree that is valid: counts of the examples with `stac_version`.
    let accepted: Vec<(&str, usize)> = accepted.into_iter().collect();
    assert_eq!(
        accepted,
        [("v0.8.1", 22), ("v0.9.0", 23), ("v1.0.0-beta.2", 30), ("v1.0.0-rc.1", 6)]
    );
    assert!(collections > 20, "{collections} collections checked");
}

#[test]
fn duplicate_ids() {
    let Some(data) = common::data_dir("duplicate_ids") else { return };
    let dir = "fixtures/pgstac/src/pgstac/tests/testdata";
    let file = |name: &str| common::data_file(&data, &format!("{dir}/{name}"));

    // items_duplicate_ids.ndjson: one id in two collections. Ids are unique per collection
    // (as in the STAC API), so both are stored.
    let t = assert_round_trip(
        &[file("collections.ndjson"), file("items_duplicate_ids.ndjson")],
        &options(Mode::Insert, false, None),
        2,
        2,
    );
    assert_eq!(
        stored_keys(&t.catalog),
        [
            ("pgstac-test-collection".to_string(), "pgstac-test-item-duplicated".to_string()),
            ("pgstac-test-collection2".to_string(), "pgstac-test-item-duplicated".to_string()),
        ]
    );

    // items_for_delsert.ndjson repeats 3 ids of items.ndjson in the same collection
    // (pgstac-test-item-0006..0008; 0008 with another gsd).
    let inputs =
        [file("collections.ndjson"), file("items.ndjson"), file("items_for_delsert.ndjson")];
    let mut t = temp_catalog();
    let before = snapshot(&t.catalog);
    let err = doc_error(ingest(&mut t.catalog, &inputs, &options(Mode::Insert, false, None)));
    assert!(matches!(err.reason, DocErrorKind::Duplicate { .. }), "{err}");
    assert_eq!(err.id.as_deref(), Some("pgstac-test-item-0006"));
    assert!(err.to_string().contains("items_for_delsert.ndjson:4"), "{err}");
    assert_eq!(snapshot(&t.catalog), before, "insert mode: nothing stored");

    let report = ingest(&mut t.catalog, &inputs, &options(Mode::Upsert, false, None)).unwrap();
    assert_eq!((report.items.inserted, report.items.updated), (103, 3));
    let last = file_documents(&file("items_for_delsert.ndjson"));
    for item in &last {
        let stored = t.catalog.item("pgstac-test-collection", id_of(item)).unwrap();
        assert_same_json(&stored, item, "upsert keeps the last copy");
    }
    let first_0008 = file_documents(&file("items.ndjson"))
        .into_iter()
        .find(|i| i["id"] == "pgstac-test-item-0008")
        .unwrap();
    assert_ne!(first_0008["properties"]["gsd"], last[5]["properties"]["gsd"], "the copies differ");
    assert_eq!(info_counts(&t.catalog)["pgstac-test-collection"], 103);
    assert_check_ok(&t.catalog, "duplicates");
}
