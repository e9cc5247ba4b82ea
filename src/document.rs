//! Recognising and normalising STAC documents.
//!
//! A parsed JSON value is recognised by its content: an Item, a Collection, a Catalog, a
//! FeatureCollection (ItemCollection), a `{"collections": [...]}` response, or a JSON array of
//! any of these. Each document is then checked and reduced to what the catalog stores: the
//! promoted columns, the geometry blob, the free-text fields and a summary of its properties.
//! The stored document is the input, re-serialised compactly with its key order and numbers
//! unchanged, so it reads back as equal JSON.

// A rejection carries its location, id and reason by value; it is the cold path, and boxing
// every DocError would only move the allocation.
#![allow(clippy::result_large_err)]

use chrono::{DateTime, NaiveDateTime, Utc};
use rayon::prelude::*;
use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{DocError, DocErrorKind, Location};
use crate::geometry::{self, Bbox};

/// A recognised, checked document.
#[derive(Debug)]
pub enum Doc {
    /// A STAC Item.
    Item(Box<ItemDoc>),
    /// A STAC Collection.
    Collection(CollectionDoc),
    /// A STAC Catalog.
    Catalog(CatalogDoc),
}

/// An item reduced to what the catalog stores.
#[derive(Debug, Clone)]
pub struct ItemDoc {
    /// Where it came from.
    pub location: Location,
    /// The item id.
    pub id: String,
    /// The item's `collection` field.
    pub collection: Option<String>,
    /// Start of the item's time, in microseconds since the epoch (UTC).
    pub start: i64,
    /// End of the item's time, in microseconds since the epoch (UTC).
    pub end: i64,
    /// The item's 2-D bbox as given, or computed from its geometry when it has none.
    pub bbox: Option<Bbox>,
    /// The box the R-tree holds: the globe box of the bbox joined with the geometry's bounds.
    /// `None` for null geometry.
    pub index_box: Option<Bbox>,
    /// GeoPackage geometry blob; `None` for null geometry.
    pub geometry: Option<Vec<u8>>,
    /// The document as compact JSON text.
    pub content: String,
    /// The free-text fields.
    pub text: SearchText,
    /// One entry per top-level property.
    pub properties: Vec<PropertySummary>,
    /// The values of the typed, indexed property columns, in [`INDEXED_PROPERTIES`] order.
    pub indexed: [Indexed; 4],
}

/// The properties stored in typed, indexed columns of `items` (schema step 3), in column order:
/// the property, its column, and whether the column holds numbers (else strings).
pub const INDEXED_PROPERTIES: [(&str, &str, bool); 4] = [
    ("eo:cloud_cover", "p_eo_cloud_cover", true),
    ("gsd", "p_gsd", true),
    ("platform", "p_platform", false),
    ("constellation", "p_constellation", false),
];

/// The value of a typed property column: the property's value when it has the column's JSON
/// type, nothing otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Indexed {
    /// Missing, null, or of another type.
    None,
    /// A number column's value.
    Number(f64),
    /// A string column's value.
    Text(String),
}

/// The typed column values of an item's properties.
pub fn indexed_values(properties: &Map<String, Value>) -> [Indexed; 4] {
    INDEXED_PROPERTIES.map(|(name, _, numeric)| match properties.get(name) {
        Some(Value::Number(n)) if numeric => n.as_f64().map_or(Indexed::None, Indexed::Number),
        Some(Value::String(s)) if !numeric => Indexed::Text(s.clone()),
        _ => Indexed::None,
    })
}

/// A collection document.
#[derive(Debug, Clone)]
pub struct CollectionDoc {
    /// Where it came from.
    pub location: Location,
    /// The collection id.
    pub id: String,
    /// The document as compact JSON text.
    pub content: String,
}

/// A catalog document.
#[derive(Debug, Clone)]
pub struct CatalogDoc {
    /// Where it came from.
    pub location: Location,
    /// The catalog id.
    pub id: String,
}

