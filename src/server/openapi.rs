//! The API's description: an OpenAPI 3.0 document (served at `/api`) and the same document
//! rendered as a self-contained HTML page (served at `/api.html`; nothing loaded from the
//! network).

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

const JSON: &str = "application/json";
const GEOJSON: &str = "application/geo+json";
const SCHEMA_JSON: &str = "application/schema+json";
const OPENAPI: &str = "application/vnd.oai.openapi+json;version=3.0";
const HTML: &str = "text/html";

/// The OpenAPI 3.0.3 document of the API served under `base_url`.
pub fn document(base_url: &str) -> Value {
    let base = base_url.trim_end_matches('/');
    let base = if base.is_empty() { "/" } else { base };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "stacdb STAC API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A read-only STAC API over one stacdb catalog file: the landing \
                page, collections, items, item search (GET and POST) with the filter (CQL2 text \
                and JSON), sort, fields, query and free-text extensions, and queryables.",
            "license": {"name": "MIT OR Apache-2.0"},
        },
        "servers": [{"url": base}],
        "tags": [
            {"name": "Core", "description": "The landing page, conformance and this document."},
            {"name": "Collections", "description": "The catalog's collections."},
            {"name": "Features", "description": "The items of one collection."},
            {"name": "Item Search", "description": "Searching items across collections."},
            {"name": "Filter", "description": "What items can be filtered on."},
        ],
        "paths": paths(),
        "components": components(),
    })
}

/// An operation: its summary, tag, parameters (as `$ref`s to components or inline) and
/// responses.
fn operation(
    id: &str,
    tag: &str,
    summary: &str,
    description: &str,
    parameters: Vec<Value>,
    responses: Value,
) -> Value {
    let mut op = json!({
        "operationId": id,
        "tags": [tag],
        "summary": summary,
        "description": description,
    });
    if !parameters.is_empty() {
        op["parameters"] = Value::Array(parameters);
    }
    op["responses"] = responses;
    op
}

fn parameter(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

fn parameters(names: &[&str]) -> Vec<Value> {
    names.iter().map(|n| parameter(n)).collect()
}

/// The responses of an operation: 200 with `schema` as `media`, then the given error
/// responses (by component name) and always 405 and 503.
fn responses(description: &str, media: &str, schema: Value, errors: &[&str]) -> Value {
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({"description": description, "content": {media: {"schema": schema}}}),
    );
    for (status, name) in errors.iter().map(|e| error_status(e)) {
        responses.insert(status.into(), json!({"$ref": format!("#/components/responses/{name}")}));
    }
    for name in ["MethodNotAllowed", "ServiceUnavailable"] {
        let (status, name) = error_status(name);
        responses.insert(status.into(), json!({"$ref": format!("#/components/responses/{name}")}));
    }
    Value::Object(responses)
}

