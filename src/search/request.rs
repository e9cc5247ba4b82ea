//! A search request, checked: what [`crate::Catalog::search`] is asked, read from a STAC API
//! search body (`stac::api::Search`) plus the free-text `q` and the paging `token`.

use serde_json::{Map, Value, json};
use stac::api::{Direction, Search};

use super::fields::Fields;
use super::{SearchError, cql2sql};

/// Which language a filter is written in.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// CQL2 text.
    Text(String),
    /// CQL2 JSON.
    Json(Value),
}

/// Top-level members returned with any `include` list unless excluded by name.
pub const ALWAYS_INCLUDED: [&str; 4] = ["type", "stac_version", "id", "collection"];

/// How a request wrote `fields` (the fields extension gives each form its own meaning).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldsForm {
    /// The lists mean what they say: whole items when both are empty, the includes (minus the
    /// more specific excludes) when there are includes, and the default set minus the excludes
    /// when there are only excludes (as in a GET `fields=-a,-b`).
    #[default]
    Lists,
    /// `fields` was given but names nothing (`"fields": {}`): the default set.
    DefaultSet,
    /// A POST object with `exclude` and no `include` member: everything but the excludes.
    AllExcept,
}

/// One key of the order.
#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// The field as the client named it, without a leading `properties.`.
    pub field: String,
    /// Descending rather than ascending.
    pub descending: bool,
}

/// A checked search.
///
/// Build one with [`Request::from_search`] (from the `stac` crate's type, as a STAC API POST
/// body deserialises) or [`Request::from_json`]; both check every parameter and fail with a
/// [`SearchError`] that names it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    /// Boxes to search in, `[minx, miny, maxx, maxy]`: one, or two when the requested box
    /// crosses the antimeridian.
    pub bbox: Option<Vec<[f64; 4]>>,
    /// The bbox as requested (2-D or 3-D), for the fingerprint.
    pub bbox_requested: Option<Vec<f64>>,
    /// A GeoJSON geometry.
    pub intersects: Option<Value>,
    /// Start and end in microseconds; `None` for an open end.
    pub datetime: Option<(Option<i64>, Option<i64>)>,
    /// Item ids.
    pub ids: Vec<String>,
    /// Collection ids.
    pub collections: Vec<String>,
    /// A CQL2 filter.
    pub filter: Option<Filter>,
    /// A STACQL `query` object.
    pub query: Option<Map<String, Value>>,
    /// Free text.
    pub q: Option<String>,
    /// The order; empty for the default (newest first, then id).
    pub sortby: Vec<SortKey>,
    /// Which fields of each item to return.
    pub fields: Fields,
    /// How `fields` was written, which the lists alone cannot tell.
    pub fields_form: FieldsForm,
    /// Items per page; `None` for the caller's default.
    pub limit: Option<u64>,
    /// The paging token of the page to return.
    pub token: Option<String>,
}