/// The text the full-text index holds for an item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchText {
    /// `properties.title`.
    pub title: Option<String>,
    /// `properties.description`.
    pub description: Option<String>,
    /// `properties.keywords`, joined by spaces.
    pub keywords: Option<String>,
}

/// The JSON type of a property value, as the queryables table records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JsonType {
    /// `null`
    Null,
    /// `true` or `false`
    Boolean,
    /// a whole number
    Integer,
    /// any other number
    Number,
    /// a string
    String,
    /// an array
    Array,
    /// an object
    Object,
}

impl JsonType {
    /// The JSON Schema name of the type.
    pub fn name(self) -> &'static str {
        match self {
            JsonType::Null => "null",
            JsonType::Boolean => "boolean",
            JsonType::Integer => "integer",
            JsonType::Number => "number",
            JsonType::String => "string",
            JsonType::Array => "array",
            JsonType::Object => "object",
        }
    }

    /// Parses a JSON Schema type name.
    pub fn from_name(name: &str) -> Option<JsonType> {
        Some(match name {
            "null" => JsonType::Null,
            "boolean" => JsonType::Boolean,
            "integer" => JsonType::Integer,
            "number" => JsonType::Number,
            "string" => JsonType::String,
            "array" => JsonType::Array,
            "object" => JsonType::Object,
            _ => return None,
        })
    }

    fn of(value: &Value) -> JsonType {
        match value {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => JsonType::Integer,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }
}

/// Scalar values longer than this (as JSON text) are never listed as enumeration values.
pub const MAX_ENUM_VALUE_LEN: usize = 64;

/// What the queryables table learns from one property of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertySummary {
    /// The property name.
    pub name: String,
    /// Its JSON type.
    pub json_type: JsonType,
    /// Its value, when it is a number.
    pub number: Option<f64>,
    /// Its value as JSON text, when it is a short scalar (a candidate enumeration value).
    pub scalar: Option<String>,
}

/// Splits a parsed JSON value into its documents and normalises each.
///
/// `location` is where the value came from; documents inside a FeatureCollection, an array or
/// a collections list get a JSON pointer added to it.
pub fn documents(value: Value, location: &Location) -> Vec<Result<Doc, DocError>> {
    let at = |pointer: String| Location { pointer: Some(pointer), ..location.clone() };
    match value {
        Value::Array(values) => values
            .into_par_iter()
            .enumerate()
            .map(|(i, v)| normalize(v, at(format!("/{i}"))))
            .collect(),
        Value::Object(mut object) => {
            if object.get("type").and_then(Value::as_str) == Some("FeatureCollection") {
                match object.remove("features") {
                    Some(Value::Array(features)) => features
                        .into_par_iter()
                        .enumerate()
                        .map(|(i, v)| normalize(v, at(format!("/features/{i}"))))
                        .collect(),
                    _ => vec![Err(reject(
                        location,
                        None,
                        DocErrorKind::InvalidField {
                            field: "features".into(),
                            reason: "a FeatureCollection needs a `features` array".into(),
                        },
                    ))],
                }
            } else if !object.contains_key("type")
                && let Some(Value::Array(_)) = object.get("collections")
            {
                let Some(Value::Array(collections)) = object.remove("collections") else {
                    unreachable!("checked above")
                };
                collections
                    .into_par_iter()
                    .enumerate()
                    .map(|(i, v)| normalize(v, at(format!("/collections/{i}"))))
                    .collect()
            } else {
                vec![normalize(Value::Object(object), location.clone())]
            }
        }
        other => vec![Err(reject(
            location,
            None,
            DocErrorKind::NotStac(format!("expected a JSON object, found {}", json_kind(&other))),
        ))],
    }
}