fn error_status(name: &str) -> (&'static str, &str) {
    let status = match name {
        "BadRequest" => "400",
        "NotFound" => "404",
        "MethodNotAllowed" => "405",
        "PayloadTooLarge" => "413",
        _ => "503",
    };
    (status, name)
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The query parameters of item search with GET, and those of a collection's items (which
/// has no `collections`).
const ITEMS_PARAMETERS: [&str; 12] = [
    "bbox",
    "datetime",
    "limit",
    "ids",
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
    "fields",
    "query",
    "q",
    "token",
];

fn paths() -> Value {
    let mut search_parameters = parameters(&["collections", "intersects"]);
    search_parameters.extend(parameters(&ITEMS_PARAMETERS));
    let mut items_parameters = parameters(&["collectionId"]);
    items_parameters.extend(parameters(&ITEMS_PARAMETERS));
    json!({
        "/": {"get": operation(
            "getLandingPage", "Core", "Landing page",
            "The root STAC Catalog: the catalog's id, title and description, the conformance \
             classes, and links to the API's resources and to each collection.",
            vec![],
            responses("The landing page (a STAC Catalog).", JSON, schema_ref("LandingPage"), &[]),
        )},
        "/conformance": {"get": operation(
            "getConformance", "Core", "Conformance classes",
            "The conformance classes this API implements.",
            vec![],
            responses("The conformance classes.", JSON, schema_ref("Conformance"), &[]),
        )},
        "/api": {"get": operation(
            "getOpenApi", "Core", "This API description",
            "This OpenAPI 3.0 document.",
            vec![],
            responses("The OpenAPI document.", OPENAPI, json!({"type": "object"}), &[]),
        )},
        "/api.html": {"get": operation(
            "getOpenApiHtml", "Core", "This API description as HTML",
            "This OpenAPI document rendered as a web page.",
            vec![],
            responses("The API description as HTML.", HTML, json!({"type": "string"}), &[]),
        )},
        "/collections": {"get": operation(
            "getCollections", "Collections", "Collections",
            "Every collection in the catalog, each with its current extent.",
            vec![],
            responses("The collections.", JSON, schema_ref("Collections"), &[]),
        )},
        "/collections/{collectionId}": {"get": operation(
            "getCollection", "Collections", "One collection",
            "A STAC Collection: as it was ingested, with the API's links and, when it has items, \
             the extent of its items.",
            parameters(&["collectionId"]),
            responses("The collection.", JSON, schema_ref("Collection"), &["NotFound"]),
        )},
        "/collections/{collectionId}/items": {"get": operation(
            "getFeatures", "Features", "Items of one collection",
            "A page of the collection's items, filtered and sorted like item search. The \
             `next` link carries the token of the following page.",
            items_parameters,
            responses(
                "A page of items (an ItemCollection).", GEOJSON, schema_ref("ItemCollection"),
                &["BadRequest", "NotFound"],
            ),
        )},
        "/collections/{collectionId}/items/{itemId}": {"get": operation(
            "getFeature", "Features", "One item",
            "A STAC Item, exactly as it was ingested, with the API's links.",
            parameters(&["collectionId", "itemId"]),
            responses("The item.", GEOJSON, schema_ref("Item"), &["NotFound"]),
        )},
        "/search": {
            "get": operation(
                "getItemSearch", "Item Search", "Search items (GET)",
                "A page of the items that match every given parameter, across collections. \
                 The `next` link carries the token of the following page.",
                search_parameters,
                responses(
                    "A page of items (an ItemCollection).", GEOJSON, schema_ref("ItemCollection"),
                    &["BadRequest"],
                ),
            ),
            "post": {
                "operationId": "postItemSearch",
                "tags": ["Item Search"],
                "summary": "Search items (POST)",
                "description": "Item search with the parameters in a JSON body. The `next` link \
                    has `method` POST and a `body` holding the token, to merge into this body.",
                "requestBody": {
                    "required": false,
                    "content": {JSON: {"schema": schema_ref("SearchBody")}},
                },
                "responses": responses(
                    "A page of items (an ItemCollection).", GEOJSON, schema_ref("ItemCollection"),
                    &["BadRequest", "PayloadTooLarge"],
                ),
            },
        },
        "/queryables": {"get": operation(
            "getQueryables", "Filter", "Queryables of all collections",
            "A JSON Schema of the properties items can be filtered on, learned from every \
             collection's items.",
            vec![],
            responses("The queryables.", SCHEMA_JSON, schema_ref("Queryables"), &[]),
        )},
        "/collections/{collectionId}/queryables": {"get": operation(
            "getCollectionQueryables", "Filter", "Queryables of one collection",
            "A JSON Schema of the properties the collection's items can be filtered on.",
            parameters(&["collectionId"]),
            responses("The queryables.", SCHEMA_JSON, schema_ref("Queryables"), &["NotFound"]),
        )},
    })
}

fn components() -> Value {
    json!({
        "parameters": component_parameters(),
        "schemas": component_schemas(),
        "responses": {
            "BadRequest": error_response("The request is malformed or asks for something the \
                API cannot do; the description says which parameter and why."),
            "NotFound": error_response("No such collection, item or endpoint."),
            "MethodNotAllowed": error_response("The endpoint does not accept this method."),
            "PayloadTooLarge": error_response("The request body is larger than the server \
                accepts."),
            "ServiceUnavailable": error_response("The request could not be answered in time, \
                or the catalog could not be read; try again."),
        },
    })
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {JSON: {"schema": schema_ref("Error")}}})
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name, "in": "query", "required": false, "description": description,
        "schema": schema,
    })
}