impl Request {
    /// Reads a STAC API search body: the item-search fields, `filter` and `filter-lang`,
    /// `query`, `sortby`, `fields`, `q` (a string or an array of strings) and `token`.
    pub fn from_json(body: &Value) -> Result<Request, SearchError> {
        let Value::Object(object) = body else {
            return Err(SearchError::Parameter {
                name: "body",
                message: "a search must be a JSON object".into(),
            });
        };
        let mut object = object.clone();
        // Members the stac crate would read leniently or not at all are taken out first.
        // `next` is an older name of `token`.
        if !object.contains_key("token")
            && let Some(next) = object.remove("next")
        {
            object.insert("token".into(), next);
        }
        let filter = object.remove("filter");
        let filter_lang = object.remove("filter-lang");
        let bbox = object.remove("bbox");
        let limit = object.remove("limit");
        // A single id or collection given as a string is a list of one.
        for name in ["ids", "collections"] {
            if let Some(Value::String(one)) = object.get(name) {
                let list = Value::Array(vec![Value::String(one.clone())]);
                object.insert(name.into(), list);
            }
        }
        // `fields: null` says nothing usable; `include`/`exclude: null` are absent.
        match object.get_mut("fields") {
            Some(Value::Null) => {
                return Err(SearchError::Parameter {
                    name: "fields",
                    message: "must be an object with include and exclude lists, or a list".into(),
                });
            }
            Some(Value::Object(fields)) => {
                // An explicit `"include": null` is an empty include list (the default set
                // minus the excludes); a missing `include` means everything but the excludes.
                if fields.get("include").is_some_and(Value::is_null) {
                    fields.insert("include".into(), Value::Array(Vec::new()));
                }
                fields.retain(|_, v| !v.is_null());
            }
            _ => {}
        }
        let intersects = object.remove("intersects");
        let fields_form = match object.get("fields") {
            Some(Value::Object(f)) if !f.contains_key("include") && f.contains_key("exclude") => {
                FieldsForm::AllExcept
            }
            Some(Value::Object(f)) if f.is_empty() => FieldsForm::DefaultSet,
            Some(Value::Array(a)) if a.is_empty() => FieldsForm::DefaultSet,
            Some(Value::String(s)) if s.is_empty() => FieldsForm::DefaultSet,
            _ => FieldsForm::Lists,
        };
        let search: Search = serde_json::from_value(Value::Object(object)).map_err(|e| {
            SearchError::Parameter { name: "body", message: format!("not a STAC API search: {e}") }
        })?;
        let mut request = Request::from_search(&search)?;
        request.fields_form = fields_form;
        request.limit = match limit {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n >= 1) => n.as_u64(),
            Some(other) => {
                return Err(SearchError::Parameter {
                    name: "limit",
                    message: format!("must be a whole number of at least 1, not {other}"),
                });
            }
        };
        match intersects {
            None | Some(Value::Null) => {}
            Some(geometry) => {
                let is_geometry = geometry.get("type").and_then(Value::as_str).is_some_and(|t| {
                    matches!(
                        t,
                        "Point"
                            | "MultiPoint"
                            | "LineString"
                            | "MultiLineString"
                            | "Polygon"
                            | "MultiPolygon"
                            | "GeometryCollection"
                    )
                });
                if !is_geometry {
                    return Err(SearchError::Parameter {
                        name: "intersects",
                        message: "must be a GeoJSON geometry object (Point, LineString, Polygon, their Multi- forms or GeometryCollection), not a Feature or anything else".into(),
                    });
                }
                if bbox.as_ref().is_some_and(|b| !b.is_null()) {
                    return Err(SearchError::Parameter {
                        name: "intersects",
                        message: "bbox and intersects cannot be used together".into(),
                    });
                }
                let footprint =
                    crate::geometry::footprint(&geometry).map_err(|e| SearchError::Parameter {
                        name: "intersects",
                        message: format!("not a GeoJSON geometry: {e}"),
                    })?;
                check_coordinates("intersects", footprint.bounds)?;
                request.intersects = Some(geometry);
            }
        }
        match bbox {
            None | Some(Value::Null) => {}
            Some(Value::Array(values)) => {
                let numbers = values.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>();
                let numbers = numbers.ok_or_else(|| SearchError::Parameter {
                    name: "bbox",
                    message: "must be an array of 4 or 6 numbers".into(),
                })?;
                if request.intersects.is_some() {
                    return Err(SearchError::Parameter {
                        name: "intersects",
                        message: "bbox and intersects cannot be used together".into(),
                    });
                }
                request.bbox = Some(boxes(&numbers)?);
                request.bbox_requested = Some(numbers);
            }
            Some(_) => {
                return Err(SearchError::Parameter {
                    name: "bbox",
                    message: "must be an array of 4 or 6 numbers".into(),
                });
            }
        }
        let lang = match filter_lang {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                return Err(SearchError::Parameter {
                    name: "filter-lang",
                    message: "must be \"cql2-text\" or \"cql2-json\"".into(),
                });
            }
        };
        request.filter = filter_from(filter, lang.as_deref())?;
        Ok(request)
    }

    /// Checks a `stac::api::Search`. Its `additional_fields` may hold `q` and `token`.
    pub fn from_search(search: &Search) -> Result<Request, SearchError> {
        let items = &search.items;
        let mut request = Request {
            ids: search.ids.clone(),
            collections: search.collections.clone(),
            limit: items.limit,
            query: items.query.clone(),
            ..Request::default()
        };
        if let Some(bbox) = &items.bbox {
            let values: Vec<f64> = match serde_json::to_value(bbox) {
                Ok(Value::Array(v)) => v.iter().filter_map(Value::as_f64).collect(),
                _ => Vec::new(),
            };
            request.bbox = Some(boxes(&values)?);
            request.bbox_requested = Some(values);
        }
        if let Some(geometry) = &search.intersects {
            if request.bbox.is_some() {
                return Err(SearchError::Parameter {
                    name: "intersects",
                    message: "bbox and intersects cannot be used together".into(),
                });
            }
            let value = serde_json::to_value(geometry).unwrap_or(Value::Null);
            crate::geometry::footprint(&value).map_err(|e| SearchError::Parameter {
                name: "intersects",
                message: format!("not a GeoJSON geometry: {e}"),
            })?;
            request.intersects = Some(value);
        }
        if let Some(datetime) = &items.datetime {
            request.datetime = Some(parse_interval(datetime)?);
        }
        if let Some(limit) = items.limit
            && limit == 0
        {
            return Err(SearchError::Parameter {
                name: "limit",
                message: "must be at least 1".into(),
            });
        }
        for sortby in &items.sortby {
            let field = sortby.field.strip_prefix("properties.").unwrap_or(&sortby.field);
            if field.is_empty() {
                return Err(SearchError::Parameter {
                    name: "sortby",
                    message: "a sort field is empty".into(),
                });
            }
            request.sortby.push(SortKey {
                field: field.to_string(),
                descending: sortby.direction == Direction::Descending,
            });
        }
        if let Some(fields) = &items.fields {
            request.fields = Fields::new(fields.include.clone(), fields.exclude.clone());
            // With an include list, what makes a minimal item comes along unless excluded by
            // name: the fields extension allows it, and clients (pystac, stac-api-validator)
            // expect an item to keep its type, version, id and collection.
            if !request.fields.include.is_empty() {
                for name in ALWAYS_INCLUDED {
                    let named = |list: &[String]| list.iter().any(|n| n == name);
                    if !named(&request.fields.include) && !named(&request.fields.exclude) {
                        request.fields.include.push(name.to_string());
                    }
                }
            }
        }
        request.filter = match &items.filter {
            Some(stac::api::Filter::Cql2Text(text)) => Some(Filter::Text(text.clone())),
            Some(stac::api::Filter::Cql2Json(json)) => {
                Some(Filter::Json(Value::Object(json.clone())))
            }
            None => None,
        };
        let extra = &items.additional_fields;
        if request.filter.is_none()
            && let Some(filter) = extra.get("filter")
        {
            let lang = extra.get("filter-lang").and_then(Value::as_str);
            request.filter = filter_from(Some(filter.clone()), lang)?;
        }
        request.q = match extra.get("q") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(terms)) => Some(
                terms
                    .iter()
                    .map(Value::as_str)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| SearchError::Parameter {
                        name: "q",
                        message: "must be a string or an array of strings".into(),
                    })?
                    .join(","),
            ),
            Some(_) => {
                return Err(SearchError::Parameter {
                    name: "q",
                    message: "must be a string or an array of strings".into(),
                });
            }
        };
        request.token = match extra.get("token") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(SearchError::Parameter {
                    name: "token",
                    message: "must be a string".into(),
                });
            }
        };
        Ok(request)
    }

    /// The parts of the search that decide which items match and in which order, as one JSON
    /// value: what a paging token is tied to, with `order` the sort keys in effect (the
    /// default ones when the request names none). The limit and fields are not part of it.
    pub(crate) fn identity(&self, order: &[SortKey]) -> Value {
        let filter = match &self.filter {
            Some(Filter::Text(text)) => json!({"cql2-text": text}),
            Some(Filter::Json(json)) => json!({"cql2-json": json}),
            None => Value::Null,
        };
        let sortby: Vec<Value> = order
            .iter()
            .map(|k| json!([k.field, if k.descending { "desc" } else { "asc" }]))
            .collect();
        json!({
            "bbox": self.bbox_requested,
            "intersects": self.intersects,
            "datetime": self.datetime.map(|(s, e)| json!([s, e])),
            "ids": self.ids,
            "collections": self.collections,
            "filter": filter,
            "query": self.query,
            "q": self.q,
            "sortby": sortby,
        })
    }
}