/// Normalises one document.
pub fn normalize(value: Value, location: Location) -> Result<Doc, DocError> {
    let Value::Object(object) = value else {
        return Err(reject(
            &location,
            None,
            DocErrorKind::NotStac(format!("expected a JSON object, found {}", json_kind(&value))),
        ));
    };
    let id = object.get("id").and_then(Value::as_str).map(str::to_string);
    let kind = recognise(&object).map_err(|reason| reject(&location, id.clone(), reason))?;
    match kind {
        Kind::Item => item(object, location).map(|i| Doc::Item(Box::new(i))),
        Kind::Collection => {
            let id = required_id(&object).map_err(|r| reject(&location, None, r))?;
            Ok(Doc::Collection(CollectionDoc { content: compact(&object), location, id }))
        }
        Kind::Catalog => {
            let id = required_id(&object).map_err(|r| reject(&location, None, r))?;
            Ok(Doc::Catalog(CatalogDoc { location, id }))
        }
    }
}

enum Kind {
    Item,
    Collection,
    Catalog,
}

/// Tells which kind of STAC document an object is. Documents before STAC 1.0 may lack `type`
/// on collections and catalogs; they are told apart by `extent`.
fn recognise(object: &Map<String, Value>) -> Result<Kind, DocErrorKind> {
    let has_version = matches!(object.get("stac_version"), Some(Value::String(_)));
    match object.get("type") {
        Some(Value::String(t)) if t == "Feature" => {
            if has_version {
                Ok(Kind::Item)
            } else {
                Err(DocErrorKind::NotStac("a GeoJSON Feature without `stac_version`".into()))
            }
        }
        Some(Value::String(t)) if t == "Collection" => Ok(Kind::Collection),
        Some(Value::String(t)) if t == "Catalog" => Ok(Kind::Catalog),
        Some(Value::String(t)) => Err(DocErrorKind::NotStac(format!("unknown `type` '{t}'"))),
        Some(other) => Err(DocErrorKind::NotStac(format!(
            "`type` must be a string, found {}",
            json_kind(other)
        ))),
        None if has_version && object.contains_key("extent") => Ok(Kind::Collection),
        None if has_version && object.contains_key("links") => Ok(Kind::Catalog),
        None => Err(DocErrorKind::NotStac("no `type` and no `stac_version`".into())),
    }
}

fn required_id(object: &Map<String, Value>) -> Result<String, DocErrorKind> {
    match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => Ok(id.clone()),
        Some(Value::String(_)) => Err(invalid("id", "must not be empty")),
        None | Some(Value::Null) => Err(DocErrorKind::MissingField("id")),
        Some(other) => Err(invalid("id", format!("must be a string, found {}", json_kind(other)))),
    }
}

fn item(object: Map<String, Value>, location: Location) -> Result<ItemDoc, DocError> {
    let fail = |id: Option<String>, reason| reject(&location, id, reason);
    let id = required_id(&object).map_err(|r| fail(None, r))?;
    let fail = |reason| reject(&location, Some(id.clone()), reason);
    let collection = match object.get("collection") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if !c.is_empty() => Some(c.clone()),
        Some(Value::String(_)) => return Err(fail(invalid("collection", "must not be empty"))),
        Some(other) => {
            return Err(fail(invalid(
                "collection",
                format!("must be a string, found {}", json_kind(other)),
            )));
        }
    };
    let properties = match object.get("properties") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => return Err(fail(DocErrorKind::MissingField("properties"))),
        Some(other) => {
            return Err(fail(invalid(
                "properties",
                format!("must be an object, found {}", json_kind(other)),
            )));
        }
    };
    let footprint = match object.get("geometry") {
        None => return Err(fail(DocErrorKind::MissingField("geometry"))),
        Some(Value::Null) => None,
        Some(value) => Some(geometry::footprint(value).map_err(|e| fail(bad_geometry(e)))?),
    };
    let given_bbox = match object.get("bbox") {
        None | Some(Value::Null) => None,
        Some(value) => Some(bbox(value).map_err(fail)?),
    };
    let content = compact(&object);
    let parts = ItemParts { id, collection, properties, footprint, given_bbox, content };
    build_item(parts, location)
}

/// The fields of an item that stacdb reads. Everything else (assets, links, …) is skipped by
/// the parser without being built, which is most of an item's bytes.
#[derive(serde::Deserialize)]
struct ItemFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    #[allow(dead_code)] // read only to require a string
    stac_version: Cow<'a, str>,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    collection: Option<Cow<'a, str>>,
    #[serde(borrow)]
    geometry: &'a RawValue,
    #[serde(default)]
    bbox: Option<Vec<f64>>,
    properties: Map<String, Value>,
}