fn component_parameters() -> Value {
    let list = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "collectionId": {
            "name": "collectionId", "in": "path", "required": true,
            "description": "The collection's id.", "schema": {"type": "string"},
        },
        "itemId": {
            "name": "itemId", "in": "path", "required": true,
            "description": "The item's id.", "schema": {"type": "string"},
        },
        "bbox": json!({
            "name": "bbox", "in": "query", "required": false,
            "description": "Only items whose geometry intersects this box, as 4 or 6 \
                comma-separated numbers in WGS 84 longitude and latitude: \
                minx,miny,maxx,maxy (or minx,miny,minz,maxx,maxy,maxz). A box whose minx is \
                greater than its maxx crosses the antimeridian.",
            "schema": schema_ref("Bbox"), "style": "form", "explode": false,
        }),
        "datetime": query(
            "datetime",
            "Only items whose datetime (or start_datetime/end_datetime range) meets this \
             RFC 3339 date-time or interval: `2021-01-01T00:00:00Z`, \
             `2021-01-01T00:00:00Z/2021-12-31T23:59:59Z`, or an interval with an open end \
             written `..` or left empty.",
            schema_ref("Datetime"),
        ),
        "limit": query(
            "limit",
            "The most items on one page. A larger value than the server's maximum is lowered \
             to it; without one the server's default applies.",
            json!({"type": "integer", "minimum": 1}),
        ),
        "ids": json!({
            "name": "ids", "in": "query", "required": false,
            "description": "Only items with one of these ids (comma-separated).",
            "schema": list.clone(), "style": "form", "explode": false,
        }),
        "collections": json!({
            "name": "collections", "in": "query", "required": false,
            "description": "Only items of these collections (comma-separated ids).",
            "schema": list.clone(), "style": "form", "explode": false,
        }),
        "intersects": query(
            "intersects",
            "Only items whose geometry intersects this GeoJSON geometry (JSON text). Not \
             together with bbox.",
            json!({"type": "string"}),
        ),
        "filter": query(
            "filter",
            "A CQL2 filter on item properties, in CQL2 text, or in CQL2 JSON when the value \
             starts with `{`. See the queryables for the properties.",
            json!({"type": "string"}),
        ),
        "filter-lang": query(
            "filter-lang",
            "The language of filter; by default cql2-text (cql2-json for JSON values).",
            json!({"type": "string", "enum": ["cql2-text", "cql2-json"]}),
        ),
        "filter-crs": query(
            "filter-crs",
            "The coordinate reference system of the filter's geometries; only CRS84 is \
             supported.",
            json!({
                "type": "string", "format": "uri",
                "enum": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
            }),
        ),
        "sortby": json!({
            "name": "sortby", "in": "query", "required": false,
            "description": "The order of the items: comma-separated fields, each prefixed \
                with `-` for descending or `+` (or nothing) for ascending, e.g. \
                `-datetime,id`.",
            "schema": list.clone(), "style": "form", "explode": false,
        }),
        "fields": json!({
            "name": "fields", "in": "query", "required": false,
            "description": "The members of each item to return: comma-separated fields, \
                those prefixed with `-` excluded, e.g. `id,properties.datetime,-links`.",
            "schema": list, "style": "form", "explode": false,
        }),
        "query": query(
            "query",
            "A STAC API query-extension object (JSON text): property names mapped to objects \
             of operators (eq, neq, lt, lte, gt, gte, startsWith, endsWith, contains, in) and \
             values.",
            json!({"type": "string"}),
        ),
        "q": query(
            "q",
            "Free-text search over the items' title, description and keywords: words, \
             \"quoted phrases\", OR, AND, parentheses and `-` or `+` prefixes; \
             comma-separated terms are alternatives.",
            json!({"type": "string"}),
        ),
        "token": query(
            "token",
            "The page to return, as given by the previous page's `next` link.",
            json!({"type": "string"}),
        ),
    })
}

