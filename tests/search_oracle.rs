//! Search oracle: random searches over real STAC data, each answered by the catalog and by a
//! brute-force evaluation written here, and the two sets of items compared.
//!
//! Each data set is ingested once into a temporary catalog. Every case builds a STAC API
//! search body from random parts — a bbox (small or large, on item edges, across the
//! antimeridian, 2-D or 3-D) or an `intersects` geometry (triangles, quads, probes in the
//! corners of item bboxes, points on item vertices, lines, multipolygons), a datetime
//! (instant, closed, open with `..` or empty), collections, ids, a CQL2 filter (numeric and
//! string comparisons, LIKE, AND/OR/NOT, in cql2-text and cql2-json) and a STACQL `query` —
//! chosen around the items actually present so that results are often non-empty. The oracle
//! evaluates the same body over the parsed items:
//!
//! - space: the item geometry (exactly, with `geo`'s `Intersects`) meets the query geometry;
//!   a bbox with minx > maxx is the boxes `[minx, 180]` and `[-180, maxx]`; a geometry that
//!   runs past +180 is also tried shifted by -360 (past -180: by +360), and so is every item
//!   when the query geometry runs past +180 (+360) or -180 (-360), as src/search/mod.rs
//!   documents; an item without geometry never matches;
//! - time: the item's span (`start_datetime`/`end_datetime`, else `datetime` for both) meets
//!   the query interval, ends included, open ends unbounded;
//! - filters: three-valued logic, where a comparison with a property that is missing or of
//!   another JSON type is unknown (so neither it nor its negation matches).
//!
//! The set of (collection, id) that `search_each` streams must equal the oracle's, in the
//! default order (newest first, then id); `count` must agree; some cases also check one page
//! (`number_matched`, its items, `next`) and some walk every page by token.
//!
//! The seed is fixed by default, so CI runs the same cases every time. `STACDB_ORACLE_SEED`
//! replays a run (its seed is printed in the summary line and in every failure), and
//! `STACDB_ORACLE_SEED=random` explores new cases; `STACDB_ORACLE_CASES` sets the number of
//! cases per data set.

mod common;
mod ingest_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use geo::{BoundingRect, Coord, Intersects, Rect, Translate};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use stacdb::search::{Request, SearchOptions};
use stacdb::{Catalog, IngestOptions};

/// Cases per data set when `STACDB_ORACLE_CASES` is not set.
const DEFAULT_CASES: usize = 600;

/// Failures shown in full in the panic message (all are counted).
const SHOWN_FAILURES: usize = 5;

/// An item's place in the catalog.
type Key = (String, String);

/// A parsed item, as the oracle sees it.
struct Item {
    key: Key,
    start: i64,
    end: i64,
    properties: Map<String, Value>,
    /// The geometry at each longitude shift that is tried, with its bounds.
    shapes: Vec<(geo::Geometry<f64>, Rect<f64>)>,
    /// The geometry's bounds as written (possibly past ±180).
    rect: Option<Rect<f64>>,
    /// The geometry's vertices as written.
    vertices: Vec<Coord<f64>>,
}

/// One data set: its items and what searches over it may name.
struct DataSet {
    name: &'static str,
    items: Vec<Item>,
    /// Indexes of the items that have a geometry.
    located: Vec<usize>,
    /// Every collection in the catalog (some may have no items).
    collections: Vec<String>,
    /// Properties holding a number in some item, with the distinct values seen.
    numeric: Vec<(String, Vec<Value>)>,
    /// Properties holding a string in some item (and `id`, `collection`), with their values.
    strings: Vec<(String, Vec<String>)>,
    /// Every item start and end.
    instants: Vec<i64>,
    /// Each item's start, by key.
    starts: HashMap<Key, i64>,
}

impl DataSet {
    fn new(name: &'static str, documents: Vec<Value>, collections: Vec<String>) -> DataSet {
        let items: Vec<Item> = documents.iter().map(parse_item).collect();
        let located = (0..items.len()).filter(|&i| !items[i].shapes.is_empty()).collect();
        let mut collections: BTreeSet<String> = collections.into_iter().collect();
        collections.extend(items.iter().map(|i| i.key.0.clone()));
        let mut numeric: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
        let mut strings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for item in &items {
            strings.entry("id".into()).or_default().insert(item.key.1.clone());
            strings.entry("collection".into()).or_default().insert(item.key.0.clone());
            for (name, value) in &item.properties {
                if matches!(name.as_str(), "datetime" | "start_datetime" | "end_datetime") {
                    continue;
                }
                match value {
                    Value::Number(_) => {
                        numeric
                            .entry(name.clone())
                            .or_default()
                            .insert(value.to_string(), value.clone());
                    }
                    Value::String(s) => {
                        strings.entry(name.clone()).or_default().insert(s.clone());
                    }
                    _ => {}
                }
            }
        }
        let mut instants: Vec<i64> = items.iter().flat_map(|i| [i.start, i.end]).collect();
        instants.sort_unstable();
        instants.dedup();
        DataSet {
            name,
            located,
            collections: collections.into_iter().collect(),
            numeric: numeric.into_iter().map(|(k, v)| (k, v.into_values().collect())).collect(),
            strings: strings.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect(),
            instants,
            starts: items.iter().map(|i| (i.key.clone(), i.start)).collect(),
            items,
        }
    }
}

fn parse_item(doc: &Value) -> Item {
    let collection = doc["collection"].as_str().expect("item has a collection").to_string();
    let id = doc["id"].as_str().expect("item has an id").to_string();
    let (start, end) = ingest_support::item_time(doc);
    let properties = doc["properties"].as_object().cloned().unwrap_or_default();
    let mut shapes = Vec::new();
    let mut rect = None;
    let mut vertices = Vec::new();
    if !doc["geometry"].is_null() {
        let parsed: geojson::Geometry =
            serde_json::from_value(doc["geometry"].clone()).expect("GeoJSON geometry");
        let geometry =
            geo::Geometry::<f64>::try_from(&parsed.value).expect("geometry converts to geo");
        if let Some(bounds) = geometry.bounding_rect() {
            vertices = coordinates(&doc["geometry"]["coordinates"]);
            rect = Some(bounds);
            let mut shifts = vec![0.0];
            if bounds.max().x > 180.0 {
                shifts.push(-360.0);
            }
            if bounds.min().x < -180.0 {
                shifts.push(360.0);
            }
            for dx in shifts {
                let shifted = geometry.translate(dx, 0.0);
                let r = shifted.bounding_rect().expect("bounds");
                shapes.push((shifted, r));
            }
        }
    }
    Item { key: (collection, id), start, end, properties, shapes, rect, vertices }
}

/// Every position of a GeoJSON coordinates array.
fn coordinates(value: &Value) -> Vec<Coord<f64>> {
    match value {
        Value::Array(a) if a.first().is_some_and(Value::is_number) => {
            vec![Coord { x: a[0].as_f64().unwrap(), y: a[1].as_f64().unwrap() }]
        }
        Value::Array(a) => a.iter().flat_map(coordinates).collect(),
        _ => Vec::new(),
    }
}

// ------------------------------------------------------------------------------------------
// Searches
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

const CMPS: [Cmp; 6] = [Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge, Cmp::Eq, Cmp::Ne];

impl Cmp {
    fn symbol(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
            Cmp::Eq => "=",
            Cmp::Ne => "<>",
        }
    }

    /// The operator with its operands swapped: `a < b` is `b > a`.
    fn flipped(self) -> Cmp {
        match self {
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
            other => other,
        }
    }

    fn test<T: PartialOrd + ?Sized>(self, a: &T, b: &T) -> bool {
        match self {
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
        }
    }
}

