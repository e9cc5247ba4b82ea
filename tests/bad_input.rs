//! Bad input through the real CLI: every document of the shared data (`fixtures/` and
//! `bench/`, every `.json`, `.geojson`, `.ndjson` and `.jsonl` file, gzipped or not) ingested in
//! strict mode and with `--skip-invalid`, in batches (one per top-level fixture directory and
//! one per bench file). Whatever the data, stacdb must not panic, must exit only with a code
//! the README documents for ingest (0, 1 or 3), and must name the file (and line, for NDJSON)
//! and the reason of every rejection. Then one case per class of
//! `../shared/data/EDGE_CASES.md`, checked against the table of docs/RELIABILITY.md
//! ("Bad input").

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// What one batch gave.
#[derive(Debug, Default)]
struct Totals {
    files: u64,
    items: u64,
    collections: u64,
    catalogs_passed_over: u64,
    rejected: u64,
    strict_failed: bool,
}

fn is_ingestible(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    [".json", ".geojson", ".ndjson", ".jsonl"].iter().any(|ext| name.ends_with(ext))
}

fn ingestible_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if is_ingestible(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs `stacdb ingest` and checks what every run must do, whatever the input.
fn ingest(catalog: &Path, inputs: &[&Path], extra: &[&str]) -> Output {
    let mut command = common::bin();
    command.arg("ingest").arg(catalog).args(inputs).args(extra);
    let out = command.output().expect("run stacdb");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let context = format!("stacdb ingest {} {extra:?}", inputs[0].display());
    assert!(!stderr.contains("panicked"), "{context}: a panic:\n{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{context}: a panic:\n{stderr}");
    let code = out.status.code();
    let allowed: &[i32] = if extra.contains(&"--skip-invalid") { &[0, 3] } else { &[0, 1] };
    assert!(
        code.is_some_and(|c| allowed.contains(&c)),
        "{context}: exit {:?} (allowed {allowed:?}):\n{stderr}",
        out.status
    );
    out
}

/// Splits a rejection message `FILE[:LINE][ at POINTER]: ['ID': ]REASON` whose file is under
/// `root`; returns the file, the line and the reason.
fn parse_rejection<'a>(message: &'a str, root: &str) -> (PathBuf, Option<u64>, &'a str) {
    let rest = message
        .strip_prefix(root)
        .unwrap_or_else(|| panic!("rejection does not name a file under {root}: {message}"));
    // The file name ends at a known extension followed by ':' (a line or the reason) or by
    // " at /" (a pointer).
    let lower = rest.to_ascii_lowercase();
    let end = [".json", ".geojson", ".ndjson", ".jsonl"]
        .iter()
        .flat_map(|ext| [format!("{ext}.gz"), ext.to_string()])
        .flat_map(|ext| [format!("{ext}:"), format!("{ext} at /")])
        .filter_map(|ext| lower.find(&ext).map(|i| i + ext.find([':', ' ']).unwrap()))
        .min()
        .unwrap_or_else(|| panic!("no file name in rejection: {message}"));
    let file = PathBuf::from(format!("{root}{}", &rest[..end]));
    let mut rest = &rest[end..];
    let mut line = None;
    if let Some(after) = rest.strip_prefix(':')
        && let Some(digits) = after.split(|c: char| !c.is_ascii_digit()).next()
        && !digits.is_empty()
    {
        line = Some(digits.parse().unwrap());
        rest = &after[digits.len()..];
    }
    if let Some(pointer) = rest.strip_prefix(" at /") {
        let end = pointer.find(": ").expect("pointer then reason");
        rest = &pointer[end..];
    }
    let reason = rest.strip_prefix(": ").unwrap_or_else(|| panic!("no reason: {message}"));
    let reason = match reason.strip_prefix('\'') {
        // `'ID': REASON` (an id may hold anything, so take the last "': " before a known start)
        Some(_) => REASON_STARTS
            .iter()
            .filter_map(|start| reason.find(&format!("': {start}")).map(|i| &reason[i + 3..]))
            .next()
            .unwrap_or(reason),
        None => reason,
    };
    (file, line, reason)
}