fn component_schemas() -> Value {
    let links = json!({"type": "array", "items": schema_ref("Link")});
    json!({
        "Error": {
            "type": "object",
            "required": ["code", "description"],
            "properties": {
                "code": {"type": "string", "description": "What kind of error, e.g. BadRequest."},
                "description": {"type": "string", "description": "What went wrong."},
            },
        },
        "Link": {
            "type": "object",
            "required": ["href", "rel"],
            "properties": {
                "href": {"type": "string", "format": "uri"},
                "rel": {"type": "string"},
                "type": {"type": "string"},
                "title": {"type": "string"},
                "method": {"type": "string", "enum": ["GET", "POST"]},
                "body": {"type": "object"},
                "merge": {"type": "boolean"},
            },
        },
        "LandingPage": {
            "type": "object",
            "description": "A STAC Catalog.",
            "required": ["type", "stac_version", "id", "description", "links", "conformsTo"],
            "properties": {
                "type": {"type": "string", "enum": ["Catalog"]},
                "stac_version": {"type": "string"},
                "id": {"type": "string"},
                "title": {"type": "string", "nullable": true},
                "description": {"type": "string"},
                "conformsTo": {"type": "array", "items": {"type": "string"}},
                "links": links.clone(),
            },
        },
        "Conformance": {
            "type": "object",
            "required": ["conformsTo"],
            "properties": {
                "conformsTo": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Collection": {
            "type": "object",
            "description": "A STAC Collection.",
            "required": ["type", "id", "links"],
            "properties": {
                "type": {"type": "string", "enum": ["Collection"]},
                "stac_version": {"type": "string"},
                "id": {"type": "string"},
                "title": {"type": "string"},
                "description": {"type": "string"},
                "license": {"type": "string"},
                "extent": {"type": "object"},
                "links": links.clone(),
            },
        },
        "Collections": {
            "type": "object",
            "required": ["collections", "links"],
            "properties": {
                "collections": {"type": "array", "items": schema_ref("Collection")},
                "links": links.clone(),
            },
        },
        "Item": {
            "type": "object",
            "description": "A STAC Item (a GeoJSON Feature).",
            "required": ["type", "id", "geometry", "properties", "links", "assets"],
            "properties": {
                "type": {"type": "string", "enum": ["Feature"]},
                "stac_version": {"type": "string"},
                "id": {"type": "string"},
                "collection": {"type": "string"},
                "geometry": {"allOf": [schema_ref("Geometry")], "nullable": true},
                "bbox": {"type": "array", "items": {"type": "number"}},
                "properties": {"type": "object"},
                "links": links.clone(),
                "assets": {"type": "object"},
            },
        },
        "ItemCollection": {
            "type": "object",
            "description": "A page of STAC Items (a GeoJSON FeatureCollection).",
            "required": ["type", "features"],
            "properties": {
                "type": {"type": "string", "enum": ["FeatureCollection"]},
                "features": {
                    "type": "array",
                    "description": "STAC Items; only the members asked for when `fields` \
                        was given.",
                    "items": {"type": "object"},
                },
                "links": links,
                "numberMatched": {"type": "integer", "minimum": 0},
                "numberReturned": {"type": "integer", "minimum": 0},
            },
        },
        "Geometry": {
            "type": "object",
            "description": "A GeoJSON geometry.",
            "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": [
                    "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon",
                    "MultiPolygon", "GeometryCollection",
                ]},
                "coordinates": {"type": "array", "items": {}},
                "geometries": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Bbox": {
            "type": "array",
            "description": "minx, miny, maxx, maxy, or minx, miny, minz, maxx, maxy, maxz.",
            "minItems": 4,
            "maxItems": 6,
            "items": {"type": "number"},
        },
        "Datetime": {
            "type": "string",
            "description": "An RFC 3339 date-time, or an interval of two separated by `/` \
                with `..` or nothing for an open end.",
        },
        "Queryables": {
            "type": "object",
            "description": "A JSON Schema (draft 2019-09) of the queryable properties.",
            "required": ["$schema", "$id", "type", "properties"],
            "properties": {
                "$schema": {"type": "string"},
                "$id": {"type": "string"},
                "type": {"type": "string", "enum": ["object"]},
                "title": {"type": "string"},
                "properties": {"type": "object"},
                "additionalProperties": {"type": "boolean"},
            },
        },
        "SearchBody": {
            "type": "object",
            "description": "Item search parameters; every one is optional.",
            "properties": {
                "bbox": schema_ref("Bbox"),
                "datetime": schema_ref("Datetime"),
                "intersects": schema_ref("Geometry"),
                "ids": {"type": "array", "items": {"type": "string"}},
                "collections": {"type": "array", "items": {"type": "string"}},
                "limit": {"type": "integer", "minimum": 1},
                "filter": {
                    "description": "A CQL2 filter: a string in CQL2 text or an object in \
                        CQL2 JSON.",
                    "oneOf": [{"type": "string"}, {"type": "object"}],
                },
                "filter-lang": {"type": "string", "enum": ["cql2-text", "cql2-json"]},
                "filter-crs": {
                    "type": "string", "format": "uri",
                    "enum": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"],
                },
                "sortby": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "direction"],
                        "properties": {
                            "field": {"type": "string"},
                            "direction": {"type": "string", "enum": ["asc", "desc"]},
                        },
                    },
                },
                "fields": {
                    "type": "object",
                    "properties": {
                        "include": {"type": "array", "items": {"type": "string"}},
                        "exclude": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "query": {
                    "type": "object",
                    "description": "Property names mapped to objects of operators and values.",
                    "additionalProperties": {"type": "object"},
                },
                "q": {
                    "description": "Free text: a string, or an array of alternatives.",
                    "oneOf": [
                        {"type": "string"},
                        {"type": "array", "items": {"type": "string"}},
                    ],
                },
                "token": {
                    "type": "string",
                    "description": "The page to return, from the previous page's `next` link.",
                },
            },
        },
    })
}