/// A comparison of one property with a literal.
#[derive(Debug, Clone)]
enum Atom {
    /// A JSON number property against a number.
    Num { prop: String, cmp: Cmp, value: Value },
    /// A string property against a string (`=` or `<>`).
    Str { prop: String, cmp: Cmp, value: String },
    /// A string property against a LIKE pattern.
    Like { prop: String, pattern: String },
}

/// A filter: atoms joined with AND, OR and NOT.
#[derive(Debug, Clone)]
enum Cond {
    Atom(Atom),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

/// One condition of a STACQL `query`.
#[derive(Debug, Clone)]
struct QueryCond {
    prop: String,
    op: String,
    value: Value,
}

#[derive(Debug, Clone)]
enum Spatial {
    /// The bbox as sent (4 or 6 numbers).
    Bbox(Vec<f64>),
    /// The geometry, as the oracle reads it (the body has it as GeoJSON).
    Intersects(geo::Geometry<f64>),
}

/// A generated search: the body sent and what the oracle evaluates.
struct Case {
    body: Value,
    spatial: Option<Spatial>,
    datetime: Option<(Option<i64>, Option<i64>)>,
    collections: Option<Vec<String>>,
    ids: Option<Vec<String>>,
    filter: Option<Cond>,
    query: Vec<QueryCond>,
}

// ------------------------------------------------------------------------------------------
// The oracle
// ------------------------------------------------------------------------------------------

fn lookup(item: &Item, prop: &str) -> Option<Value> {
    match prop {
        "id" => Some(Value::String(item.key.1.clone())),
        "collection" => Some(Value::String(item.key.0.clone())),
        _ => {
            let name = prop.strip_prefix("properties.").unwrap_or(prop);
            item.properties.get(name).cloned()
        }
    }
}

/// A comparison: `None` when the property is missing or of another type (unknown).
fn eval_atom(atom: &Atom, item: &Item) -> Option<bool> {
    match atom {
        Atom::Num { prop, cmp, value } => match lookup(item, prop)? {
            Value::Number(n) => Some(cmp.test(&n.as_f64()?, &value.as_f64()?)),
            _ => None,
        },
        Atom::Str { prop, cmp, value } => match lookup(item, prop)? {
            Value::String(s) => Some(cmp.test(s.as_str(), value.as_str())),
            _ => None,
        },
        Atom::Like { prop, pattern } => match lookup(item, prop)? {
            Value::String(s) => {
                let s: Vec<char> = s.chars().collect();
                let p: Vec<char> = pattern.chars().collect();
                Some(like(&s, &p))
            }
            _ => None,
        },
    }
}

/// CQL2 LIKE: `%` any run, `_` one character, `\` takes the next character literally.
fn like(s: &[char], p: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('%') => (0..=s.len()).any(|i| like(&s[i..], &p[1..])),
        Some('_') => !s.is_empty() && like(&s[1..], &p[1..]),
        Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && like(&s[1..], &p[2..]),
        Some(c) => s.first() == Some(c) && like(&s[1..], &p[1..]),
    }
}

/// Kleene logic: AND is false when any part is, OR true when any part is.
fn eval_cond(cond: &Cond, item: &Item) -> Option<bool> {
    match cond {
        Cond::Atom(atom) => eval_atom(atom, item),
        Cond::And(parts) => {
            let values: Vec<Option<bool>> = parts.iter().map(|p| eval_cond(p, item)).collect();
            if values.contains(&Some(false)) {
                Some(false)
            } else if values.contains(&None) {
                None
            } else {
                Some(true)
            }
        }
        Cond::Or(parts) => {
            let values: Vec<Option<bool>> = parts.iter().map(|p| eval_cond(p, item)).collect();
            if values.contains(&Some(true)) {
                Some(true)
            } else if values.contains(&None) {
                None
            } else {
                Some(false)
            }
        }
        Cond::Not(part) => eval_cond(part, item).map(|b| !b),
    }
}

/// A STACQL condition, read independently of the CQL2 translation.
fn eval_query(q: &QueryCond, item: &Item) -> bool {
    let Some(value) = lookup(item, &q.prop) else { return false };
    let same = |a: &Value, b: &Value| match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    };
    match (q.op.as_str(), &value, &q.value) {
        ("in", v, Value::Array(options)) => {
            options.iter().any(|o| same(v, o) || same(o, v)) && {
                matches!((v, &options[0]), (Value::Number(_), Value::Number(_)))
                    || matches!((v, &options[0]), (Value::String(_), Value::String(_)))
            }
        }
        ("startsWith", Value::String(s), Value::String(t)) => s.starts_with(t.as_str()),
        ("endsWith", Value::String(s), Value::String(t)) => s.ends_with(t.as_str()),
        ("contains", Value::String(s), Value::String(t)) => s.contains(t.as_str()),
        (op, Value::Number(a), Value::Number(b)) => stacql_cmp(op).test(&a.as_f64(), &b.as_f64()),
        // A string that spells a number also compares as that number (src/search/stacql.rs).
        (op, Value::Number(a), Value::String(b))
            if matches!(op, "eq" | "neq" | "lt" | "lte" | "gt" | "gte") =>
        {
            b.trim()
                .parse::<f64>()
                .is_ok_and(|b| b.is_finite() && stacql_cmp(op).test(&a.as_f64(), &Some(b)))
        }
        (op, Value::String(a), Value::String(b)) => stacql_cmp(op).test(a, b),
        _ => false,
    }
}

fn stacql_cmp(op: &str) -> Cmp {
    match op {
        "eq" => Cmp::Eq,
        "neq" => Cmp::Ne,
        "lt" => Cmp::Lt,
        "lte" => Cmp::Le,
        "gt" => Cmp::Gt,
        "gte" => Cmp::Ge,
        other => panic!("no such STACQL operator {other}"),
    }
}

/// The boxes a bbox covers: two when it crosses the antimeridian.
fn bbox_rects(values: &[f64]) -> Vec<Rect<f64>> {
    let (minx, miny, maxx, maxy) = match *values {
        [a, b, c, d] => (a, b, c, d),
        [a, b, _, d, e, _] => (a, b, d, e),
        _ => panic!("bbox of {} numbers", values.len()),
    };
    let rect = |x0: f64, x1: f64| Rect::new(Coord { x: x0, y: miny }, Coord { x: x1, y: maxy });
    if minx > maxx { vec![rect(minx, 180.0), rect(-180.0, maxx)] } else { vec![rect(minx, maxx)] }
}

fn rects_meet(a: &Rect<f64>, b: &Rect<f64>) -> bool {
    a.min().x <= b.max().x
        && b.min().x <= a.max().x
        && a.min().y <= b.max().y
        && b.min().y <= a.max().y
}

fn spatial_hit(spatial: &Spatial, item: &Item) -> bool {
    match spatial {
        Spatial::Bbox(values) => {
            let boxes = bbox_rects(values);
            item.shapes
                .iter()
                .any(|(g, r)| boxes.iter().any(|b| rects_meet(r, b) && g.intersects(b)))
        }
        Spatial::Intersects(query) => {
            let Some(q) = query.bounding_rect() else { return false };
            // A query that runs past ±180 also meets items shifted by 360 (src/search/mod.rs).
            let mut shifts = Vec::new();
            if q.min().x < -180.0 {
                shifts.push(-360.0);
            }
            if q.max().x > 180.0 {
                shifts.push(360.0);
            }
            item.shapes.iter().any(|(g, r)| rects_meet(r, &q) && g.intersects(query))
                || item.shapes[..item.shapes.len().min(1)].iter().any(|(g, r)| {
                    shifts.iter().any(|&dx| {
                        let moved = Rect::new(
                            Coord { x: r.min().x + dx, y: r.min().y },
                            Coord { x: r.max().x + dx, y: r.max().y },
                        );
                        rects_meet(&moved, &q) && g.translate(dx, 0.0).intersects(query)
                    })
                })
        }
    }
}