/// Normalises an NDJSON line that holds one valid item, keeping the line itself as the stored
/// document. Returns `None` for anything else (a collection, an invalid item, …): the caller
/// then takes the general path through [`documents`], which gives the precise error. Both
/// paths build the item with the same code, so they agree on everything but the JSON text.
pub fn fast_item(line: &[u8], location: &Location) -> Option<ItemDoc> {
    let text = std::str::from_utf8(line).ok()?.trim_ascii();
    let fields: ItemFields<'_> = serde_json::from_str(text).ok()?;
    if fields.kind != "Feature" || fields.id.is_empty() {
        return None;
    }
    let collection = match fields.collection {
        Some(c) if c.is_empty() => return None,
        c => c.map(Cow::into_owned),
    };
    let footprint = match fields.geometry.get() {
        "null" => None,
        text => Some(geometry::footprint_from_str(text).ok()?),
    };
    let given_bbox = match fields.bbox {
        Some(numbers) => Some(bbox_from_numbers(&numbers).ok()?),
        None => None,
    };
    let parts = ItemParts {
        id: fields.id.into_owned(),
        collection,
        properties: &fields.properties,
        footprint,
        given_bbox,
        content: text.to_string(),
    };
    build_item(parts, location.clone()).ok()
}

/// An item's fields, read and checked one by one.
struct ItemParts<'p> {
    id: String,
    collection: Option<String>,
    properties: &'p Map<String, Value>,
    footprint: Option<geometry::Footprint>,
    given_bbox: Option<Bbox>,
    content: String,
}

/// Derives what the catalog stores for an item from its checked fields.
fn build_item(parts: ItemParts<'_>, location: Location) -> Result<ItemDoc, DocError> {
    let ItemParts { id, collection, properties, footprint, given_bbox, content } = parts;
    let (start, end) = item_time(properties).map_err(|r| reject(&location, Some(id.clone()), r))?;
    let bounds = footprint.as_ref().and_then(|f| f.bounds);
    let bbox = given_bbox.or(bounds);
    let index_box = footprint.as_ref().and_then(|_| {
        let from_bbox = given_bbox.map(geometry::globe_box);
        let from_geometry = bounds.map(geometry::globe_box);
        match (from_bbox, from_geometry) {
            (Some(a), Some(b)) => Some(geometry::union(a, b)),
            (a, b) => a.or(b),
        }
    });
    Ok(ItemDoc {
        content,
        location,
        id,
        collection,
        start,
        end,
        bbox,
        index_box,
        geometry: footprint.map(|f| f.blob),
        text: search_text(properties),
        properties: summarize(properties),
        indexed: indexed_values(properties),
    })
}

fn bad_geometry(e: String) -> DocErrorKind {
    invalid("geometry", format!("not a GeoJSON geometry: {e}"))
}

/// The item's time span: `start_datetime`/`end_datetime` when given, else `datetime` for both.
pub fn item_time(properties: &Map<String, Value>) -> Result<(i64, i64), DocErrorKind> {
    let datetime = datetime_field(properties, "datetime")?;
    let start = datetime_field(properties, "start_datetime")?;
    let end = datetime_field(properties, "end_datetime")?;
    let (Some(start), Some(end)) = (start.or(datetime), end.or(datetime)) else {
        return Err(match (datetime, start, end) {
            (None, None, None) if !properties.contains_key("datetime") => {
                DocErrorKind::MissingField("properties.datetime")
            }
            (None, None, None) => invalid(
                "properties.datetime",
                "is null, so `start_datetime` and `end_datetime` are required",
            ),
            (None, Some(_), None) => invalid(
                "properties.end_datetime",
                "is required with `start_datetime` when `datetime` is null",
            ),
            _ => invalid(
                "properties.start_datetime",
                "is required with `end_datetime` when `datetime` is null",
            ),
        });
    };
    if start > end {
        return Err(invalid("properties.start_datetime", "is after `end_datetime`"));
    }
    Ok((start, end))
}