fn filter_from(filter: Option<Value>, lang: Option<&str>) -> Result<Option<Filter>, SearchError> {
    let bad_lang = |lang: &str| SearchError::Parameter {
        name: "filter-lang",
        message: format!("'{lang}' is not \"cql2-text\" or \"cql2-json\""),
    };
    if let Some(lang) = lang
        && lang != "cql2-text"
        && lang != "cql2-json"
    {
        return Err(bad_lang(lang));
    }
    Ok(match (filter, lang) {
        (None | Some(Value::Null), _) => None,
        (Some(Value::String(text)), None | Some("cql2-text")) => Some(Filter::Text(text)),
        (Some(Value::String(text)), Some("cql2-json")) => {
            let json = serde_json::from_str(&text)
                .map_err(|e| SearchError::Filter(cql2sql::FilterError::Json(e.to_string())))?;
            Some(Filter::Json(json))
        }
        (Some(json @ Value::Object(_)), None | Some("cql2-json")) => Some(Filter::Json(json)),
        (Some(Value::Object(_)), Some("cql2-text")) => {
            return Err(SearchError::Parameter {
                name: "filter",
                message: "filter-lang is cql2-text but the filter is a JSON object".into(),
            });
        }
        (Some(_), Some(lang)) if lang != "cql2-text" && lang != "cql2-json" => {
            return Err(bad_lang(lang));
        }
        (Some(_), _) => {
            return Err(SearchError::Parameter {
                name: "filter",
                message: "must be CQL2 text (a string) or CQL2 JSON (an object)".into(),
            });
        }
    })
}