fn matches(case: &Case, item: &Item) -> bool {
    if let Some(collections) = &case.collections
        && !collections.contains(&item.key.0)
    {
        return false;
    }
    if let Some(ids) = &case.ids
        && !ids.contains(&item.key.1)
    {
        return false;
    }
    if let Some((start, end)) = case.datetime
        && (start.is_some_and(|s| item.end < s) || end.is_some_and(|e| item.start > e))
    {
        return false;
    }
    if let Some(filter) = &case.filter
        && eval_cond(filter, item) != Some(true)
    {
        return false;
    }
    if !case.query.iter().all(|q| eval_query(q, item)) {
        return false;
    }
    match &case.spatial {
        Some(spatial) => spatial_hit(spatial, item),
        None => true,
    }
}

// ------------------------------------------------------------------------------------------
// Generating searches
// ------------------------------------------------------------------------------------------

fn generate(rng: &mut StdRng, ds: &DataSet) -> Case {
    let mut body = Map::new();
    let mut case = Case {
        body: Value::Null,
        spatial: None,
        datetime: None,
        collections: None,
        ids: None,
        filter: None,
        query: Vec::new(),
    };
    if !ds.located.is_empty() && rng.random_bool(0.6) {
        if rng.random_bool(0.55) {
            let bbox = gen_bbox(rng, ds);
            body.insert("bbox".into(), json!(bbox));
            case.spatial = Some(Spatial::Bbox(bbox));
        } else {
            let (value, geometry) = gen_geometry(rng, ds);
            body.insert("intersects".into(), value);
            case.spatial = Some(Spatial::Intersects(geometry));
        }
    }
    if rng.random_bool(0.45) {
        let (text, interval) = gen_datetime(rng, ds);
        body.insert("datetime".into(), text.into());
        case.datetime = Some(interval);
    }
    if rng.random_bool(0.25) {
        let mut chosen = ds.collections.clone();
        chosen.shuffle(rng);
        chosen.truncate(rng.random_range(1..=chosen.len()));
        if rng.random_bool(0.2) {
            chosen.push("no-such-collection".into());
        }
        body.insert("collections".into(), json!(chosen));
        case.collections = Some(chosen);
    }
    if rng.random_bool(0.07) {
        let mut ids: Vec<String> = (0..rng.random_range(1..=20))
            .map(|_| ds.items.choose(rng).expect("items").key.1.clone())
            .collect();
        if rng.random_bool(0.3) {
            ids.push("no-such-item".into());
        }
        body.insert("ids".into(), json!(ids));
        case.ids = Some(ids);
    }
    if rng.random_bool(0.45) {
        let cond = gen_cond(rng, ds, 0);
        if rng.random_bool(0.5) {
            body.insert("filter".into(), render_text(rng, &cond).into());
            if rng.random_bool(0.5) {
                body.insert("filter-lang".into(), "cql2-text".into());
            }
        } else {
            body.insert("filter".into(), render_json(&cond));
            if rng.random_bool(0.5) {
                body.insert("filter-lang".into(), "cql2-json".into());
            }
        }
        case.filter = Some(cond);
    }
    if rng.random_bool(0.12) {
        let mut query: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for _ in 0..rng.random_range(1..=3) {
            let q = gen_query_cond(rng, ds);
            query.entry(q.prop).or_default().insert(q.op, q.value);
        }
        case.query = query
            .iter()
            .flat_map(|(prop, ops)| {
                ops.iter().map(|(op, value)| QueryCond {
                    prop: prop.clone(),
                    op: op.clone(),
                    value: value.clone(),
                })
            })
            .collect();
        body.insert("query".into(), json!(query));
    }
    case.body = Value::Object(body);
    case
}

/// A longitude brought into [-180, 180].
fn wrap(mut x: f64) -> f64 {
    while x > 180.0 {
        x -= 360.0;
    }
    while x < -180.0 {
        x += 360.0;
    }
    x
}

fn clamp_lat(y: f64) -> f64 {
    y.clamp(-90.0, 90.0)
}

/// A random located item.
fn pick_item<'d>(rng: &mut StdRng, ds: &'d DataSet) -> &'d Item {
    &ds.items[*ds.located.choose(rng).expect("located items")]
}

/// A point on or near an item: one of its vertices, or a point inside its bounds (as written).
fn anchor(rng: &mut StdRng, item: &Item) -> Coord<f64> {
    let rect = item.rect.expect("located");
    if rng.random_bool(0.7) {
        *item.vertices.choose(rng).expect("vertices")
    } else {
        Coord {
            x: rng.random_range(rect.min().x..=rect.max().x),
            y: rng.random_range(rect.min().y..=rect.max().y),
        }
    }
}

/// A size in degrees: relative to the item's, or absolute.
fn size(rng: &mut StdRng, item: &Item) -> f64 {
    let rect = item.rect.expect("located");
    let extent = rect.width().max(rect.height()).max(1e-6);
    let factor: f64 = *[0.001, 0.01, 0.1, 0.3, 0.5, 1.0, 2.0, 5.0].choose(rng).unwrap();
    if rng.random_bool(0.8) {
        extent * factor * rng.random_range(0.5..1.5)
    } else {
        *[0.5, 5.0, 30.0, 90.0, 200.0].choose(rng).unwrap() * rng.random_range(0.5..1.5)
    }
}

/// Rounds to a random number of decimals, or not at all.
fn round(rng: &mut StdRng, x: f64) -> f64 {
    if rng.random_bool(0.5) {
        return x;
    }
    let scale = 10f64.powi(rng.random_range(0..=4));
    (x * scale).round() / scale
}

/// The next f64 above `x`.
fn next_up(x: f64) -> f64 {
    if x == 0.0 {
        return f64::from_bits(1);
    }
    if x > 0.0 { f64::from_bits(x.to_bits() + 1) } else { f64::from_bits(x.to_bits() - 1) }
}

/// The next f64 below `x`.
fn next_down(x: f64) -> f64 {
    -next_up(-x)
}