/// The OpenAPI document as a self-contained HTML page: no script, stylesheet, font or image
/// is loaded from anywhere, and every string from the document is escaped.
pub fn html(document: &Value) -> String {
    let title = text(document, &["info", "title"]).unwrap_or("API");
    let version = text(document, &["info", "version"]).unwrap_or("");
    let operations = operations(document);
    let mut out = String::with_capacity(32 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>{}</title>", escape(title));
    out.push_str(STYLE);
    out.push_str("</head>\n<body>\n<main>\n");
    let _ = writeln!(out, "<h1>{}</h1>", escape(title));
    let openapi = text(document, &["openapi"]).unwrap_or("");
    let _ = writeln!(
        out,
        "<p class=\"meta\">Version {} &middot; OpenAPI {}</p>",
        escape(version),
        escape(openapi)
    );
    if let Some(description) = text(document, &["info", "description"]) {
        let _ = writeln!(out, "<p>{}</p>", escape(description));
    }
    if let Some(Value::Array(servers)) = document.get("servers") {
        let urls: Vec<String> = servers
            .iter()
            .filter_map(|s| s.get("url").and_then(Value::as_str))
            .map(|u| format!("<code>{}</code>", escape(u)))
            .collect();
        if !urls.is_empty() {
            let _ = writeln!(out, "<p>Server: {}</p>", urls.join(", "));
        }
    }
    let _ = writeln!(
        out,
        "<p>The machine-readable document is at <a href=\"api\"><code>/api</code></a>.</p>"
    );

    out.push_str("<nav>\n<h2>Contents</h2>\n<ul>\n");
    for op in &operations {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\"><span class=\"method {}\">{}</span> <code>{}</code></a> {}</li>",
            escape(&op.anchor),
            escape(&op.method),
            escape(&op.method.to_uppercase()),
            escape(&op.path),
            escape(op.summary()),
        );
    }
    out.push_str("</ul>\n</nav>\n");

    for op in &operations {
        render_operation(&mut out, document, op);
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

const STYLE: &str = "<style>
body { font-family: system-ui, sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem 1.5rem 3rem; }
h1 { margin-bottom: 0.2rem; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2rem; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem 1rem;
  margin: 1.2rem 0; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
code { font-family: ui-monospace, monospace; font-size: 0.92em; }
.meta { color: #666; margin-top: 0; }
.method { display: inline-block; min-width: 3.5rem; text-align: center; font-weight: bold;
  font-family: ui-monospace, monospace; border-radius: 4px; padding: 0 0.3rem; color: #fff; }
.get { background: #2f7d32; }
.post { background: #1f5fa8; }
.other { background: #777; }
nav ul { list-style: none; padding-left: 0; }
nav li { margin: 0.2rem 0; }
a { color: #1f5fa8; text-decoration: none; }
</style>
";

/// One path and method of the document.
struct Operation<'a> {
    path: String,
    method: String,
    anchor: String,
    value: &'a Value,
}

impl Operation<'_> {
    fn summary(&self) -> &str {
        self.value.get("summary").and_then(Value::as_str).unwrap_or("")
    }
}

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn operations(document: &Value) -> Vec<Operation<'_>> {
    let mut operations = Vec::new();
    let Some(Value::Object(paths)) = document.get("paths") else { return operations };
    for (path, item) in paths {
        for method in METHODS {
            if let Some(value) = item.get(method) {
                let anchor = format!("{method}-{}", anchor_text(path));
                operations.push(Operation {
                    path: path.clone(),
                    method: method.to_string(),
                    anchor,
                    value,
                });
            }
        }
    }
    operations
}

/// A fragment identifier for a path: letters and digits kept, every run of anything else one
/// `-`.
fn anchor_text(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() { "root".into() } else { trimmed.into() }
}

fn render_operation(out: &mut String, document: &Value, op: &Operation<'_>) {
    let class =
        if op.method == "get" || op.method == "post" { op.method.as_str() } else { "other" };
    let _ = writeln!(out, "<section id=\"{}\">", escape(&op.anchor));
    let _ = writeln!(
        out,
        "<h2><span class=\"method {}\">{}</span> <code>{}</code></h2>",
        escape(class),
        escape(&op.method.to_uppercase()),
        escape(&op.path)
    );
    if !op.summary().is_empty() {
        let _ = writeln!(out, "<p><strong>{}</strong></p>", escape(op.summary()));
    }
    if let Some(description) = op.value.get("description").and_then(Value::as_str) {
        let _ = writeln!(out, "<p>{}</p>", escape(description));
    }

    if let Some(Value::Array(parameters)) = op.value.get("parameters") {
        out.push_str("<h3>Parameters</h3>\n<table>\n<tr><th>Name</th><th>In</th>");
        out.push_str("<th>Required</th><th>Type</th><th>Description</th></tr>\n");
        for parameter in parameters {
            let p = resolve(document, parameter);
            let field = |name: &str| p.get(name).and_then(Value::as_str).unwrap_or("");
            let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
            let schema = p.get("schema").map_or(String::new(), |s| type_text(document, s));
            let _ = writeln!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(field("name")),
                escape(field("in")),
                if required { "yes" } else { "no" },
                escape(&schema),
                escape(field("description")),
            );
        }
        out.push_str("</table>\n");
    }

    if let Some(body) = op.value.get("requestBody") {
        let body = resolve(document, body);
        out.push_str("<h3>Request body</h3>\n");
        if let Some(description) = body.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "<p>{}</p>", escape(description));
        }
        if let Some(Value::Object(content)) = body.get("content") {
            for (media, entry) in content {
                let schema = entry.get("schema");
                let _ = writeln!(
                    out,
                    "<p><code>{}</code>: {}</p>",
                    escape(media),
                    escape(&schema.map_or(String::new(), |s| type_text(document, s)))
                );
                if let Some(schema) = schema {
                    render_schema_properties(out, document, schema);
                }
            }
        }
    }

    if let Some(Value::Object(responses)) = op.value.get("responses") {
        out.push_str("<h3>Responses</h3>\n<table>\n<tr><th>Status</th><th>Description</th>");
        out.push_str("<th>Content</th></tr>\n");
        for (status, response) in responses {
            let response = resolve(document, response);
            let description = response.get("description").and_then(Value::as_str).unwrap_or("");
            let content = match response.get("content") {
                Some(Value::Object(content)) => content
                    .iter()
                    .map(|(media, entry)| {
                        let schema =
                            entry.get("schema").map_or(String::new(), |s| type_text(document, s));
                        if schema.is_empty() {
                            format!("<code>{}</code>", escape(media))
                        } else {
                            format!("<code>{}</code> ({})", escape(media), escape(&schema))
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("<br>"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(status),
                escape(description),
                content
            );
        }
        out.push_str("</table>\n");
    }
    out.push_str("</section>\n");
}

/// A table of an object schema's properties (one level).
fn render_schema_properties(out: &mut String, document: &Value, schema: &Value) {
    let schema = resolve(document, schema);
    let Some(Value::Object(properties)) = schema.get("properties") else { return };
    let required: Vec<&str> = match schema.get("required") {
        Some(Value::Array(r)) => r.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    out.push_str("<table>\n<tr><th>Member</th><th>Required</th><th>Type</th>");
    out.push_str("<th>Description</th></tr>\n");
    for (name, property) in properties {
        let resolved = resolve(document, property);
        let description = property
            .get("description")
            .or_else(|| resolved.get("description"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let _ = writeln!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            if required.contains(&name.as_str()) { "yes" } else { "no" },
            escape(&type_text(document, property)),
            escape(description),
        );
    }
    out.push_str("</table>\n");
}

/// Follows a local `$ref` (`#/...`), once or more; anything else is returned as it is.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    let mut value = value;
    for _ in 0..8 {
        match value.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => match document.pointer(pointer) {
                Some(target) => value = target,
                None => break,
            },
            None => break,
        }
    }
    value
}

/// A short description of a schema's type: `string`, `array of string`, `Bbox (array of
/// number)`, `string | object`, …
fn type_text(document: &Value, schema: &Value) -> String {
    type_text_depth(document, schema, 0)
}

fn type_text_depth(document: &Value, schema: &Value, depth: usize) -> String {
    if depth > 4 {
        return String::new();
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        let target = resolve(document, schema);
        if std::ptr::eq(target, schema) {
            return name.to_string();
        }
        let inner = type_text_depth(document, target, depth + 1);
        return if inner.is_empty() || inner == name {
            name.into()
        } else {
            format!("{name} ({inner})")
        };
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(Value::Array(options)) = schema.get(combinator) {
            let parts: Vec<String> =
                options.iter().map(|o| type_text_depth(document, o, depth + 1)).collect();
            return parts.join(" | ");
        }
    }
    if let Some(Value::Array(all)) = schema.get("allOf") {
        let parts: Vec<String> =
            all.iter().map(|o| type_text_depth(document, o, depth + 1)).collect();
        return parts.join(" & ");
    }
    let mut text = match schema.get("type") {
        Some(Value::String(t)) if t == "array" => match schema.get("items") {
            Some(items) => {
                let inner = type_text_depth(document, items, depth + 1);
                if inner.is_empty() { "array".into() } else { format!("array of {inner}") }
            }
            None => "array".into(),
        },
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => {
            types.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | ")
        }
        _ => String::new(),
    };
    if let Some(format) = schema.get("format").and_then(Value::as_str) {
        let _ = write!(text, " ({format})");
    }
    if let Some(Value::Array(values)) = schema.get("enum") {
        let values: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        let _ = write!(text, ": {}", values.join(", "));
    }
    text
}

fn text<'a>(document: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut value = document;
    for key in path {
        value = value.get(key)?;
    }
    value.as_str()
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "http://localhost:8080";

    const PATHS: [(&str, &str); 12] = [
        ("/", "get"),
        ("/conformance", "get"),
        ("/api", "get"),
        ("/api.html", "get"),
        ("/collections", "get"),
        ("/collections/{collectionId}", "get"),
        ("/collections/{collectionId}/items", "get"),
        ("/collections/{collectionId}/items/{itemId}", "get"),
        ("/search", "get"),
        ("/search", "post"),
        ("/queryables", "get"),
        ("/collections/{collectionId}/queryables", "get"),
    ];

    const SEARCH_PARAMETERS: [&str; 11] = [
        "bbox",
        "datetime",
        "limit",
        "ids",
        "filter",
        "filter-lang",
        "sortby",
        "fields",
        "query",
        "q",
        "token",
    ];

    fn parameter_names<'a>(doc: &'a Value, op: &'a Value) -> Vec<&'a str> {
        op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| resolve(doc, p)["name"].as_str().unwrap())
            .collect()
    }

    /// Every `$ref` in `value`, each checked to point somewhere in `doc`.
    fn check_refs(doc: &Value, value: &Value) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(r)) = object.get("$ref") {
                    let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("non-local {r}"));
                    assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                }
                object.values().for_each(|v| check_refs(doc, v));
            }
            Value::Array(values) => values.iter().for_each(|v| check_refs(doc, v)),
            _ => {}
        }
    }

    #[test]
    fn document_describes_the_api() {
        let doc = document(&format!("{BASE}/"));
        assert_eq!(doc["openapi"], "3.0.3");
        assert_eq!(doc["servers"], json!([{"url": BASE}]));
        assert!(doc["info"]["title"].is_string());
        assert!(doc["info"]["version"].is_string());
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in PATHS {
            assert!(paths[path][method].is_object(), "{method} {path} missing");
        }
        // Exactly these paths and methods.
        let count: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(paths.len(), 11);
        assert_eq!(count, 12);
        check_refs(&doc, &doc);

        let mut operation_ids = std::collections::BTreeSet::new();
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                assert!(operation_ids.insert(op["operationId"].as_str().unwrap()), "{path}");
                let responses = op["responses"].as_object().unwrap();
                for status in ["200", "405"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
                let ok = &op["responses"]["200"]["content"];
                let media = match path.as_str() {
                    "/api" => OPENAPI,
                    "/api.html" => HTML,
                    "/search" | "/collections/{collectionId}/items" => GEOJSON,
                    "/collections/{collectionId}/items/{itemId}" => GEOJSON,
                    "/queryables" | "/collections/{collectionId}/queryables" => SCHEMA_JSON,
                    _ => JSON,
                };
                assert!(ok[media].is_object(), "{method} {path}: {ok}");
                // Path parameters are declared.
                let names = op.get("parameters").map_or(vec![], |_| parameter_names(&doc, op));
                for segment in path.split('/').filter(|s| s.starts_with('{')) {
                    assert!(names.contains(&segment.trim_matches(['{', '}'])), "{path}");
                }
                if path.contains("{collectionId}") || (path == "/search" && method == "get") {
                    assert!(responses.contains_key("400") || responses.contains_key("404"));
                }
            }
        }
        let not_found =
            resolve(&doc, &doc["paths"]["/collections/{collectionId}"]["get"]["responses"]["404"]);
        assert_eq!(
            resolve(&doc, &not_found["content"][JSON]["schema"])["required"],
            json!(["code", "description"])
        );

        let items = &doc["paths"]["/collections/{collectionId}/items"]["get"];
        let search = &doc["paths"]["/search"]["get"];
        for name in SEARCH_PARAMETERS {
            assert!(parameter_names(&doc, items).contains(&name), "items: {name}");
            assert!(parameter_names(&doc, search).contains(&name), "search: {name}");
        }
        for name in ["collections", "intersects"] {
            assert!(parameter_names(&doc, search).contains(&name), "search: {name}");
            assert!(!parameter_names(&doc, items).contains(&name), "items: {name}");
        }
        let body = resolve(
            &doc,
            &doc["paths"]["/search"]["post"]["requestBody"]["content"][JSON]["schema"],
        );
        for name in SEARCH_PARAMETERS.iter().chain(&["collections", "intersects"]) {
            assert!(body["properties"][name].is_object(), "POST body: {name}");
        }
        assert_eq!(body["properties"]["sortby"]["items"]["properties"]["field"]["type"], "string");
        assert!(body["properties"]["fields"]["properties"]["include"].is_object());
        assert!(body["properties"]["fields"]["properties"]["exclude"].is_object());
    }

    /// The values of every `name="…"` attribute in `html`.
    fn attributes<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
        let needle = format!("{name}=\"");
        html.match_indices(&needle)
            .map(|(at, _)| {
                let rest = &html[at + needle.len()..];
                &rest[..rest.find('"').unwrap()]
            })
            .collect()
    }

    #[test]
    fn html_is_self_contained() {
        let doc = document(BASE);
        let page = html(&doc);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<title>stacdb STAC API</title>"));
        for (path, method) in PATHS {
            assert!(page.contains(&format!("<code>{}</code>", escape(path))), "{path}");
            let anchor = format!("{method}-{}", anchor_text(path));
            assert!(page.contains(&format!("id=\"{anchor}\"")), "{anchor}");
            assert!(page.contains(&format!("href=\"#{anchor}\"")), "{anchor}");
        }
        for name in SEARCH_PARAMETERS {
            assert!(page.contains(&format!("<td><code>{name}</code></td>")), "{name}");
        }
        for attribute in ["href", "src", "action", "srcset"] {
            for value in attributes(&page, attribute) {
                let lower = value.to_ascii_lowercase();
                assert!(
                    !lower.starts_with("http:")
                        && !lower.starts_with("https:")
                        && !lower.starts_with("//"),
                    "{attribute}={value}"
                );
            }
        }
        assert!(!page.contains("src="));
        assert!(!page.contains("<script"));
        assert!(!page.contains("<link"));
        assert!(!page.contains("@import"));
        assert!(!page.contains("url("));
        // The parameter table shows types resolved through components.
        assert!(page.contains("Bbox (array of number)"), "{page}");
        assert!(page.contains("cql2-text, cql2-json"));
    }

    #[test]
    fn html_escapes_everything() {
        let mut doc = document(BASE);
        let evil = "<script>alert('x')</script> & \"quoted\"";
        doc["info"]["title"] = json!(evil);
        doc["info"]["description"] = json!(evil);
        doc["servers"][0]["url"] = json!("javascript:\"><script>");
        doc["paths"]["/search"]["get"]["summary"] = json!(evil);
        doc["components"]["parameters"]["bbox"]["description"] = json!(evil);
        doc["paths"]["/<script>"] = json!({"get": {"summary": evil, "parameters": [
            {"name": "<b>", "in": "query", "description": evil, "schema": {"type": "<i>"}},
        ], "responses": {"<x>": {"description": evil, "content": {"<m>": {}}}}}});
        let page = html(&doc);
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<b>") && !page.contains("<i>") && !page.contains("<x>"));
        assert!(!page.contains("<m>"));
        assert!(
            page.contains(
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"
            )
        );
        assert!(page.contains("<code>/&lt;script&gt;</code>"));
        assert_eq!(escape("&<>\"'"), "&amp;&lt;&gt;&quot;&#39;");
    }

    #[test]
    fn anchors() {
        assert_eq!(anchor_text("/"), "root");
        assert_eq!(
            anchor_text("/collections/{collectionId}/items"),
            "collections-collectionid-items"
        );
        assert_eq!(anchor_text("/api.html"), "api-html");
    }
}