/// Refuses geometries whose coordinates lie far off the globe: longitudes beyond ±360 or
/// latitudes beyond ±90 (degenerate for the geometry predicates, and never meant).
pub fn check_coordinates(name: &'static str, bounds: Option<[f64; 4]>) -> Result<(), SearchError> {
    if let Some([minx, miny, maxx, maxy]) = bounds
        && (minx < -360.0 || maxx > 360.0 || miny < -90.0 || maxy > 90.0)
    {
        return Err(SearchError::Parameter {
            name,
            message: "coordinates must be longitudes within ±360 and latitudes within ±90".into(),
        });
    }
    Ok(())
}

/// A bbox written as text, `minx,miny,maxx,maxy` (or 6 numbers), as GET search and
/// `stacdb search --bbox` take it. The numbers are checked later, with the rest of the search.
pub fn bbox_from_text(text: &str) -> Result<Vec<f64>, SearchError> {
    text.split(',').map(|v| v.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(|_| {
        SearchError::Parameter {
            name: "bbox",
            message: format!("'{text}': expected 4 or 6 comma-separated numbers"),
        }
    })
}

/// A sortby written as text, `-datetime,+id,gsd` (`-` descending, `+` or nothing ascending),
/// as GET search and `stacdb search --sortby` take it, in the JSON form a POST body has.
pub fn sortby_from_text(text: &str) -> Value {
    text.split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| match k.strip_prefix('-') {
            Some(field) => json!({"field": field, "direction": "desc"}),
            None => json!({"field": k.strip_prefix('+').unwrap_or(k), "direction": "asc"}),
        })
        .collect()
}

/// Checks a bbox of 4 or 6 numbers and returns the 2-D boxes it covers: two when it crosses
/// the antimeridian (minx > maxx).
pub fn boxes(values: &[f64]) -> Result<Vec<[f64; 4]>, SearchError> {
    let bad = |message: String| SearchError::Parameter { name: "bbox", message };
    let [minx, miny, maxx, maxy] = match *values {
        [a, b, c, d] => [a, b, c, d],
        [a, b, _, d, e, _] => [a, b, d, e],
        _ => return Err(bad(format!("must have 4 or 6 numbers, not {}", values.len()))),
    };
    if values.iter().any(|v| !v.is_finite()) {
        return Err(bad("its numbers must be finite".into()));
    }
    if let [_, _, minz, _, _, maxz] = *values
        && minz > maxz
    {
        return Err(bad(format!("its minimum elevation {minz} is above its maximum {maxz}")));
    }
    if miny > maxy {
        return Err(bad(format!("its south edge {miny} is north of its north edge {maxy}")));
    }
    if !(-90.0..=90.0).contains(&miny) || !(-90.0..=90.0).contains(&maxy) {
        return Err(bad("latitudes must be between -90 and 90".into()));
    }
    if !(-180.0..=180.0).contains(&minx) || !(-180.0..=180.0).contains(&maxx) {
        return Err(bad("longitudes must be between -180 and 180".into()));
    }
    Ok(if minx > maxx {
        vec![[minx, miny, 180.0, maxy], [-180.0, miny, maxx, maxy]]
    } else {
        vec![[minx, miny, maxx, maxy]]
    })
}