/// A bbox, `[minx, miny, maxx, maxy]` with minx > maxx when it crosses the antimeridian.
fn gen_bbox(rng: &mut StdRng, ds: &DataSet) -> Vec<f64> {
    let item = pick_item(rng, ds);
    let rect = item.rect.expect("located");
    let [mut minx, mut miny, mut maxx, mut maxy] = match rng.random_range(0..11) {
        // Around a point of an item.
        0..=3 => {
            let p = anchor(rng, item);
            let (w, h) = (size(rng, item), size(rng, item));
            let (x0, x1) =
                (p.x - w * rng.random_range(0.0..1.0), p.x + w * rng.random_range(0.0..1.0));
            let (x0, x1) = if x1 - x0 >= 360.0 { (-180.0, 180.0) } else { (wrap(x0), wrap(x1)) };
            let (y0, y1) =
                (p.y - h * rng.random_range(0.0..1.0), p.y + h * rng.random_range(0.0..1.0));
            [round(rng, x0), clamp_lat(y0), round(rng, x1), clamp_lat(y1)]
        }
        // An item's bounds exactly, wrapped onto the globe (crossing when it runs past 180).
        4 => [wrap(rect.min().x), rect.min().y, wrap(rect.max().x), rect.max().y],
        // Touching an item's bounds from outside, or missing it by the smallest step.
        5 | 6 => {
            let d = size(rng, item);
            let miss = rng.random_bool(0.4);
            let (x0, y0, x1, y1) = (rect.min().x, rect.min().y, rect.max().x, rect.max().y);
            match rng.random_range(0..4) {
                0 => {
                    let e = if miss { next_up(x1) } else { x1 };
                    [wrap(e), y0, wrap(e + d), y1]
                }
                1 => {
                    let e = if miss { next_down(x0) } else { x0 };
                    [wrap(e - d), y0, wrap(e), y1]
                }
                2 => {
                    let e = if miss { next_up(y1) } else { y1 };
                    [wrap(x0), e, wrap(x1), clamp_lat(e + d)]
                }
                _ => {
                    let e = if miss { next_down(y0) } else { y0 };
                    [wrap(x0), clamp_lat(e - d), wrap(x1), e]
                }
            }
        }
        // Everything but a strip of longitudes near an item: a bbox across the antimeridian.
        7 => {
            let p = anchor(rng, item);
            let a = wrap(p.x);
            let (g0, g1) = (size(rng, item).min(60.0), size(rng, item).min(60.0));
            let (x0, x1) = ((a + g0).min(180.0), (a - g1).max(-180.0));
            let (y0, y1) = if rng.random_bool(0.5) {
                (-90.0, 90.0)
            } else {
                (clamp_lat(p.y - size(rng, item)), clamp_lat(p.y + size(rng, item)))
            };
            [x0, y0, x1, y1]
        }
        // On or beside the antimeridian itself.
        8 => {
            let (y0, y1) = if rng.random_bool(0.5) {
                (clamp_lat(rect.min().y - 1.0), clamp_lat(rect.max().y + 1.0))
            } else {
                let a: f64 = rng.random_range(-90.0..=90.0);
                let b: f64 = rng.random_range(-90.0..=90.0);
                (a.min(b), a.max(b))
            };
            match rng.random_range(0..4) {
                0 => [rng.random_range(170.0..180.0), y0, rng.random_range(-180.0..-170.0), y1],
                1 => [180.0, y0, -180.0, y1],
                2 => {
                    let x = rng.random_range(179.0..180.0);
                    [round(rng, x), y0, 180.0, y1]
                }
                _ => {
                    let x = rng.random_range(-180.0..-179.0);
                    [-180.0, y0, round(rng, x), y1]
                }
            }
        }
        // Degenerate: a vertical or horizontal line, or a point, through an item's vertex.
        9 => {
            let v = on_globe(*item.vertices.choose(rng).unwrap());
            let d = size(rng, item);
            match rng.random_range(0..3) {
                0 => [v.x, clamp_lat(v.y - d), v.x, clamp_lat(v.y + d)],
                1 => [wrap(v.x - d), v.y, wrap(v.x + d), v.y],
                _ => [v.x, v.y, v.x, v.y],
            }
        }
        // Large and random.
        _ => {
            let x0: f64 = rng.random_range(-180.0..=180.0);
            let width: f64 = rng.random_range(0.0..=360.0);
            let x1 = if x0 + width > 180.0 { x0 + width - 360.0 } else { x0 + width };
            let a: f64 = rng.random_range(-90.0..=90.0);
            let b: f64 = rng.random_range(-90.0..=90.0);
            [round(rng, x0), a.min(b), round(rng, x1), a.max(b)]
        }
    };
    if miny > maxy {
        std::mem::swap(&mut miny, &mut maxy);
    }
    minx = minx.clamp(-180.0, 180.0);
    maxx = maxx.clamp(-180.0, 180.0);
    if rng.random_bool(0.1) {
        let z0: f64 = rng.random_range(-100.0..100.0);
        vec![minx, miny, z0, maxx, maxy, z0 + rng.random_range(0.0..1000.0)]
    } else {
        vec![minx, miny, maxx, maxy]
    }
}

/// A point on the globe: longitude wrapped, latitude clamped.
fn on_globe(c: Coord<f64>) -> Coord<f64> {
    Coord { x: wrap(c.x), y: clamp_lat(c.y) }
}

/// A simple polygon ring around `center`: `n` points at sorted angles, closed. Longitudes
/// are clamped to ±180 unless `past_180`.
fn ring(
    rng: &mut StdRng,
    center: Coord<f64>,
    radius: f64,
    n: usize,
    past_180: bool,
) -> Vec<Coord<f64>> {
    let mut angles: Vec<f64> =
        (0..n).map(|_| rng.random_range(0.0..std::f64::consts::TAU)).collect();
    angles.sort_by(f64::total_cmp);
    let mut points: Vec<Coord<f64>> = angles
        .iter()
        .map(|a| {
            let r = radius * rng.random_range(0.3..1.0);
            let x = center.x + r * a.cos();
            Coord {
                x: if past_180 { x } else { x.clamp(-180.0, 180.0) },
                y: clamp_lat(center.y + r * a.sin()),
            }
        })
        .collect();
    points.push(points[0]);
    points
}

/// A polygon (as rings) as GeoJSON coordinates, and as a `geo` polygon. One polygon in ten
/// repeats one of its vertices, which GeoJSON allows.
fn polygon(rng: &mut StdRng, mut ring: Vec<Coord<f64>>) -> (Value, geo::Polygon<f64>) {
    if rng.random_bool(0.1) {
        let at = rng.random_range(0..ring.len() - 1);
        ring.insert(at, ring[at]);
    }
    let coordinates = json!([ring.iter().map(|c| json!([c.x, c.y])).collect::<Vec<_>>()]);
    (coordinates, geo::Polygon::new(geo::LineString::from(ring), Vec::new()))
}

