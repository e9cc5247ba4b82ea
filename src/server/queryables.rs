//! Queryables: the JSON Schema that OGC API Features Part 3 and the STAC API Filter extension
//! serve at `/queryables` and `/collections/{collectionId}/queryables`.
//!
//! The properties are the core queryables the filter translation always knows (`id`,
//! `collection`, `geometry`, `datetime`, and `start_datetime` / `end_datetime` when items have
//! them), then every item property the catalog has learned at ingest, with the JSON types seen,
//! the numeric range and, for short scalar properties, the distinct values.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde_json::{Map, Value, json};

use crate::document::JsonType;
use crate::store::{MAX_ENUM_VALUES, QueryableStats};
use crate::{Catalog, Result};

/// The JSON Schema dialect of the document.
const JSON_SCHEMA: &str = "https://json-schema.org/draft/2019-09/schema";

/// The schema of a GeoJSON geometry.
const GEOMETRY_SCHEMA: &str = "https://geojson.org/schema/Geometry.json";

/// Well-known STAC fields that hold RFC 3339 date-times.
const DATE_TIME_FIELDS: [&str; 5] =
    ["datetime", "start_datetime", "end_datetime", "created", "updated"];

/// Free-text fields: their distinct values are never offered as an enumeration.
const FREE_TEXT_FIELDS: [&str; 3] = ["title", "description", "keywords"];

/// The queryables of one collection (`Some(id)`) or of the whole catalog (`None`), as a JSON
/// Schema whose `$id` is the URL it is served at under `base_url`.
///
/// For the whole catalog the learned properties of every collection are merged: their types
/// and ranges are unioned, and so are their values, which are dropped once there are more than
/// [`MAX_ENUM_VALUES`] of them. An unknown collection is [`crate::Error::CollectionNotFound`].
pub fn schema(catalog: &Catalog, collection: Option<&str>, base_url: &str) -> Result<Value> {
    let base = base_url.trim_end_matches('/');
    let (id, title, collection_ids, learned) = match collection {
        Some(collection) => {
            let document = catalog.collection_document(collection)?;
            let name = document.get("title").and_then(Value::as_str).unwrap_or(collection);
            (
                format!("{base}/collections/{}/queryables", super::encode(collection)),
                format!("Queryables for {name}"),
                vec![collection.to_string()],
                catalog.queryables(collection)?,
            )
        }
        None => {
            let meta = catalog.metadata()?;
            let name = meta.title.unwrap_or(meta.id);
            let ids = super::collection_ids(catalog)?;
            let mut learned = BTreeMap::new();
            for id in &ids {
                for (name, stats) in catalog.queryables(id)? {
                    match learned.entry(name) {
                        Entry::Vacant(entry) => {
                            entry.insert(stats);
                        }
                        Entry::Occupied(mut entry) => merge(entry.get_mut(), &stats),
                    }
                }
            }
            (format!("{base}/queryables"), format!("Queryables for {name}"), ids, learned)
        }
    };
    Ok(json!({
        "$schema": JSON_SCHEMA,
        "$id": id,
        "type": "object",
        "title": title,
        "properties": properties(&collection_ids, &learned),
        "additionalProperties": true,
    }))
}

/// Adds what another collection learned about a property to `stats`.
fn merge(stats: &mut QueryableStats, other: &QueryableStats) {
    stats.types.extend(other.types.iter().copied());
    stats.minimum = min_option(stats.minimum, other.minimum, f64::min);
    stats.maximum = min_option(stats.maximum, other.maximum, f64::max);
    stats.values = match (stats.values.take(), &other.values) {
        (Some(mut values), Some(more)) => {
            values.extend(more.iter().cloned());
            (values.len() <= MAX_ENUM_VALUES).then_some(values)
        }
        _ => None,
    };
}