/// Reads a STAC API `datetime`: an instant, or `start/end` where either end may be `..` or
/// empty (open). Returns microseconds since the epoch.
pub fn parse_interval(text: &str) -> Result<(Option<i64>, Option<i64>), SearchError> {
    let bad = |message: String| SearchError::Parameter { name: "datetime", message };
    let instant = |s: &str| -> Result<Option<i64>, SearchError> {
        let s = s.trim();
        if s.is_empty() || s == ".." {
            return Ok(None);
        }
        // RFC 3339 with its time zone (`Z` or an offset); a time without one is ambiguous.
        // Lower-case `t`/`z` and a space for `T` are accepted, as RFC 3339 allows.
        let normalized = s.replacen(' ', "T", 1).to_ascii_uppercase();
        chrono::DateTime::parse_from_rfc3339(&normalized).map(|t| Some(t.timestamp_micros())).map_err(
            |_| {
                bad(format!(
                    "'{s}' is not an RFC 3339 date-time with a time zone (such as 2021-06-01T00:00:00Z)"
                ))
            },
        )
    };
    match text.split_once('/') {
        None => {
            let t =
                instant(text)?.ok_or_else(|| bad("an instant must not be empty or '..'".into()))?;
            Ok((Some(t), Some(t)))
        }
        Some((start, end)) => {
            if end.contains('/') {
                return Err(bad(format!("'{text}' has more than one '/'")));
            }
            let (start, end) = (instant(start)?, instant(end)?);
            if start.is_none() && end.is_none() {
                return Err(bad(format!(
                    "'{text}' is open at both ends; leave datetime out instead"
                )));
            }
            if let (Some(s), Some(e)) = (start, end)
                && s > e
            {
                return Err(bad(format!("'{text}' starts after it ends")));
            }
            Ok((start, end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_entry_points_read_fields_q_and_token_alike() {
        let mut search = stac::api::Search::default();
        search.items.fields =
            Some(stac::api::Fields { include: vec!["properties.gsd".into()], exclude: vec![] });
        search.items.additional_fields.insert("q".into(), json!(["a", "b"]));
        let from_type = Request::from_search(&search).unwrap();
        let from_body = Request::from_json(&json!({
            "fields": {"include": ["properties.gsd"]}, "q": ["a", "b"]
        }))
        .unwrap();
        for request in [&from_type, &from_body] {
            assert_eq!(request.q.as_deref(), Some("a,b"));
            for name in ALWAYS_INCLUDED {
                assert!(request.fields.include.iter().any(|n| n == name), "{name}");
            }
        }
        // An excluded member is not added back.
        let r = Request::from_json(&json!({"fields": {"include": ["id"], "exclude": ["type"]}}))
            .unwrap();
        assert!(!r.fields.include.iter().any(|n| n == "type"));
        // `next` is read as `token`; a q or token of the wrong type is refused.
        assert_eq!(Request::from_json(&json!({"next": "t"})).unwrap().token.as_deref(), Some("t"));
        for bad in [json!({"q": 5}), json!({"q": ["a", 5]}), json!({"token": 5})] {
            assert!(Request::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_forms_of_bbox_and_sortby() {
        assert_eq!(bbox_from_text("1, 2,3,4").unwrap(), [1.0, 2.0, 3.0, 4.0]);
        assert!(bbox_from_text("1,2,x,4").unwrap_err().to_string().starts_with("bbox:"));
        assert_eq!(
            sortby_from_text("-datetime, +id,gsd,,"),
            json!([
                {"field": "datetime", "direction": "desc"},
                {"field": "id", "direction": "asc"},
                {"field": "gsd", "direction": "asc"}
            ])
        );
    }
}