/// How every rejection reason starts (src/error.rs, `DocErrorKind`).
const REASON_STARTS: [&str; 10] = [
    "invalid JSON: ",
    "not a STAC document: ",
    "missing required field `",
    "field `",
    "item has no `collection` field",
    "duplicate: ",
    "collection '",
    "this is a STAC Catalog",
    "broken ",
    "cannot read: ",
];

/// The class of a rejection, for the totals.
fn reason_class(reason: &str) -> String {
    let class = REASON_STARTS
        .iter()
        .find(|start| reason.starts_with(**start))
        .unwrap_or_else(|| panic!("a rejection reason of unknown form: {reason}"));
    match *class {
        "field `" | "missing required field `" => {
            let field = reason.split('`').nth(1).unwrap_or("");
            if field.contains("datetime") {
                let why = ["is after", "is not an RFC 3339", "is null, so", "is required with"]
                    .into_iter()
                    .find(|why| reason.contains(why))
                    .unwrap_or("");
                let why = if why.is_empty() { String::new() } else { format!(": {why}") };
                return format!("{class}{field}`{why}");
            }
            format!("{class}{field}`")
        }
        other => other.trim_end_matches([' ', ':', '`', '\'']).to_string(),
    }
}

/// Ingests one batch in both modes; checks messages; returns the totals and rejection classes.
fn batch(input: &Path, name: &str, classes: &mut BTreeMap<String, u64>) -> Totals {
    let dir = tempfile::tempdir().unwrap();
    let root = format!("{}/", input.parent().unwrap().display());
    let common_args = ["--create-collections", "--collection", name, "--json"];

    // Strict: the first invalid document stops the run and nothing is written.
    let strict = dir.path().join("strict.stacdb");
    let out = ingest(&strict, &[input], &common_args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut totals = Totals::default();
    if out.status.code() == Some(1) {
        totals.strict_failed = true;
        let message = stderr
            .lines()
            .find_map(|l| l.strip_prefix("stacdb: error: "))
            .unwrap_or_else(|| panic!("{name}: strict failure without a message:\n{stderr}"));
        let (file, _, reason) = parse_rejection(message, &root);
        assert!(file.is_file(), "{name}: the strict error names no file: {message}");
        reason_class(reason);
        assert!(!strict.exists(), "{name}: a failed first load left {}", strict.display());
    } else {
        assert!(strict.exists());
    }

    // --skip-invalid: everything valid is stored; each rejection is on stderr and in the report.
    // In upsert mode, so that the many ids the data repeats (the same example in several STAC
    // versions) count once as accepted and the rejections are the invalid documents.
    let lenient = dir.path().join("lenient.stacdb");
    let mut args = common_args.to_vec();
    args.extend(["--skip-invalid", "--mode", "upsert"]);
    let out = ingest(&lenient, &[input], &args);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{name}: --json report is not JSON ({e})"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed = report["failed"].as_u64().unwrap();
    assert_eq!(out.status.code() == Some(3), failed > 0, "{name}: exit code and failed count");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len() as u64, failed.min(1000), "{name}: errors listed");
    let skipped: Vec<&str> =
        stderr.lines().filter_map(|l| l.strip_prefix("stacdb: skipped: ")).collect();
    assert_eq!(skipped.len() as u64, failed, "{name}: one stderr line per rejection");
    for (error, line) in errors.iter().zip(&skipped) {
        assert_eq!(error.as_str(), Some(*line), "{name}: the report and stderr agree");
    }
    for message in skipped {
        let (file, line, reason) = parse_rejection(message, &root);
        assert!(file.is_file(), "{name}: rejection names no file: {message}");
        let ndjson = {
            let n = file.to_string_lossy().to_ascii_lowercase();
            n.contains(".ndjson") || n.contains(".jsonl")
        };
        if ndjson || reason.starts_with("invalid JSON") {
            assert!(line.is_some(), "{name}: rejection names no line: {message}");
        }
        *classes.entry(reason_class(reason)).or_default() += 1;
    }
    // A collection built by --create-collections is counted apart from those given.
    totals.files = report["files"].as_u64().unwrap();
    totals.items = report["items"]["inserted"].as_u64().unwrap()
        + report["items"]["updated"].as_u64().unwrap();
    totals.collections = report["collections"]["inserted"].as_u64().unwrap()
        + report["collections"]["updated"].as_u64().unwrap()
        + report["collections_created"].as_u64().unwrap();
    totals.catalogs_passed_over = report["catalogs_passed_over"].as_u64().unwrap();
    totals.rejected = failed;
    if lenient.exists() {
        let out = common::stacdb(["check".as_ref(), lenient.as_os_str()]);
        assert!(out.status.success(), "{name}: check after --skip-invalid: {out:?}");
    }
    totals
}