/// Combines two optional numbers with `pick`, keeping whichever is there.
fn min_option(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

/// The `properties` member: the core queryables, then the learned ones by name.
fn properties(collection_ids: &[String], learned: &BTreeMap<String, QueryableStats>) -> Value {
    let mut properties = Map::new();
    properties.insert("id".into(), json!({"title": "Item ID", "type": "string"}));
    let mut collection = json!({"title": "Collection ID", "type": "string"});
    if !collection_ids.is_empty() && collection_ids.len() <= MAX_ENUM_VALUES {
        collection["enum"] = json!(collection_ids);
    }
    properties.insert("collection".into(), collection);
    properties
        .insert("geometry".into(), json!({"title": "Item Geometry", "$ref": GEOMETRY_SCHEMA}));
    properties.insert(
        "datetime".into(),
        json!({"title": "Datetime", "type": "string", "format": "date-time"}),
    );
    for (name, title) in [("start_datetime", "Start datetime"), ("end_datetime", "End datetime")] {
        if learned.contains_key(name) {
            properties.insert(
                name.into(),
                json!({"title": title, "type": "string", "format": "date-time"}),
            );
        }
    }
    for (name, stats) in learned {
        if !properties.contains_key(name) {
            properties.insert(name.clone(), property(name, stats));
        }
    }
    Value::Object(properties)
}

/// The schema of one learned property.
fn property(name: &str, stats: &QueryableStats) -> Value {
    let mut schema = Map::new();
    let types = type_names(stats);
    match types.as_slice() {
        [] => {}
        [single] => {
            schema.insert("type".into(), json!(single));
        }
        several => {
            schema.insert("type".into(), json!(several));
        }
    }
    let date_time = DATE_TIME_FIELDS.contains(&name) && types.contains(&"string");
    if date_time {
        schema.insert("format".into(), json!("date-time"));
    }
    let integer_only = types == ["integer"];
    if types.contains(&"integer") || types.contains(&"number") {
        if let Some(minimum) = stats.minimum {
            schema.insert("minimum".into(), number(minimum, integer_only));
        }
        if let Some(maximum) = stats.maximum {
            schema.insert("maximum".into(), number(maximum, integer_only));
        }
    }
    let scalar = stats.types.iter().all(|t| !matches!(t, JsonType::Array | JsonType::Object));
    if scalar
        && !date_time
        && !FREE_TEXT_FIELDS.contains(&name)
        && let Some(values) = &stats.values
    {
        let mut values: Vec<Value> =
            values.iter().filter_map(|text| serde_json::from_str(text).ok()).collect();
        values.sort_by(compare);
        values.dedup();
        if !values.is_empty() {
            schema.insert("enum".into(), Value::Array(values));
        }
    }
    Value::Object(schema)
}

/// The JSON Schema type names for the types seen: `null` only when nothing else was seen, and
/// `number` alone when both integers and other numbers were.
fn type_names(stats: &QueryableStats) -> Vec<&'static str> {
    let number = stats.types.contains(&JsonType::Number);
    let names: Vec<&'static str> = stats
        .types
        .iter()
        .filter(|t| **t != JsonType::Null && !(number && **t == JsonType::Integer))
        .map(|t| t.name())
        .collect();
    if names.is_empty() && stats.types.contains(&JsonType::Null) { vec!["null"] } else { names }
}

/// A bound as JSON: an integer when the property only holds integers and the bound is one.
fn number(n: f64, integer_only: bool) -> Value {
    if integer_only && n.fract() == 0.0 && n.abs() < 9.0e15 { json!(n as i64) } else { json!(n) }
}