/// An `intersects` geometry, as GeoJSON and as the oracle's geometry.
fn gen_geometry(rng: &mut StdRng, ds: &DataSet) -> (Value, geo::Geometry<f64>) {
    let item = pick_item(rng, ds);
    let single = |rng: &mut StdRng, ring: Vec<Coord<f64>>| {
        let (coordinates, p) = polygon(rng, ring);
        (json!({"type": "Polygon", "coordinates": coordinates}), geo::Geometry::from(p))
    };
    match rng.random_range(0..21) {
        // A triangle or quad near a point of an item.
        0..=7 => {
            let center = on_globe(anchor(rng, item));
            let (radius, n) = (size(rng, item), rng.random_range(3..=4));
            let r = ring(rng, center, radius, n, false);
            single(rng, r)
        }
        // A small right triangle in a corner of an item's bounds, pointing inwards: inside
        // the bbox, often outside the geometry.
        8..=10 => {
            let rect = item.rect.expect("located");
            let (w, h) = (rect.width(), rect.height());
            let sx = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let sy = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let corner = Coord {
                x: if sx > 0.0 { rect.min().x } else { rect.max().x },
                y: if sy > 0.0 { rect.min().y } else { rect.max().y },
            };
            let f = *[0.01, 0.05, 0.15, 0.3].choose(rng).unwrap();
            let r: Vec<Coord<f64>> = [
                corner,
                Coord { x: corner.x + sx * w * f, y: corner.y },
                Coord { x: corner.x, y: corner.y + sy * h * f },
                corner,
            ]
            .into_iter()
            .map(on_globe)
            .collect();
            single(rng, r)
        }
        // A point: a vertex of the item exactly, or near it.
        11 | 12 => {
            let mut p = on_globe(*item.vertices.choose(rng).unwrap());
            if rng.random_bool(0.5) {
                let d = size(rng, item) * 0.1;
                p = on_globe(Coord {
                    x: p.x + rng.random_range(-d..=d),
                    y: p.y + rng.random_range(-d..=d),
                });
            }
            (json!({"type": "Point", "coordinates": [p.x, p.y]}), geo::Point::from(p).into())
        }
        // A line between points of two items (or two points of one).
        13 | 14 => {
            let other = pick_item(rng, ds);
            let a = on_globe(anchor(rng, item));
            let second = if rng.random_bool(0.5) { other } else { item };
            let b = on_globe(anchor(rng, second));
            (
                json!({"type": "LineString", "coordinates": [[a.x, a.y], [b.x, b.y]]}),
                geo::LineString::from(vec![a, b]).into(),
            )
        }
        // Two polygons near two items.
        15 | 16 => {
            let other = pick_item(rng, ds);
            let (ca, ra) = (on_globe(anchor(rng, item)), size(rng, item));
            let (cb, rb) = (on_globe(anchor(rng, other)), size(rng, other));
            let (ra, rb) = (ring(rng, ca, ra, 3, false), ring(rng, cb, rb, 4, false));
            let ((a, pa), (b, pb)) = (polygon(rng, ra), polygon(rng, rb));
            (
                json!({"type": "MultiPolygon", "coordinates": [a, b]}),
                geo::MultiPolygon::new(vec![pa, pb]).into(),
            )
        }
        // Across the antimeridian, written with longitudes past ±180 (continuous), near an
        // item when one is near it.
        17 => {
            let near: Vec<&Item> = ds
                .located
                .iter()
                .map(|&i| &ds.items[i])
                .filter(|i| i.rect.is_some_and(|r| r.min().x < -170.0 || r.max().x > 170.0))
                .collect();
            let east = rng.random_bool(0.5);
            let y = match near.choose(rng) {
                Some(i) => anchor(rng, i).y,
                None => rng.random_range(-80.0..80.0),
            };
            let side = if east { 180.0 } else { -180.0 };
            let center = Coord { x: side + rng.random_range(-3.0..3.0), y };
            let radius = rng.random_range(0.5..8.0);
            let n = rng.random_range(3..=4);
            let r = ring(rng, center, radius, n, true);
            single(rng, r)
        }
        // Half a box around an item: three of the box's corners, so that items in the box
        // may lie on either side of its diagonal.
        18 => {
            let rect = item.rect.expect("located");
            let m = size(rng, item) * rng.random_range(0.0..1.0);
            let (x0, x1) = ((rect.min().x - m).max(-180.0), (rect.max().x + m).min(180.0));
            let (y0, y1) = (clamp_lat(rect.min().y - m), clamp_lat(rect.max().y + m));
            let mut corners = vec![
                Coord { x: x0, y: y0 },
                Coord { x: x1, y: y0 },
                Coord { x: x1, y: y1 },
                Coord { x: x0, y: y1 },
            ];
            corners.rotate_left(rng.random_range(0..4));
            corners.truncate(3);
            if rng.random_bool(0.5) {
                corners.reverse();
            }
            corners.push(corners[0]);
            single(rng, corners)
        }
        // A large triangle or quad.
        _ => {
            let center = on_globe(anchor(rng, item));
            let radius = rng.random_range(5.0..60.0);
            let n = rng.random_range(3..=4);
            let r = ring(rng, center, radius, n, false);
            single(rng, r)
        }
    }
}

/// An instant: an item's start or end, near one, or anywhere around the data.
fn gen_instant(rng: &mut StdRng, ds: &DataSet) -> i64 {
    let t = *ds.instants.choose(rng).expect("instants");
    match rng.random_range(0..10) {
        0..=3 => t,
        4 | 5 => {
            let d = *[1i64, 1_000, 1_000_000, 3_600_000_000].choose(rng).unwrap();
            if rng.random_bool(0.5) { t + d } else { t - d }
        }
        _ => {
            let day = 86_400_000_000;
            let (lo, hi) = (ds.instants[0] - 5 * day, ds.instants[ds.instants.len() - 1] + 5 * day);
            rng.random_range(lo..=hi)
        }
    }
}

/// RFC 3339 text of an instant, in UTC or at some offset.
fn render_instant(rng: &mut StdRng, micros: i64) -> String {
    let utc = DateTime::from_timestamp_micros(micros).expect("instant in range");
    let offset = *[0, 0, 0, 3600, -5 * 3600, 5 * 3600 + 1800].choose(rng).unwrap();
    let local = utc.with_timezone(&FixedOffset::east_opt(offset).unwrap());
    let format = if rng.random_bool(0.7) { SecondsFormat::AutoSi } else { SecondsFormat::Micros };
    local.to_rfc3339_opts(format, offset == 0)
}

fn gen_datetime(rng: &mut StdRng, ds: &DataSet) -> (String, (Option<i64>, Option<i64>)) {
    let a = gen_instant(rng, ds);
    match rng.random_range(0..10) {
        0 | 1 => (render_instant(rng, a), (Some(a), Some(a))),
        2..=5 => {
            let b = gen_instant(rng, ds);
            let (a, b) = (a.min(b), a.max(b));
            (format!("{}/{}", render_instant(rng, a), render_instant(rng, b)), (Some(a), Some(b)))
        }
        n => {
            let open = if n % 2 == 0 { ".." } else { "" };
            if rng.random_bool(0.5) {
                (format!("{open}/{}", render_instant(rng, a)), (None, Some(a)))
            } else {
                (format!("{}/{open}", render_instant(rng, a)), (Some(a), None))
            }
        }
    }
}

/// A number to compare with: a value the data has, one between its extremes, or an integer.
fn gen_number(rng: &mut StdRng, values: &[Value]) -> Value {
    let floats: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
    let lo = floats.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = floats.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match rng.random_range(0..10) {
        0..=4 => values.choose(rng).unwrap().clone(),
        5..=8 => {
            let x = if lo < hi { rng.random_range(lo..=hi) } else { lo };
            json!(round(rng, x))
        }
        _ => json!(rng.random_range(lo.floor() as i64 - 1..=hi.ceil() as i64 + 1)),
    }
}