#[test]
fn every_shared_document_ingests_without_panic_and_rejections_name_file_and_reason() {
    let Some(data) = common::data_dir("bad_input") else { return };
    let mut batches: Vec<(String, PathBuf)> = Vec::new();
    let mut fixture_dirs: Vec<PathBuf> = std::fs::read_dir(data.join("fixtures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    fixture_dirs.sort();
    for dir in fixture_dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        batches.push((format!("fixtures/{name}"), dir));
    }
    for file in ingestible_files(&data.join("bench")) {
        let name = file.strip_prefix(&data).unwrap().to_string_lossy().into_owned();
        batches.push((name, file));
    }
    let documents_on_disk: usize = ingestible_files(&data.join("fixtures")).len()
        + ingestible_files(&data.join("bench")).len();

    let mut classes = BTreeMap::new();
    let mut report = String::from(
        "\nbad input: batch | files | items | collections | catalogs passed over | rejected | strict\n",
    );
    let mut sum = Totals::default();
    for (name, path) in &batches {
        let t = batch(path, name, &mut classes);
        report += &format!(
            "  {name} | {} | {} | {} | {} | {} | {}\n",
            t.files,
            t.items,
            t.collections,
            t.catalogs_passed_over,
            t.rejected,
            if t.strict_failed { "exit 1" } else { "exit 0" }
        );
        sum.files += t.files;
        sum.items += t.items;
        sum.collections += t.collections;
        sum.catalogs_passed_over += t.catalogs_passed_over;
        sum.rejected += t.rejected;
    }
    report += &format!(
        "  total | {} | {} | {} | {} | {} |\nrejections by reason:\n",
        sum.files, sum.items, sum.collections, sum.catalogs_passed_over, sum.rejected
    );
    for (class, n) in &classes {
        report += &format!("  {class}: {n}\n");
    }
    // Shown even when the test passes (the harness captures eprintln!).
    let _ = writeln!(std::io::stderr().lock(), "{report}");
    assert_eq!(sum.files as usize, documents_on_disk, "every file was read");
    // Most documents are stored (most of the rejections are the features of plain GeoJSON
    // label files, which are not STAC).
    assert!(sum.items > 30_000, "most items are accepted: {report}");
    assert!(sum.rejected > 0, "the shared data holds invalid documents: {report}");
}

/// What stacdb does with one class of edge case (the table of docs/RELIABILITY.md).
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Every document of the files is stored (`items` items in all, when given).
    Accepted(Option<u64>),
    /// Every file is rejected, with a message that holds this text; a strict run fails with
    /// exit 1 and the same message.
    Rejected(&'static str),
}

/// Ingests `files` with `--skip-invalid --json` (and `extra`) into a new catalog; returns the
/// report and the rejection messages.
fn lenient(files: &[PathBuf], extra: &[&str]) -> (Value, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("edge.stacdb");
    let inputs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut args = vec!["--skip-invalid", "--json", "--create-collections", "--collection", "edge"];
    args.extend(extra);
    let out = ingest(&catalog, &inputs, &args);
    let report: Value = serde_json::from_slice(&out.stdout).expect("--json report");
    let errors = report["errors"].as_array().unwrap().iter();
    let errors = errors.map(|e| e.as_str().unwrap().to_string()).collect();
    (report, errors)
}

fn check_class(data: &Path, class: &str, files: &[&str], expect: Expect) {
    let files: Vec<PathBuf> =
        files.iter().map(|f| common::data_file(data, &format!("fixtures/{f}"))).collect();
    // Upsert: some examples repeat an id (the same item with and without bbox, …).
    let (report, errors) = lenient(&files, &["--mode", "upsert"]);
    let count = |kind: &str| {
        report[kind]["inserted"].as_u64().unwrap() + report[kind]["updated"].as_u64().unwrap()
    };
    match expect {
        Expect::Accepted(items) => {
            assert!(errors.is_empty(), "{class}: rejected: {errors:#?}");
            assert!(count("items") + count("collections") > 0, "{class}: nothing: {report}");
            if let Some(items) = items {
                assert_eq!(count("items"), items, "{class}: {report}");
            }
        }
        Expect::Rejected(text) => {
            for file in &files {
                let name = file.display().to_string();
                let rejections: Vec<&String> =
                    errors.iter().filter(|e| e.starts_with(&name)).collect();
                assert!(!rejections.is_empty(), "{class}: {name} was not rejected: {report}");
                for e in rejections {
                    assert!(e.contains(text), "{class}: {e}\n  does not say: {text}");
                }
                let dir = tempfile::tempdir().unwrap();
                let catalog = dir.path().join("strict.stacdb");
                let args = ["--create-collections", "--collection", "edge"];
                let out = ingest(&catalog, &[file.as_path()], &args);
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert_eq!(out.status.code(), Some(1), "{class}: strict run of {name}: {stderr}");
                assert!(
                    stderr.starts_with(&format!("stacdb: error: {name}")) && stderr.contains(text),
                    "{class}: strict run of {name}: {stderr}"
                );
                assert!(!catalog.exists(), "{class}: a failed first load left a file");
            }
        }
    }
}

/// Wraps each bare GeoJSON geometry file of `dir` in a minimal item (in `out`).
fn wrap_geometries(dir: &Path, out: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for file in ingestible_files(dir) {
        let geometry: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let id = file.file_stem().unwrap().to_string_lossy().into_owned();
        let item = serde_json::json!({"type": "Feature", "stac_version": "1.1.0", "id": id,
            "collection": "wrapped", "geometry": geometry,
            "properties": {"datetime": "2020-01-01T00:00:00Z"}, "links": [], "assets": {}});
        let path = out.join(format!("{id}.json"));
        std::fs::write(&path, item.to_string()).unwrap();
        files.push(path);
    }
    files
}

#[test]
fn each_edge_case_class_is_handled_as_documented() {
    let Some(data) = common::data_dir("bad_input classes") else { return };
    use Expect::*;
    let classes: &[(&str, &[&str], Expect)] = &[
        (
            "antimeridian, spec-conformant (split MultiPolygon, bbox minx > maxx)",
            &[
                "stactools-sentinel2/tests/data-files/S2A_MSIL2A_20230625T234621_N0509_R073_T01WCP_20230626T022157.SAFE/expected_output.json",
                "stac-fastapi-sqlalchemy/tests/data/test_item_multipolygon.json",
            ],
            Accepted(Some(2)),
        ),
        (
            "antimeridian, not split (polygon crossing 180 and a pole)",
            &[
                "antimeridian/docs/examples/S3A_SL_2_LST_20160521T033651_20160521T051750_6059_004_218_____.json",
            ],
            Accepted(Some(1)),
        ),
        (
            "antimeridian, wrongly written (Polygon with MultiPolygon coordinates)",
            &["stac-server/tests/fixtures/stac/badGeometryItem.json"],
            Rejected(
                "field `geometry`: not a GeoJSON geometry: Encountered geometry type: `Polygon` with unexpected coordinates dimensions: 3",
            ),
        ),
        (
            "antimeridian bbox written west > east by mistake",
            &["stac-check/sample_files/1.0.0/invalid-antimeridian-bbox.json"],
            Accepted(Some(1)),
        ),
        (
            "bare geometries (no item wrapper)",
            &[
                "antimeridian/tests/data/input/over-180.json",
                "antimeridian/tests/data/input/north-pole.json",
                "stac-server/tests/fixtures/geometry/badGeoUnclosed.json",
            ],
            Rejected("not a STAC document: unknown `type` 'Polygon'"),
        ),
        (
            "lon > 180 (real data)",
            &[
                "stac-extensions-cmip6/examples/CMIP6.ScenarioMIP.THU.CIESM.ssp585.r1i1p1f1.Amon.rsus.gr.v20200806.json",
                "stac-geoparquet/tests/data/cop-dem-glo-30-pc.json",
                "stac-check/sample_files/1.0.0/feature_collection.json",
            ],
            Accepted(Some(15)),
        ),
        (
            "lat > 90 (swapped axes)",
            &["stac-spec/v0.9.0/extensions/sar/examples/envisat.json"],
            Accepted(Some(1)),
        ),
        (
            "null geometry",
            &[
                "stac-fastapi-sqlalchemy/tests/data/test_item_geometry_null.json",
                "stac-pydantic/tests/example_stac/example-item_geometry-null.json",
                "stac-check/sample_files/1.0.0/core-item-unlocated.json",
                "stac-check/sample_files/1.0.0/core-item-unlocated-null-bbox.json",
                "pystac/tests/data-files/examples/1.0.0-beta.2/item-spec/examples/null-geom-item.json",
            ],
            Accepted(Some(5)),
        ),
        (
            "datetime null with start/end",
            &["stac-spec/v1.0.0/examples/core-item.json"],
            Accepted(Some(1)),
        ),
        (
            "datetime null and no range",
            &[
                "cedadev-stac-generator/example/output/items/CMIP6.CMIP.MOHC.UKESM1-0-LL.Amon.tas.v20190502.json",
            ],
            Rejected(
                "field `properties.datetime`: is null, so `start_datetime` and `end_datetime` are required",
            ),
        ),
        (
            "no datetime at all",
            &[
                "stac-validator/tests/test_data/1beta2/extensions/pointcloud/examples/bad-example-autzen.json",
            ],
            Rejected("missing required field `properties.datetime`"),
        ),
        (
            "datetime and start/end together",
            &["pystac/tests/data-files/examples/0.9.0/item-spec/examples/datetimerange.json"],
            Accepted(Some(1)),
        ),
        (
            "non-RFC 3339 datetimes: space separator, no offset",
            &[
                "antimeridian/docs/examples/S3A_SL_2_LST_20160521T015552_20160521T033651_6059_004_217_____.json",
                "rustac/crates/core/data/invalid-datetimes.json",
                "rustac/crates/core/data/invalid-item-datetime.json",
                "stac-geoparquet/tests/data/sentinel-1-rtc-pc.json",
            ],
            Accepted(Some(7)),
        ),
        (
            "non-RFC 3339 datetimes: offset and Z together",
            &["stac-spec/v0.9.0/extensions/pointcloud/examples/example-autzen.json"],
            Rejected(
                "field `properties.datetime`: '2013-07-17T00:00:00-05:00Z' is not an RFC 3339 datetime",
            ),
        ),
        (
            "start_datetime after end_datetime",
            &["stac-server/tests/fixtures/stac/mapping-item1.json"],
            Rejected("field `properties.start_datetime`: is after `end_datetime`"),
        ),
        (
            "3-D bbox and 3-D coordinates",
            &[
                "stac-spec/v1.0.0-beta.2/extensions/pointcloud/examples/example-autzen.json",
                "stac-geoparquet/tests/data/3dep-lidar-copc-pc.json",
                "stac-geoparquet/tests/data/umbra-sar.json",
            ],
            Accepted(Some(7)),
        ),
        (
            "bbox south of its north edge",
            &["stac-spec/v1.0.0-beta.2/extensions/tiled-assets/examples/example-dimension.json"],
            Rejected("field `bbox`: its south edge is north of its north edge"),
        ),
        (
            "invalid JSON (trailing comma)",
            &["stac-spec/v0.9.0/extensions/label/examples/multidataset/zanzibar/znz029.json"],
            Rejected(":21: invalid JSON: trailing comma (column 7)"),
        ),
        (
            "missing or empty id",
            &[
                "stac-check/sample_files/1.0.0/bad-item.json",
                "rustac/crates/core/data/invalid-item.json",
            ],
            Rejected("id`"),
        ),
        (
            "missing geometry member",
            &["stac-validator/tests/test_data/1beta2/bad-sample-full.json"],
            Rejected("missing required field `geometry`"),
        ),
        (
            "same id in two collections",
            &["pgstac/src/pgstac/tests/testdata/items_duplicate_ids.ndjson"],
            Accepted(Some(2)),
        ),
        (
            "unknown top-level members",
            &["pgstac/src/pgstac/tests/testdata/items_private.ndjson"],
            Accepted(Some(100)),
        ),
        (
            "pre-1.0 documents without `type` (0.8.0 list extent, 0.8.1, 0.6 legacy)",
            &[
                "stac-server/tests/fixtures/stac/collectionNoChildren.json",
                "stac-spec/v0.8.1/collection-spec/examples/landsat-collection.json",
                "stac-migrate/tests/legacy/collection-sar-0.6.json",
                "stac-migrate/tests/legacy/item-minimal.json",
            ],
            Accepted(Some(1)),
        ),
        (
            "GeoJSON Feature without stac_version (label data)",
            &["pystac/tests/data-files/geojson/sample.geojson"],
            Rejected("not a STAC document: a GeoJSON Feature without `stac_version`"),
        ),
        (
            "collection extents: several bboxes, null bbox and interval",
            &[
                "pystac/tests/data-files/collections/multi-extent.json",
                "cedadev-stac-generator/example/output/collections/cmip6.json",
            ],
            Accepted(Some(0)),
        ),
        (
            "API responses (ItemCollection page, collections list)",
            &[
                "rustac/crates/io/mocks/items-page-1.json",
                "rustac/crates/io/mocks/collections-page-1.json",
                "stac-pydantic/tests/example_stac/example-collection-list.json",
            ],
            Accepted(Some(1)),
        ),
    ];
    for (class, files, expect) in classes {
        check_class(&data, class, files, *expect);
    }

    // Invalid polygons (unclosed, too few points, duplicates, winding) and the antimeridian
    // package's problem geometries (poles, holes, over 180, lines), each put in an item:
    // GeoJSON-valid structure is all stacdb checks, so all are stored as given.
    let dir = tempfile::tempdir().unwrap();
    let mut wrapped = wrap_geometries(
        &common::data_file(&data, "fixtures/stac-server/tests/fixtures/geometry"),
        dir.path(),
    );
    wrapped.extend(wrap_geometries(
        &common::data_file(&data, "fixtures/antimeridian/tests/data/input"),
        dir.path(),
    ));
    let (report, errors) = lenient(&wrapped, &[]);
    assert!(errors.is_empty(), "wrapped geometries rejected: {errors:#?}");
    assert_eq!(report["items"]["inserted"].as_u64(), Some(wrapped.len() as u64));

    // Duplicate ids in one collection (OpenAerialMap: 17,702 rows, 2,387 ids): insert mode
    // rejects every repeat, naming the line and the id; upsert keeps the last of each.
    let oam = common::data_file(&data, "bench/stac-fastapi-geoparquet/openaerialmap.ndjson.gz");
    let (insert, errors) = lenient(std::slice::from_ref(&oam), &[]);
    let duplicates = errors.iter().filter(|e| e.contains("duplicate: item '")).count();
    assert!(duplicates > 0 && errors.iter().all(|e| e.starts_with(&format!("{}:", oam.display()))));
    let (upsert, errors) = lenient(std::slice::from_ref(&oam), &["--mode", "upsert"]);
    assert!(errors.iter().all(|e| e.contains("is after `end_datetime`")), "{errors:?}");
    let stored = insert["items"]["inserted"].as_u64().unwrap();
    assert_eq!(stored, upsert["items"]["inserted"].as_u64().unwrap(), "one row per id");
    assert!(upsert["items"]["updated"].as_u64().unwrap() > 10_000, "{upsert}");
}