fn datetime_field(
    properties: &Map<String, Value>,
    name: &str,
) -> Result<Option<i64>, DocErrorKind> {
    match properties.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            parse_datetime(s).map(|dt| Some(dt.timestamp_micros())).ok_or_else(|| {
                invalid(format!("properties.{name}"), format!("'{s}' is not an RFC 3339 datetime"))
            })
        }
        Some(other) => Err(invalid(
            format!("properties.{name}"),
            format!("must be a string, found {}", json_kind(other)),
        )),
    }
}

/// Parses a datetime the way stacdb accepts them: RFC 3339 (with `T`, `t` or a space between
/// date and time), or a date and time with no offset, which is taken as UTC.
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.to_utc());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(s, format).ok())
        .map(|naive| naive.and_utc())
}

/// Formats microseconds since the epoch as RFC 3339 in UTC.
pub fn format_micros(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|dt| dt.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

fn bbox(value: &Value) -> Result<Bbox, DocErrorKind> {
    let Value::Array(values) = value else {
        return Err(invalid("bbox", format!("must be an array, found {}", json_kind(value))));
    };
    let numbers: Option<Vec<f64>> = values.iter().map(Value::as_f64).collect();
    let Some(numbers) = numbers else {
        return Err(invalid("bbox", "must hold only numbers"));
    };
    bbox_from_numbers(&numbers)
}

fn bbox_from_numbers(numbers: &[f64]) -> Result<Bbox, DocErrorKind> {
    let b = match numbers.len() {
        4 => [numbers[0], numbers[1], numbers[2], numbers[3]],
        // a 3-D bbox is [minx, miny, minz, maxx, maxy, maxz]; the index keeps its 2-D part
        6 => [numbers[0], numbers[1], numbers[3], numbers[4]],
        n => return Err(invalid("bbox", format!("must have 4 or 6 numbers, found {n}"))),
    };
    if b[1] > b[3] {
        return Err(invalid("bbox", "its south edge is north of its north edge"));
    }
    Ok(b)
}

/// The free-text fields of an item.
pub fn search_text(properties: &Map<String, Value>) -> SearchText {
    let string = |name| properties.get(name).and_then(Value::as_str).map(str::to_string);
    let keywords = match properties.get("keywords") {
        Some(Value::Array(words)) => {
            let words: Vec<&str> = words.iter().filter_map(Value::as_str).collect();
            (!words.is_empty()).then(|| words.join(" "))
        }
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    SearchText { title: string("title"), description: string("description"), keywords }
}

/// One summary per top-level property, for the queryables table.
pub fn summarize(properties: &Map<String, Value>) -> Vec<PropertySummary> {
    properties
        .iter()
        .map(|(name, value)| {
            let json_type = JsonType::of(value);
            let scalar = match value {
                Value::Bool(_) | Value::Number(_) | Value::String(_) => {
                    let text = value.to_string();
                    (text.len() <= MAX_ENUM_VALUE_LEN).then_some(text)
                }
                _ => None,
            };
            PropertySummary { name: name.clone(), json_type, number: value.as_f64(), scalar }
        })
        .collect()
}

/// Serialises a document compactly. Key order and number text are kept (serde_json's
/// `preserve_order` and `float_roundtrip` features), so it parses back to an equal value.
pub fn compact(object: &Map<String, Value>) -> String {
    serde_json::to_string(object).expect("a JSON map always serialises")
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> DocErrorKind {
    DocErrorKind::InvalidField { field: field.into(), reason: reason.into() }
}

fn reject(location: &Location, id: Option<String>, reason: DocErrorKind) -> DocError {
    DocError { location: location.clone(), id, reason }
}

/// "an array", "a string", … for messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn loc() -> Location {
        Location::file("test.json")
    }

    fn item_json(properties: Value) -> Value {
        json!({"type": "Feature", "stac_version": "1.0.0", "id": "a", "geometry": null,
               "properties": properties, "links": [], "assets": {}})
    }

    #[test]
    fn datetime_only_sets_start_and_end() {
        let Doc::Item(item) =
            normalize(item_json(json!({"datetime": "2020-01-01T00:00:00Z"})), loc()).unwrap()
        else {
            panic!("not an item")
        };
        assert_eq!(item.start, 1_577_836_800_000_000);
        assert_eq!(item.start, item.end);
    }

    #[test]
    fn range_wins_over_datetime() {
        let value = item_json(json!({"datetime": "2020-01-02T00:00:00Z",
            "start_datetime": "2020-01-01T00:00:00Z", "end_datetime": "2020-01-03T00:00:00Z"}));
        let Doc::Item(item) = normalize(value, loc()).unwrap() else { panic!() };
        assert!(item.start < item.end);
        assert_eq!(format_micros(item.end), "2020-01-03T00:00:00Z");
    }

    #[test]
    fn null_datetime_without_range_is_rejected() {
        let err = normalize(item_json(json!({"datetime": null})), loc()).unwrap_err();
        assert!(err.to_string().contains("properties.datetime"), "{err}");
        assert!(err.to_string().starts_with("test.json: 'a': "), "{err}");
    }

    #[test]
    fn lenient_datetimes() {
        assert!(parse_datetime("2016-05-21 03:36:50.747700+00:00").is_some());
        assert!(parse_datetime("2023-06-14T11:08:44.039000").is_some());
        assert!(parse_datetime("2013-07-17T00:00:00-05:00Z").is_none());
        assert!(parse_datetime("2020-01-01").is_none());
    }

    #[test]
    fn pre_1_0_collection_without_type_is_recognised() {
        let value = json!({"stac_version": "0.8.1", "id": "c", "description": "d",
                           "license": "x", "extent": {}, "links": []});
        assert!(matches!(normalize(value, loc()).unwrap(), Doc::Collection(_)));
    }

    #[test]
    fn feature_without_stac_version_is_not_stac() {
        let value = json!({"type": "Feature", "id": "x", "geometry": null, "properties": {}});
        let err = normalize(value, loc()).unwrap_err();
        assert!(matches!(err.reason, DocErrorKind::NotStac(_)));
    }

    #[test]
    fn feature_collection_members_get_pointers() {
        let value = json!({"type": "FeatureCollection", "features": [
            item_json(json!({"datetime": "2020-01-01T00:00:00Z"})), {"type": "Feature"}]});
        let docs = documents(value, &loc());
        assert!(docs[0].is_ok());
        let err = docs[1].as_ref().unwrap_err();
        assert_eq!(err.location.pointer.as_deref(), Some("/features/1"));
    }

    #[test]
    fn antimeridian_bbox_is_kept_and_indexed_full_width() {
        let mut value = item_json(json!({"datetime": "2020-01-01T00:00:00Z"}));
        value["geometry"] = json!({"type": "MultiPolygon", "coordinates": [
            [[[179, 0], [180, 0], [180, 1], [179, 1], [179, 0]]],
            [[[-180, 0], [-179, 0], [-179, 1], [-180, 1], [-180, 0]]]]});
        value["bbox"] = json!([179, 0, -179, 1]);
        let Doc::Item(item) = normalize(value, loc()).unwrap() else { panic!() };
        assert_eq!(item.bbox, Some([179.0, 0.0, -179.0, 1.0]));
        assert_eq!(item.index_box, Some([-180.0, 0.0, 180.0, 1.0]));
    }

    #[test]
    fn three_d_bbox_keeps_2d_part() {
        let mut value = item_json(json!({"datetime": "2020-01-01T00:00:00Z"}));
        value["geometry"] = json!({"type": "Point", "coordinates": [1, 2, 3]});
        value["bbox"] = json!([1, 2, 3, 1, 2, 3]);
        let Doc::Item(item) = normalize(value, loc()).unwrap() else { panic!() };
        assert_eq!(item.bbox, Some([1.0, 2.0, 1.0, 2.0]));
    }
}