/// A LIKE pattern from a value: a prefix (some characters made `_`, wildcards escaped),
/// usually followed by `%`.
fn gen_pattern(rng: &mut StdRng, value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let n =
        if rng.random_bool(0.2) { chars.len() } else { rng.random_range(0..=chars.len().min(12)) };
    let mut pattern = String::new();
    for &c in &chars[..n] {
        if rng.random_bool(0.08) {
            pattern.push('_');
        } else {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
    }
    if rng.random_bool(0.1) {
        pattern.push('x');
    }
    if rng.random_bool(0.85) {
        pattern.push('%');
    }
    pattern
}

fn gen_atom(rng: &mut StdRng, ds: &DataSet) -> Atom {
    let prefixed = |rng: &mut StdRng, prop: &str| {
        if prop != "id" && prop != "collection" && rng.random_bool(0.1) {
            format!("properties.{prop}")
        } else {
            prop.to_string()
        }
    };
    let roll = rng.random_range(0..20);
    if roll == 0 {
        let cmp = *CMPS.choose(rng).unwrap();
        return Atom::Num { prop: "no:such_property".into(), cmp, value: json!(1) };
    }
    if roll < 11 && !ds.numeric.is_empty() {
        let (prop, values) = ds.numeric.choose(rng).unwrap();
        return Atom::Num {
            prop: prefixed(rng, prop),
            cmp: *CMPS.choose(rng).unwrap(),
            value: gen_number(rng, values),
        };
    }
    let (prop, values) = ds.strings.choose(rng).unwrap();
    let prop = prefixed(rng, prop);
    let value = values.choose(rng).unwrap();
    match rng.random_range(0..3) {
        0 => Atom::Str { prop, cmp: Cmp::Eq, value: value.clone() },
        1 => Atom::Str { prop, cmp: Cmp::Ne, value: value.clone() },
        _ => Atom::Like { prop, pattern: gen_pattern(rng, value) },
    }
}

fn gen_cond(rng: &mut StdRng, ds: &DataSet, depth: usize) -> Cond {
    let roll = if depth >= 2 { 0 } else { rng.random_range(0..10) };
    match roll {
        0..=5 => Cond::Atom(gen_atom(rng, ds)),
        6 | 7 => {
            Cond::And((0..rng.random_range(2..=3)).map(|_| gen_cond(rng, ds, depth + 1)).collect())
        }
        8 => Cond::Or((0..rng.random_range(2..=3)).map(|_| gen_cond(rng, ds, depth + 1)).collect()),
        _ => Cond::Not(Box::new(gen_cond(rng, ds, depth + 1))),
    }
}

fn gen_query_cond(rng: &mut StdRng, ds: &DataSet) -> QueryCond {
    if rng.random_bool(0.55) && !ds.numeric.is_empty() {
        let (prop, values) = ds.numeric.choose(rng).unwrap();
        let op = *["eq", "neq", "lt", "lte", "gt", "gte", "in"].choose(rng).unwrap();
        let value = if op == "in" {
            json!((0..rng.random_range(1..=3)).map(|_| gen_number(rng, values)).collect::<Vec<_>>())
        } else {
            gen_number(rng, values)
        };
        return QueryCond { prop: prop.clone(), op: op.into(), value };
    }
    let (prop, values) = ds.strings.choose(rng).unwrap();
    let value = values.choose(rng).unwrap().clone();
    let chars: Vec<char> = value.chars().collect();
    let (op, value) = match rng.random_range(0..6) {
        0 => ("eq", json!(value)),
        1 => ("neq", json!(value)),
        2 => ("in", json!([value, values.choose(rng).unwrap()])),
        3 => (
            "startsWith",
            json!(chars[..rng.random_range(0..=chars.len())].iter().collect::<String>()),
        ),
        4 => (
            "endsWith",
            json!(chars[rng.random_range(0..=chars.len())..].iter().collect::<String>()),
        ),
        _ => {
            let a = rng.random_range(0..=chars.len());
            let b = rng.random_range(a..=chars.len().min(a + 6));
            ("contains", json!(chars[a..b].iter().collect::<String>()))
        }
    };
    QueryCond { prop: prop.clone(), op: op.into(), value }
}

// ------------------------------------------------------------------------------------------
// Rendering filters
// ------------------------------------------------------------------------------------------

/// A property name in CQL2 text: bare when the grammar allows it (and at random), else quoted.
fn ident(rng: &mut StdRng, name: &str) -> String {
    const KEYWORDS: [&str; 11] =
        ["and", "or", "not", "like", "in", "is", "between", "true", "false", "null", "div"];
    let bare = name.chars().next().is_some_and(char::is_alphabetic)
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | ':'))
        && !KEYWORDS.contains(&name.to_ascii_lowercase().as_str());
    if bare && rng.random_bool(0.7) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

fn string_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn number_text(value: &Value) -> String {
    match value.as_f64() {
        Some(x) if !(value.is_i64() || value.is_u64()) => format!("{x}"),
        _ => value.to_string(),
    }
}

fn render_text(rng: &mut StdRng, cond: &Cond) -> String {
    match cond {
        Cond::Atom(Atom::Num { prop, cmp, value }) => {
            if rng.random_bool(0.15) {
                format!("{} {} {}", number_text(value), cmp.flipped().symbol(), ident(rng, prop))
            } else {
                format!("{} {} {}", ident(rng, prop), cmp.symbol(), number_text(value))
            }
        }
        Cond::Atom(Atom::Str { prop, cmp, value }) => {
            if rng.random_bool(0.15) {
                format!("{} {} {}", string_literal(value), cmp.flipped().symbol(), ident(rng, prop))
            } else {
                format!("{} {} {}", ident(rng, prop), cmp.symbol(), string_literal(value))
            }
        }
        Cond::Atom(Atom::Like { prop, pattern }) => {
            let like = if rng.random_bool(0.5) { "LIKE" } else { "like" };
            format!("{} {like} {}", ident(rng, prop), string_literal(pattern))
        }
        Cond::And(parts) | Cond::Or(parts) => {
            let joiner = if matches!(cond, Cond::And(_)) { " AND " } else { " OR " };
            parts
                .iter()
                .map(|p| format!("({})", render_text(rng, p)))
                .collect::<Vec<_>>()
                .join(joiner)
        }
        Cond::Not(part) => format!("NOT ({})", render_text(rng, part)),
    }
}

fn render_json(cond: &Cond) -> Value {
    let property = |p: &str| json!({"property": p});
    match cond {
        Cond::Atom(Atom::Num { prop, cmp, value }) => {
            json!({"op": cmp.symbol(), "args": [property(prop), value]})
        }
        Cond::Atom(Atom::Str { prop, cmp, value }) => {
            json!({"op": cmp.symbol(), "args": [property(prop), value]})
        }
        Cond::Atom(Atom::Like { prop, pattern }) => {
            json!({"op": "like", "args": [property(prop), pattern]})
        }
        Cond::And(parts) => {
            json!({"op": "and", "args": parts.iter().map(render_json).collect::<Vec<_>>()})
        }
        Cond::Or(parts) => {
            json!({"op": "or", "args": parts.iter().map(render_json).collect::<Vec<_>>()})
        }
        Cond::Not(part) => json!({"op": "not", "args": [render_json(part)]}),
    }
}

// ------------------------------------------------------------------------------------------
// Running cases
// ------------------------------------------------------------------------------------------

/// The (collection, id) of a returned item.
///
/// Parsing every returned item in a debug build costs more than the rest of the test, so the
/// two members are first looked up as text (the standard library's search is optimised even
/// in debug builds); a result that is not a key of the data set is read again by parsing.
fn key_of(item_json: &str, ds: &DataSet) -> Key {
    if let (Some(collection), Some(id)) = (member(item_json, "collection"), member(item_json, "id"))
    {
        let key = (collection.to_string(), id.to_string());
        if ds.starts.contains_key(&key) {
            return key;
        }
    }
    key_of_any(item_json)
}

/// The (collection, id) of an item, parsed.
fn key_of_any(item_json: &str) -> Key {
    #[derive(serde::Deserialize)]
    struct Ident {
        id: String,
        #[serde(default)]
        collection: String,
    }
    let ident: Ident = serde_json::from_str(item_json).expect("search returns JSON items");
    (ident.collection, ident.id)
}

/// The first string member named `name` in JSON text (its value, when it has no escapes).
fn member<'t>(text: &'t str, name: &str) -> Option<&'t str> {
    let quoted = format!("\"{name}\"");
    let mut from = 0;
    while let Some(at) = text[from..].find(&quoted) {
        from += at + quoted.len();
        if let Some(rest) = text[from..].trim_start().strip_prefix(':') {
            let rest = rest.trim_start().strip_prefix('"')?;
            let value = &rest[..rest.find('"')?];
            return (!value.contains('\\')).then_some(value);
        }
    }
    None
}