/// Orders enumeration values: booleans, then numbers by value, then strings.
fn compare(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
        (Value::Number(a), Value::Number(b)) => {
            let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            a.total_cmp(&b)
        }
        (Value::String(a), Value::String(b)) => a.cmp(b),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;
    use crate::{Error, IngestOptions, Input, Silent};

    const BASE: &str = "http://localhost:8080";

    struct Fixture {
        _dir: tempfile::TempDir,
        catalog: Catalog,
    }

    /// A catalog holding `fixtures/demo`, plus the items of `extra` (NDJSON text) when given,
    /// their collections built from them.
    fn fixture(extra: Option<&str>) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut catalog = Catalog::create(dir.path().join("q.stacdb")).unwrap();
        let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
        catalog.ingest(&[Input::Path(demo)], &IngestOptions::default(), &Silent).unwrap();
        if let Some(text) = extra {
            let path = dir.path().join("extra.ndjson");
            std::fs::write(&path, text).unwrap();
            let options = IngestOptions { create_collections: true, ..Default::default() };
            catalog.ingest(&[Input::Path(path)], &options, &Silent).unwrap();
        }
        Fixture { _dir: dir, catalog }
    }

    fn item(collection: &str, id: &str, properties: Value) -> String {
        let mut properties = properties;
        properties["datetime"] = json!("2022-06-01T00:00:00Z");
        let item = json!({
            "type": "Feature", "stac_version": "1.1.0", "id": id, "collection": collection,
            "geometry": {"type": "Point", "coordinates": [10, 20]}, "bbox": [10, 20, 10, 20],
            "properties": properties, "links": [], "assets": {},
        });
        format!("{item}\n")
    }

    fn names(schema: &Value) -> Vec<&str> {
        schema["properties"].as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn collection_queryables() {
        let f = fixture(None);
        let schema = schema(&f.catalog, Some("demo-orthophotos"), &format!("{BASE}/")).unwrap();
        assert_eq!(schema["$schema"], JSON_SCHEMA);
        assert_eq!(schema["$id"], format!("{BASE}/collections/demo-orthophotos/queryables"));
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["title"], "Queryables for Demo orthophotos");
        assert_eq!(schema["additionalProperties"], true);
        assert_eq!(
            names(&schema)[..6],
            ["id", "collection", "geometry", "datetime", "start_datetime", "end_datetime"]
        );
        let p = &schema["properties"];
        assert_eq!(p["id"]["type"], "string");
        assert_eq!(
            p["collection"],
            json!({"title": "Collection ID", "type": "string", "enum": ["demo-orthophotos"]})
        );
        assert_eq!(p["geometry"]["$ref"], GEOMETRY_SCHEMA);
        for name in ["datetime", "start_datetime", "end_datetime"] {
            assert_eq!(p[name]["type"], "string", "{name}");
            assert_eq!(p[name]["format"], "date-time", "{name}");
            assert!(p[name].get("enum").is_none(), "{name}");
        }
        assert_eq!(
            p["gsd"],
            json!({"type": "number", "minimum": 0.3, "maximum": 0.6, "enum": [0.3, 0.6]})
        );
        assert_eq!(p["platform"], json!({"type": "string", "enum": ["plane-a", "plane-b"]}));
        assert_eq!(p["region"], json!({"type": "string", "enum": ["alps", "delta", "fiji"]}));
        assert_eq!(p["keywords"], json!({"type": "array"}));
        assert_eq!(p["title"], json!({"type": "string"}));
        assert_eq!(p["description"], json!({"type": "string"}));
        let cloud = &p["eo:cloud_cover"];
        assert_eq!(cloud["type"], "number");
        assert!(cloud["minimum"].as_f64().unwrap() <= cloud["maximum"].as_f64().unwrap());
        // Every learned property is there.
        let learned = f.catalog.queryables("demo-orthophotos").unwrap();
        for name in learned.keys() {
            assert!(p.get(name).is_some(), "{name} missing");
        }
    }

    #[test]
    fn unknown_collection() {
        let f = fixture(None);
        match schema(&f.catalog, Some("nope"), BASE) {
            Err(Error::CollectionNotFound(id)) => assert_eq!(id, "nope"),
            other => panic!("expected CollectionNotFound, got {other:?}"),
        }
    }

    #[test]
    fn catalog_queryables_merge_collections() {
        let mut extra = String::new();
        for i in 0..20 {
            extra += &item(
                "other",
                &format!("o{i}"),
                json!({
                    "gsd": 10 + i, "platform": "sat-x", "code": format!("b{i:02}"),
                    "orbit": i, "mixed": if i % 2 == 0 { json!("x") } else { json!(1.5) },
                    "nothing": null, "created": "2022-06-02T00:00:00Z", "flag": i % 2 == 0,
                }),
            );
        }
        // A third collection: 20 more values of `code`, so the union is past the limit.
        for i in 0..20 {
            extra += &item("third", &format!("t{i}"), json!({"code": format!("c{i:02}")}));
        }
        let f = fixture(Some(&extra));
        let schema = schema(&f.catalog, None, BASE).unwrap();
        assert_eq!(schema["$id"], format!("{BASE}/queryables"));
        let p = &schema["properties"];
        assert_eq!(p["collection"]["enum"], json!(["demo-orthophotos", "other", "third"]));
        // Integers and other numbers: a number, over both collections' range.
        assert_eq!(p["gsd"]["type"], "number");
        assert_eq!(p["gsd"]["minimum"], 0.3);
        assert_eq!(p["gsd"]["maximum"], 29.0);
        // 22 distinct values in all: still an enumeration, in numeric order.
        let gsd = p["gsd"]["enum"].as_array().unwrap();
        assert_eq!(
            (gsd.len(), &gsd[0], &gsd[2], &gsd[21]),
            (22, &json!(0.3), &json!(10), &json!(29))
        );
        assert_eq!(p["platform"]["enum"], json!(["plane-a", "plane-b", "sat-x"]));
        // 40 distinct codes: no enumeration.
        assert_eq!(p["code"], json!({"type": "string"}));
        assert_eq!(
            p["orbit"],
            json!({
                "type": "integer", "minimum": 0, "maximum": 19,
                "enum": (0..20).collect::<Vec<_>>(),
            })
        );
        assert_eq!(p["mixed"]["type"], json!(["number", "string"]));
        assert_eq!(p["mixed"]["enum"], json!([1.5, "x"]));
        assert_eq!(p["nothing"], json!({"type": "null"}));
        assert_eq!(p["created"], json!({"type": "string", "format": "date-time"}));
        assert_eq!(p["flag"], json!({"type": "boolean", "enum": [false, true]}));
        // The demo's properties are still there.
        assert_eq!(p["region"]["enum"], json!(["alps", "delta", "fiji"]));
        assert_eq!(p["start_datetime"]["format"], "date-time");

        // One collection alone is not merged with the others.
        let other = super::schema(&f.catalog, Some("other"), BASE).unwrap();
        assert_eq!(other["properties"]["gsd"]["type"], "integer");
        assert_eq!(other["properties"]["gsd"]["minimum"], 10);
        assert!(other["properties"].get("region").is_none());
        assert!(other["properties"].get("start_datetime").is_none());
    }

    #[test]
    fn empty_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Catalog::create(dir.path().join("e.stacdb")).unwrap();
        let schema = schema(&catalog, None, BASE).unwrap();
        assert_eq!(names(&schema), ["id", "collection", "geometry", "datetime"]);
        assert!(schema["properties"]["collection"].get("enum").is_none());
    }

    #[test]
    fn collection_ids_are_percent_encoded() {
        assert_eq!(crate::server::encode("a b/c~d_e.f-g"), "a%20b%2Fc~d_e.f-g");
        assert_eq!(crate::server::encode("é"), "%C3%A9");
    }

    #[test]
    fn types_and_bounds() {
        let stats = |types: &[JsonType]| QueryableStats {
            types: types.iter().copied().collect::<BTreeSet<_>>(),
            ..Default::default()
        };
        use JsonType::*;
        assert_eq!(type_names(&stats(&[Null])), ["null"]);
        assert_eq!(type_names(&stats(&[Null, String])), ["string"]);
        assert_eq!(type_names(&stats(&[Integer, Number])), ["number"]);
        assert_eq!(type_names(&stats(&[Integer])), ["integer"]);
        assert_eq!(type_names(&stats(&[Boolean, Array, Object])), ["boolean", "array", "object"]);
        assert_eq!(number(3.0, true), json!(3));
        assert_eq!(number(3.0, false), json!(3.0));
        assert_eq!(number(3.5, true), json!(3.5));
        let mut a = QueryableStats {
            minimum: Some(1.0),
            maximum: None,
            values: Some(["1".to_string()].into()),
            ..stats(&[Integer])
        };
        let b = QueryableStats {
            minimum: Some(0.5),
            maximum: Some(2.0),
            values: None,
            ..stats(&[Number])
        };
        merge(&mut a, &b);
        assert_eq!((a.minimum, a.maximum, a.values), (Some(0.5), Some(2.0), None));
        assert_eq!(a.types, BTreeSet::from([Integer, Number]));
    }
}