/// Items by key, with their bounds and time, for a failure message.
fn show(keys: &[&Key], ds: &DataSet) -> String {
    let mut lines: Vec<String> = keys
        .iter()
        .take(10)
        .map(|k| {
            let detail = ds.items.iter().find(|i| &i.key == *k).map(|i| {
                let r = i.rect.map(|r| [r.min().x, r.min().y, r.max().x, r.max().y]);
                format!(
                    " (geometry bounds {r:?}, time {}..{})",
                    stacdb::document::format_micros(i.start),
                    stacdb::document::format_micros(i.end)
                )
            });
            format!("    {}/{}{}", k.0, k.1, detail.unwrap_or_default())
        })
        .collect();
    if keys.len() > 10 {
        let rest: Vec<String> =
            keys[10..].iter().take(200).map(|k| format!("{}/{}", k.0, k.1)).collect();
        let more = keys.len().saturating_sub(210);
        let more = if more > 0 { format!(" … and {more} more") } else { String::new() };
        lines.push(format!("    and {}{more}", rest.join(", ")));
    }
    lines.join("\n")
}

/// Runs one case against the catalog; `Err` says how it disagrees with the oracle.
fn check(
    rng: &mut StdRng,
    catalog: &Catalog,
    ds: &DataSet,
    case: &Case,
    expected: &BTreeSet<Key>,
) -> Result<(), String> {
    let options = SearchOptions::default();
    let request = |body: &Value| Request::from_json(body).map_err(|e| format!("refused: {e}"));
    let mut streamed: Vec<Key> = Vec::new();
    catalog
        .search_each(&request(&case.body)?, &options, None, |item| {
            streamed.push(key_of(item, ds));
            Ok(true)
        })
        .map_err(|e| format!("search_each failed: {e}"))?;
    let actual: BTreeSet<Key> = streamed.iter().cloned().collect();
    if actual != *expected {
        let only_expected: Vec<&Key> = expected.difference(&actual).collect();
        let only_actual: Vec<&Key> = actual.difference(expected).collect();
        return Err(format!(
            "search_each returned {} items, the oracle expects {}\n  only in expected ({}):\n{}\n  only in actual ({}):\n{}",
            actual.len(),
            expected.len(),
            only_expected.len(),
            show(&only_expected, ds),
            only_actual.len(),
            show(&only_actual, ds)
        ));
    }
    if streamed.len() != actual.len() {
        return Err(format!(
            "search_each gave {} items, {} distinct",
            streamed.len(),
            actual.len()
        ));
    }
    for pair in streamed.windows(2) {
        let order = |k: &Key| (ds.starts[k], k.1.clone());
        if order(&pair[0]) < order(&pair[1]) {
            return Err(format!(
                "search_each is not newest first, then by id descending: {:?} before {:?}",
                pair[0], pair[1]
            ));
        }
    }
    let count =
        catalog.count(&request(&case.body)?, &options).map_err(|e| format!("count failed: {e}"))?;
    if count != expected.len() as u64 {
        return Err(format!("count() is {count}, the oracle finds {}", expected.len()));
    }
    let n = expected.len();
    // One page: its number_matched, its items (the first of the stream) and whether it has a
    // next page.
    if rng.random_bool(0.25) {
        let limit = rng.random_range(1..=20usize);
        let mut body = case.body.clone();
        body["limit"] = json!(limit);
        let page = catalog
            .search(&request(&body)?, &options)
            .map_err(|e| format!("search failed: {e}"))?;
        let keys: Vec<Key> = page.items.iter().map(|i| key_of(i, ds)).collect();
        if page.number_matched != n as u64 {
            return Err(format!(
                "page of {limit}: number_matched is {}, not {n}",
                page.number_matched
            ));
        }
        if keys[..] != streamed[..n.min(limit)] {
            return Err(format!("page of {limit}: items {keys:?} are not the first of the stream"));
        }
        if page.next.is_some() != (n > limit) {
            return Err(format!("page of {limit} of {n}: next is {:?}", page.next));
        }
    }
    // Every page, by token.
    if n <= 300 && rng.random_bool(0.05) {
        let limit = rng.random_range((n / 20).max(1)..=50);
        let mut body = case.body.clone();
        body["limit"] = json!(limit);
        let mut walked: Vec<Key> = Vec::new();
        loop {
            let page = catalog
                .search(&request(&body)?, &options)
                .map_err(|e| format!("search failed: {e}"))?;
            walked.extend(page.items.iter().map(|i| key_of(i, ds)));
            match page.next {
                Some(_) if walked.len() >= n => {
                    return Err(format!("pages of {limit}: a next token after all {n} items"));
                }
                Some(token) => body["token"] = json!(token),
                None => break,
            }
        }
        if walked != streamed {
            return Err(format!("walking pages of {limit} gives {walked:?}, not the stream"));
        }
    }
    Ok(())
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text:?} is not a number: {e}")))
}

/// The seed used when `STACDB_ORACLE_SEED` is not set.
const DEFAULT_SEED: u64 = 0x5eed_0f57_acdb;

/// Runs the cases over one data set and asserts the catalog agreed with the oracle on all.
fn run(ds: &DataSet, catalog: &Catalog) {
    // A fixed seed by default, so that CI runs the same cases every time;
    // STACDB_ORACLE_SEED=random explores new ones.
    let seed = match std::env::var("STACDB_ORACLE_SEED").as_deref() {
        Ok("random") => rand::random(),
        _ => env_number("STACDB_ORACLE_SEED").unwrap_or(DEFAULT_SEED),
    };
    let cases = env_number("STACDB_ORACLE_CASES").map_or(DEFAULT_CASES, |n| n as usize);
    let started = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let (mut hits, mut non_empty, mut partial) = (0usize, 0usize, 0usize);
    // Each case has its own generator, so one can be replayed from the seed and its number.
    let salt = ds
        .name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    for n in 0..cases {
        let mut rng =
            StdRng::seed_from_u64(seed ^ salt ^ (n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let case = generate(&mut rng, ds);
        let expected: BTreeSet<Key> =
            ds.items.iter().filter(|i| matches(&case, i)).map(|i| i.key.clone()).collect();
        hits += expected.len();
        non_empty += usize::from(!expected.is_empty());
        partial += usize::from(!expected.is_empty() && expected.len() < ds.items.len());
        if let Err(message) = check(&mut rng, catalog, ds, &case, &expected) {
            failures.push(format!(
                "[{}] seed {seed} case {n}: {message}\n  search body: {}",
                ds.name,
                serde_json::to_string(&case.body).unwrap()
            ));
        }
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "search_oracle [{}]: {cases} cases over {} items, average {:.1} hits, {non_empty} non-empty, {partial} partial, {} failed, {:.1?} (seed {seed}; STACDB_ORACLE_SEED={seed} replays)",
        ds.name,
        ds.items.len(),
        hits as f64 / cases.max(1) as f64,
        failures.len(),
        started.elapsed(),
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} searches over {} disagree with the oracle (STACDB_ORACLE_SEED={seed} replays):\n\n{}{}",
        failures.len(),
        ds.name,
        failures.iter().take(SHOWN_FAILURES).cloned().collect::<Vec<_>>().join("\n\n"),
        if failures.len() > SHOWN_FAILURES { "\n\n…" } else { "" }
    );
    if cases >= 50 {
        assert!(
            non_empty * 10 >= cases * 3,
            "[{}] seed {seed}: only {non_empty} of {cases} searches matched anything: the test is close to vacuous",
            ds.name
        );
        assert!(
            partial * 10 >= cases * 2,
            "[{}] seed {seed}: only {partial} of {cases} searches matched some but not all items",
            ds.name
        );
    }
}

// ------------------------------------------------------------------------------------------
// Data sets
// ------------------------------------------------------------------------------------------

fn items_of(path: &Path) -> Vec<Value> {
    ingest_support::file_documents(path).into_iter().filter(ingest_support::is_item).collect()
}

fn collection_ids(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .flat_map(|p| ingest_support::file_documents(p))
        .filter(ingest_support::is_collection)
        .map(|c| ingest_support::id_of(&c).to_string())
        .collect()
}

/// Ingests the files into a new temporary catalog.
fn catalog_of(paths: &[PathBuf], create_collections: bool) -> ingest_support::TempCatalog {
    let mut t = ingest_support::temp_catalog();
    let options = IngestOptions { create_collections, ..Default::default() };
    ingest_support::ingest(&mut t.catalog, paths, &options).expect("ingest");
    t
}

/// Ingests collection files and item files, then runs the oracle over the items.
fn oracle_over(test: &'static str, collections: &[&str], items: &[&str], create: bool) {
    let Some(data) = common::data_dir(test) else { return };
    let collections: Vec<PathBuf> =
        collections.iter().map(|c| common::data_file(&data, c)).collect();
    let items: Vec<PathBuf> = items.iter().map(|i| common::data_file(&data, i)).collect();
    let started = Instant::now();
    let t = catalog_of(&[collections.clone(), items.clone()].concat(), create);
    let ingested = started.elapsed();
    let ds = DataSet::new(
        test,
        items.iter().flat_map(|p| items_of(p)).collect(),
        collection_ids(&collections),
    );
    assert_eq!(t.catalog.info().unwrap().item_count, ds.items.len() as i64, "{test}: items stored");
    let _ = writeln!(
        std::io::stderr().lock(),
        "search_oracle [{test}]: ingested {} items in {ingested:.1?}",
        ds.items.len()
    );
    run(&ds, &t.catalog);
}

#[test]
fn pgstac_testdata() {
    let dir = "fixtures/pgstac/src/pgstac/tests/testdata";
    oracle_over(
        "pgstac_testdata",
        &[&format!("{dir}/collections.ndjson")],
        &[&format!("{dir}/items.ndjson")],
        false,
    );
}

#[test]
fn sentinel_2_1000() {
    oracle_over(
        "sentinel_2_1000",
        &["bench/rustac/sentinel-2-l2a.collection.json"],
        &["bench/rustac/1000-sentinel-2-items.ndjson.gz"],
        false,
    );
}

#[test]
fn modis_1400() {
    oracle_over(
        "modis_1400",
        &["bench/pgstac/modis-13Q1-061.collections.ndjson.gz"],
        &["bench/pgstac/modis-13Q1-061-1400.items.ndjson.gz"],
        false,
    );
}

/// The items of the edge-case index's antimeridian row (MultiPolygons split at 180, bboxes
/// with minx > maxx), the other stactools-sentinel2 test items, and an item without geometry.
/// Items without a collection get one (a second one for a repeated id).
#[test]
fn antimeridian_sentinel_2() {
    let test = "antimeridian_sentinel_2";
    let Some(data) = common::data_dir(test) else { return };
    let fixtures = data.join("fixtures");
    let mut files = vec![
        common::data_file(
            &data,
            "fixtures/stac-fastapi-sqlalchemy/tests/data/test_item_multipolygon.json",
        ),
        common::data_file(
            &data,
            "fixtures/stac-fastapi-sqlalchemy/tests/data/test_item_geometry_null.json",
        ),
        common::data_file(
            &data,
            "fixtures/stactools-sentinel2/examples/sentinel2-l1c-example/S2A_T01LAC_20200717T221944_L1C/S2A_T01LAC_20200717T221944_L1C.json",
        ),
    ];
    let tests = fixtures.join("stactools-sentinel2/tests/data-files");
    let mut expected_outputs: Vec<PathBuf> = std::fs::read_dir(&tests)
        .expect("stactools-sentinel2 test data")
        .map(|e| e.expect("entry").path().join("expected_output.json"))
        .filter(|p| p.is_file())
        .collect();
    expected_outputs.sort();
    assert!(
        expected_outputs.len() >= 7,
        "stactools-sentinel2 expected outputs: {}",
        expected_outputs.len()
    );
    files.extend(expected_outputs);
    let mut seen: BTreeSet<Key> = BTreeSet::new();
    let mut items = Vec::new();
    for file in &files {
        for mut item in items_of(file) {
            let id = ingest_support::id_of(&item).to_string();
            if item["collection"].as_str().is_none() {
                let first = ("sentinel2-tests".to_string(), id.clone());
                let collection =
                    if seen.contains(&first) { "sentinel2-tests-2" } else { "sentinel2-tests" };
                item["collection"] = collection.into();
            }
            let key = (item["collection"].as_str().unwrap().to_string(), id);
            assert!(seen.insert(key.clone()), "{test}: {key:?} twice");
            items.push(item);
        }
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let ndjson = dir.path().join("items.ndjson");
    let lines: Vec<String> = items.iter().map(|i| serde_json::to_string(i).unwrap()).collect();
    common::write_ndjson(&ndjson, &lines);
    let collection = common::data_file(
        &data,
        "fixtures/stactools-sentinel2/examples/sentinel2-l1c-example/collection.json",
    );
    let t = catalog_of(&[collection.clone(), ndjson], true);
    let ds = DataSet::new(test, items, collection_ids(&[collection]));
    assert_eq!(t.catalog.info().unwrap().item_count, ds.items.len() as i64, "{test}: items stored");
    assert!(
        ds.items.iter().filter(|i| i.rect.is_some_and(|r| r.width() > 180.0)).count() >= 7,
        "{test}: the antimeridian items are there"
    );
    run(&ds, &t.catalog);
}

/// The smallest case the oracle found (seed 7, pgstac_testdata case 687, and others): an
/// `intersects` triangle written with a repeated vertex has five positions, all on corners of
/// its bounds, and is taken for its bounding box, so an item inside the box but outside the
/// triangle matches.
///
/// KNOWN BUG until `as_box` in src/search/mod.rs checks that the ring really goes round the
/// four corners: this test fails until then.
#[test]
fn intersects_triangle_with_a_repeated_vertex_is_not_its_box() {
    let dir = tempfile::tempdir().expect("temp dir");
    let item = |id: &str, x: f64, y: f64| {
        json!({"type": "Feature", "stac_version": "1.1.0", "id": id, "collection": "c",
            "geometry": {"type": "Point", "coordinates": [x, y]},
            "properties": {"datetime": "2024-01-01T00:00:00Z"}, "links": [], "assets": {}})
        .to_string()
    };
    let path = common::write_ndjson(
        &dir.path().join("items.ndjson"),
        &[item("upper-left", 1.0, 9.0), item("lower-right", 9.0, 1.0)],
    );
    let t = catalog_of(&[path], true);
    let ids = |triangle: Value| {
        let request = Request::from_json(&json!({"intersects": triangle})).unwrap();
        let mut ids = Vec::new();
        t.catalog
            .search_each(&request, &SearchOptions::default(), None, |item| {
                ids.push(key_of_any(item).1);
                Ok(true)
            })
            .unwrap();
        ids
    };
    let plain = json!({"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 0]]]});
    assert_eq!(ids(plain), ["lower-right"]);
    let repeated =
        json!({"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [10, 10], [0, 0]]]});
    assert_eq!(ids(repeated), ["lower-right"], "the triangle with a repeated vertex");
}
