//! Plans a [`Request`] into one SQL statement and runs it.
//!
//! # The statement
//!
//! ```text
//! SELECT i.fid, i.content, <sort keys> FROM items i
//! WHERE <collections> AND <ids> AND <time> AND <space> AND <q> AND <filter> AND <query>
//!   AND <after the token's row>
//! ORDER BY <sort keys>, i.fid LIMIT <limit + 1>
//! ```
//!
//! Each part uses an index: `collections` the unique (collection, id) index and `ids`
//! `items_id`; a datetime alone one short range of `items_time_class` per class of time span;
//! a bbox or intersects the R-tree (its candidates, then the exact test on the stored
//! geometry), or with a datetime the space-time R-tree, which narrows by both; `q` the FTS5
//! index. SQLite's planner picks which to lead with, and the plan steers it where its guesses
//! fail: the time test of a spatial search cannot use an index (so the R-tree leads), and when
//! the exact count shows that most rows match, the page walks `items_datetime_id` in order
//! instead of sorting every match. The default order (newest first, then id, then fid) is a
//! backward scan of `items_datetime_id`, so a search without a filter stops after `limit` rows.
//!
//! Every value is a bound parameter but the `LIMIT`, a number the engine computes (see
//! [`Plan::page_sql`]). The statement runs under the caller's time limit, enforced by SQLite's
//! progress handler.
//!
//! # Paging
//!
//! A page of `limit` items is read with `limit + 1` rows; when the extra row exists there is a
//! next page, and its token holds the sort key values and fid of the page's last row. The
//! next page's statement adds "strictly after that row in the order". Rows inserted or
//! deleted between pages move nothing: an item present throughout is on exactly one page.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode};
use serde_json::{Map, Value};

use super::cql2sql::{self, SqlFilter};
use super::request::{FieldsForm, Filter, Request, SortKey};
use super::token::{self, PageToken};
use super::{SearchError, fields, freetext, stacql};
use crate::{Result, geometry};

/// Limits a search runs under.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// The page size when the request names none.
    pub default_limit: u64,
    /// The largest page; a larger requested limit is lowered to it, as OGC API Features asks.
    pub max_limit: u64,
    /// How long one statement may run; `None` for no limit.
    pub timeout: Option<Duration>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions { default_limit: 10, max_limit: 10_000, timeout: None }
    }
}

/// Exact counts already made on one connection, kept while the file is unchanged.
///
/// Paging through a search asks for the same count on every page, and a server answers the same
/// popular searches again and again; an exact count over many rows is the costliest part of such
/// a page. A count is keyed by its statement and parameters and is valid for one version of the
/// file: `PRAGMA data_version` (which moves when another connection commits) together with the
/// connection's own `total_changes` (which moves when it writes itself). Read inside the page's
/// transaction, the version is the version of the snapshot the count was made on.
#[derive(Debug, Default)]
pub struct CountCache {
    version: (i64, u64),
    counts: HashMap<String, i64>,
}

impl CountCache {
    /// The most counts kept; the cache is emptied when it is full.
    const CAPACITY: usize = 512;

    fn count(
        cache: &Mutex<CountCache>,
        conn: &Connection,
        sql: &str,
        params: &[SqlValue],
    ) -> Result<i64> {
        let version: i64 =
            conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?;
        let version = (version, conn.total_changes());
        let key = format!("{sql}\u{0}{params:?}");
        {
            let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.version != version {
                cache.version = version;
                cache.counts.clear();
            }
            if let Some(&n) = cache.counts.get(&key) {
                return Ok(n);
            }
        }
        let n: i64 = prepare(conn, sql, params)?
            .query_row(rusqlite::params_from_iter(params), |r| r.get(0))?;
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.version == version {
            if cache.counts.len() >= CountCache::CAPACITY {
                cache.counts.clear();
            }
            cache.counts.insert(key, n);
        }
        Ok(n)
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The items, as compact JSON text, shaped by `fields`.
    pub items: Vec<String>,
    /// How many items match the whole search (exact).
    pub number_matched: u64,
    /// The token of the next page, when there is one.
    pub next: Option<String>,
}

/// A search made into SQL.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The conditions, ANDed, with their parameters.
    filter: SqlFilter,
    /// The same conditions for reading rows in time order and testing each: the spatial test
    /// without the R-tree (whose candidates SQLite would first collect in full), since the
    /// exact test rejects rows by their stored envelope first.
    scan_filter: SqlFilter,
    /// The order, each key as SQL and direction.
    order: Vec<(String, bool)>,
    /// Parameters of the order expressions (they appear in the SELECT list and ORDER BY).
    order_params: Vec<SqlValue>,
    /// Whether each order expression can be NULL (JSON properties can).
    nullable: Vec<bool>,
    fingerprint: token::Fingerprint,
    /// The bbox as a geometry blob (for the exact test), when the search has a bbox.
    query_blob: Vec<u8>,
    /// The fields to return, compiled once for every row.
    selection: fields::Selection,
    request: Request,
}

/// The longest span of each time class of `items.time_class` (schema step 3), in
/// microseconds; `None` for the last, unbounded class.
const TIME_CLASSES: [Option<i64>; 5] =
    [Some(0), Some(86_400_000_000), Some(2_764_800_000_000), Some(31_708_800_000_000), None];

/// The order used when the request gives none: newest first, then by id (as pgstac does).
fn default_order() -> Vec<SortKey> {
    vec![
        SortKey { field: "datetime".into(), descending: true },
        SortKey { field: "id".into(), descending: true },
    ]
}

impl Plan {
    pub(crate) fn new(conn: &Connection, request: &Request) -> Result<Plan> {
        // Each condition, and the form it takes when rows are read in time order (see
        // `scan_filter`), when that differs.
        let parts: RefCell<Vec<(SqlFilter, Option<SqlFilter>)>> = RefCell::default();
        let push = |sql: String, params: Vec<SqlValue>| {
            parts.borrow_mut().push((SqlFilter { sql, params }, None));
        };

        if !request.collections.is_empty() {
            push(
                "i.collection IN (SELECT value FROM json_each(?))".into(),
                vec![SqlValue::Text(Value::from(request.collections.clone()).to_string())],
            );
        }
        if !request.ids.is_empty() {
            push(
                "i.id IN (SELECT value FROM json_each(?))".into(),
                vec![SqlValue::Text(Value::from(request.ids.clone()).to_string())],
            );
        }
        let spatial_query = request.bbox.is_some() || request.intersects.is_some();
        let mut query_blob = Vec::new();
        if let Some((start, end)) = request.datetime {
            if spatial_query {
                // The space-time R-tree narrows by time already (see `spatial`): the exact
                // test is written so that no index can serve it (`+`), which keeps SQLite from
                // leading with a wide time range instead of the R-tree's few candidates.
                // Read in time order (`scan_filter`), the bound on the start does serve.
                let both = |sql: &str, value: i64| {
                    let params = vec![SqlValue::Integer(value)];
                    parts.borrow_mut().push((
                        SqlFilter { sql: format!("+{sql}"), params: params.clone() },
                        Some(SqlFilter { sql: sql.to_string(), params }),
                    ));
                };
                if let Some(end) = end {
                    both("i.datetime_start <= ?", end);
                }
                if let Some(start) = start {
                    both("i.datetime_end >= ?", start);
                }
            } else {
                if let Some(end) = end {
                    push("i.datetime_start <= ?".into(), vec![SqlValue::Integer(end)]);
                }
                if let Some(start) = start {
                    // One range of `items_time_class` per class of span (see schema step 3); the
                    // last class is bounded by the longest span there is.
                    let longest: i64 = conn
                        .query_row(
                            "SELECT max(datetime_end - datetime_start) FROM items",
                            [],
                            |r| r.get::<_, Option<i64>>(0),
                        )?
                        .unwrap_or(0);
                    let mut terms = Vec::new();
                    let mut params = Vec::new();
                    for (class, span) in TIME_CLASSES.iter().enumerate() {
                        let span = span.unwrap_or(longest).min(longest);
                        terms.push(match end {
                            Some(_) => "(i.time_class = ? AND i.datetime_start >= ? AND i.datetime_start <= ? AND i.datetime_end >= ?)",
                            None => "(i.time_class = ? AND i.datetime_start >= ? AND i.datetime_end >= ?)",
                        });
                        params.push(SqlValue::Integer(class as i64));
                        params.push(SqlValue::Integer(start.saturating_sub(span)));
                        params.extend(end.map(SqlValue::Integer));
                        params.push(SqlValue::Integer(start));
                    }
                    // Read in time order (`scan_filter`), the OR of ranges would let SQLite
                    // collect every match through items_datetime_id and sort them (on a million
                    // items, a 30-year datetime with limit 1 took 4.5 s); a plain lower bound on
                    // the start keeps the walk in order, and the end is tested row by row.
                    let scan = SqlFilter {
                        sql: "i.datetime_start >= ? AND +i.datetime_end >= ?".into(),
                        params: vec![
                            SqlValue::Integer(start.saturating_sub(longest)),
                            SqlValue::Integer(start),
                        ],
                    };
                    let filter = SqlFilter { sql: format!("({})", terms.join(" OR ")), params };
                    parts.borrow_mut().push((filter, Some(scan)));
                }
            }
        }
        if let Some(boxes) = &request.bbox {
            let coordinates: Vec<Value> = boxes
                .iter()
                .map(|[x0, y0, x1, y1]| {
                    serde_json::json!([[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]])
                })
                .collect();
            let geometry = serde_json::json!({"type": "MultiPolygon", "coordinates": coordinates});
            let footprint = geometry::footprint(&geometry)
                .map_err(|e| SearchError::Parameter { name: "bbox", message: e })?;
            query_blob = footprint.blob.clone();
            parts.borrow_mut().push(spatial(boxes, footprint.blob, request.datetime));
        }
        if let Some(geometry) = &request.intersects {
            let footprint = geometry::footprint(geometry).map_err(|e| SearchError::Parameter {
                name: "intersects",
                message: format!("not a GeoJSON geometry: {e}"),
            })?;
            let Some(bounds) = footprint.bounds else {
                // An empty geometry intersects nothing.
                push("0".into(), Vec::new());
                return Plan::finish(parts.take(), request, Vec::new());
            };
            let boxes = [geometry::globe_box(bounds)];
            parts.borrow_mut().push(spatial(&boxes, footprint.blob, request.datetime));
        }
        if let Some(q) = &request.q {
            let expression = freetext::to_fts5(q).map_err(SearchError::FreeText)?;
            push(
                "i.fid IN (SELECT rowid FROM items_fts WHERE items_fts MATCH ?)".into(),
                vec![SqlValue::Text(expression)],
            );
        }
        if let Some(filter) = &request.filter {
            let expr = match filter {
                Filter::Text(text) => cql2sql::parse_text(text),
                Filter::Json(json) => cql2sql::parse_json(&json.to_string()),
            }
            .map_err(SearchError::Filter)?;
            let SqlFilter { sql, params } =
                cql2sql::translate(&expr).map_err(SearchError::Filter)?;
            push(format!("({sql})"), params);
            // A spatial predicate with a literal: the R-tree's candidates first.
            if let Some([x0, y0, x1, y1]) = cql2sql::spatial_bounds(&expr) {
                parts.borrow_mut().push((
                    SqlFilter {
                        sql: "i.fid IN (SELECT id FROM rtree_items_geometry \
                              WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)"
                            .into(),
                        params: [x1, x0, y1, y0].map(SqlValue::Real).to_vec(),
                    },
                    Some(SqlFilter { sql: "1".into(), params: Vec::new() }),
                ));
            }
        }
        if let Some(query) = &request.query {
            let SqlFilter { sql, params } = stacql::translate(query)?;
            push(format!("({sql})"), params);
        }
        Plan::finish(parts.take(), request, query_blob)
    }

    fn finish(
        parts: Vec<(SqlFilter, Option<SqlFilter>)>,
        request: &Request,
        query_blob: Vec<u8>,
    ) -> Result<Plan> {
        let and = |parts: Vec<&SqlFilter>| {
            let mut filter = SqlFilter { sql: String::new(), params: Vec::new() };
            for part in parts {
                if !filter.sql.is_empty() {
                    filter.sql.push_str(" AND ");
                }
                filter.sql.push_str(&part.sql);
                filter.params.extend(part.params.iter().cloned());
            }
            if filter.sql.is_empty() {
                filter.sql.push('1');
            }
            filter
        };
        let filter = and(parts.iter().map(|(f, _)| f).collect());
        let scan_filter = and(parts.iter().map(|(f, scan)| scan.as_ref().unwrap_or(f)).collect());
        let keys = if request.sortby.is_empty() { default_order() } else { request.sortby.clone() };
        let mut order = Vec::new();
        let mut order_params = Vec::new();
        let mut nullable = Vec::new();
        for key in &keys {
            let column = match key.field.as_str() {
                "datetime" | "start_datetime" => Some("i.datetime_start"),
                "end_datetime" => Some("i.datetime_end"),
                "id" => Some("i.id"),
                "collection" => Some("i.collection"),
                _ => None,
            };
            match column {
                Some(column) => {
                    order.push((column.to_string(), key.descending));
                    nullable.push(false);
                }
                None => {
                    if key.field == "geometry" {
                        return Err(SearchError::Parameter {
                            name: "sortby",
                            message: "cannot sort by geometry".into(),
                        }
                        .into());
                    }
                    if key.field.contains(['"', '\\', '\0']) {
                        // No JSON path can name this key: look it up among the properties.
                        order.push((
                            "(SELECT value FROM json_each(i.content, '$.properties') WHERE key = ?)"
                                .to_string(),
                            key.descending,
                        ));
                        order_params.push(SqlValue::Text(key.field.clone()));
                    } else {
                        order.push(("json_extract(i.content, ?)".to_string(), key.descending));
                        order_params
                            .push(SqlValue::Text(format!("$.properties.\"{}\"", key.field)));
                    }
                    nullable.push(true);
                }
            }
        }
        let identity = request.identity(&keys);
        Ok(Plan {
            filter,
            scan_filter,
            order,
            order_params,
            nullable,
            fingerprint: token::fingerprint(&identity),
            selection: match request.fields_form {
                FieldsForm::Lists => request.fields.compile(),
                FieldsForm::DefaultSet => fields::Selection::default_set(),
                FieldsForm::AllExcept => fields::Selection::all_except(&request.fields.exclude),
            },
            query_blob,
            request: request.clone(),
        })
    }

    /// Whether the order starts with the item's start time, which `items_datetime_id` gives.
    fn order_is_by_time(&self) -> bool {
        self.order.first().is_some_and(|(sql, _)| sql == "i.datetime_start")
    }

    /// `SELECT count(*)` of the matching items.
    fn count_sql(&self) -> (String, Vec<SqlValue>) {
        // Without conditions other than collections, the collections' item counts (kept
        // exact in the same transactions as the items) answer without reading the items.
        let r = &self.request;
        let only_collections = r.bbox.is_none()
            && r.intersects.is_none()
            && r.datetime.is_none()
            && r.ids.is_empty()
            && r.filter.is_none()
            && r.query.is_none()
            && r.q.is_none();
        if let (Some(boxes), true) = (&r.bbox, only_box_and_time(r)) {
            return box_count(boxes, r.datetime, self.query_blob.clone());
        }
        if only_collections {
            return if r.collections.is_empty() {
                ("SELECT coalesce(sum(item_count), 0) FROM collections".into(), Vec::new())
            } else {
                (
                    "SELECT coalesce(sum(item_count), 0) FROM collections \
                     WHERE id IN (SELECT value FROM json_each(?))"
                        .into(),
                    vec![SqlValue::Text(Value::from(r.collections.clone()).to_string())],
                )
            };
        }
        (
            format!("SELECT count(*) FROM items i WHERE {}", self.filter.sql),
            self.filter.params.clone(),
        )
    }

    /// The page statement: rows after `after` (when given), in order, at most `limit`.
    fn page_sql(
        &self,
        after: Option<&PageToken>,
        limit: Option<u64>,
        scan_in_order: bool,
    ) -> Result<(String, Vec<SqlValue>)> {
        let mut params: Vec<SqlValue> = Vec::new();
        // With a limit, the rows are chosen and ordered without their documents, which are
        // read afterwards for the chosen rows only: SQLite's sorter would otherwise carry every
        // matching row's document.
        let two_phase = limit.is_some();
        let mut select =
            String::from(if two_phase { "SELECT i.fid" } else { "SELECT i.fid, i.content" });
        let mut key_params = self.order_params.iter();
        // Each JSON order expression has one parameter; it is bound again wherever the
        // expression is repeated.
        let mut exprs: Vec<(String, Option<SqlValue>)> = Vec::new();
        for (sql, _) in &self.order {
            let param = sql.contains('?').then(|| key_params.next().cloned()).flatten();
            exprs.push((sql.clone(), param));
        }
        for (n, (sql, param)) in exprs.iter().enumerate() {
            select.push_str(", ");
            select.push_str(sql);
            if two_phase {
                select.push_str(&format!(" AS k{n}"));
            }
            params.extend(param.clone());
        }
        let (index, filter) = if scan_in_order {
            (" INDEXED BY items_datetime_id", &self.scan_filter)
        } else {
            ("", &self.filter)
        };
        let mut sql = format!("{select} FROM items i{index} WHERE {}", filter.sql);
        params.extend(filter.params.iter().cloned());
        if let Some(token) = after {
            if token.sort_values.len() != exprs.len() {
                return Err(SearchError::Token(token::TokenError::WrongSearch).into());
            }
            let (keyset, keyset_params) = self.keyset(&exprs, token)?;
            sql.push_str(" AND ");
            sql.push_str(&keyset);
            params.extend(keyset_params);
        }
        sql.push_str(" ORDER BY ");
        for (n, ((expr, param), (_, descending))) in exprs.iter().zip(&self.order).enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            sql.push_str(expr);
            params.extend(param.clone());
            sql.push_str(if *descending { " DESC" } else { " ASC" });
        }
        let last_descending = self.order.last().is_some_and(|(_, d)| *d);
        sql.push_str(if last_descending { ", i.fid DESC" } else { ", i.fid ASC" });
        if let Some(limit) = limit {
            // The one value written into the text rather than bound: a number the engine
            // computed, never the client's text. SQLite plans `ORDER BY ... LIMIT ?` with the
            // bound value, so a bound limit expires the statement at every run and each page
            // paid for parsing and planning it again (about a third of a small search's time).
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            sql.push_str(&format!(" LIMIT {limit}"));
        }
        if two_phase {
            let keys: Vec<String> = (0..exprs.len()).map(|n| format!("p.k{n}")).collect();
            let order: Vec<String> = self
                .order
                .iter()
                .enumerate()
                .map(|(n, (_, d))| format!("p.k{n} {}", if *d { "DESC" } else { "ASC" }))
                .collect();
            let fid_order = if last_descending { "p.fid DESC" } else { "p.fid ASC" };
            sql = format!(
                "SELECT p.fid, c.content, {} FROM ({sql}) p JOIN items c ON c.fid = p.fid \
                 ORDER BY {}, {fid_order}",
                keys.join(", "),
                order.join(", ")
            );
        }
        Ok((sql, params))
    }

    /// "Strictly after the token's row" in the order, with NULLs first in ascending keys and
    /// last in descending ones (SQLite's own placement).
    fn keyset(
        &self,
        exprs: &[(String, Option<SqlValue>)],
        token: &PageToken,
    ) -> Result<(String, Vec<SqlValue>)> {
        let values: Vec<SqlValue> = token
            .sort_values
            .iter()
            .map(json_to_sql)
            .collect::<Option<_>>()
            .ok_or(SearchError::Token(token::TokenError::WrongSearch))?;
        let last_descending = self.order.last().is_some_and(|(_, d)| *d);
        let mut params = Vec::new();
        let mut alternatives = Vec::new();
        // Alternative j: keys before j equal, key j after.
        for j in 0..=exprs.len() {
            let mut terms = Vec::new();
            for (k, (expr, param)) in exprs.iter().enumerate().take(j) {
                terms.push(format!("{expr} IS ?"));
                params.extend(param.clone());
                params.push(values[k].clone());
            }
            if j == exprs.len() {
                terms.push(format!("i.fid {} ?", if last_descending { "<" } else { ">" }));
                params.push(SqlValue::Integer(token.fid));
            } else {
                let (expr, param) = &exprs[j];
                let descending = self.order[j].1;
                let value = &values[j];
                let p = param.clone();
                let v = value.clone();
                let (term, term_params): (String, Vec<SqlValue>) = match (descending, value) {
                    (false, SqlValue::Null) => {
                        (format!("{expr} IS NOT NULL"), p.into_iter().collect())
                    }
                    (false, _) => (format!("{expr} > ?"), p.into_iter().chain([v]).collect()),
                    (true, SqlValue::Null) => ("0".to_string(), Vec::new()),
                    (true, _) if self.nullable[j] => (
                        format!("({expr} < ? OR {expr} IS NULL)"),
                        p.clone().into_iter().chain([v]).chain(p).collect(),
                    ),
                    (true, _) => (format!("{expr} < ?"), p.into_iter().chain([v]).collect()),
                };
                params.extend(term_params);
                terms.push(term);
            }
            alternatives.push(format!("({})", terms.join(" AND ")));
        }
        let mut sql = format!("({})", alternatives.join(" OR "));
        // A bound on the leading key lets SQLite range-scan its index.
        if let (false, Some(first)) = (self.nullable[0], values.first()) {
            let (expr, _) = &exprs[0];
            sql = format!("{expr} {} ? AND {sql}", if self.order[0].1 { "<=" } else { ">=" });
            params.insert(0, first.clone());
        }
        Ok((sql, params))
    }
}

/// R-tree candidates of `boxes`, then the exact test against the query geometry `blob`; and
/// the exact test alone, for reading rows in order.
///
/// With a datetime, the candidates come from the space-time R-tree, which narrows by both at
/// once (the exact time test is a separate condition of the plan).
fn spatial(
    boxes: &[[f64; 4]],
    blob: Vec<u8>,
    datetime: Option<(Option<i64>, Option<i64>)>,
) -> (SqlFilter, Option<SqlFilter>) {
    const DAY: f64 = 86_400_000_000.0;
    let exact = SqlFilter {
        sql: "stacdb_search_intersects(i.geometry, ?)".into(),
        params: vec![SqlValue::Blob(blob.clone())],
    };
    let mut params = Vec::new();
    let (table, time) = match datetime {
        None => ("rtree_items_geometry", String::new()),
        Some((start, end)) => {
            let mut time = String::new();
            if end.is_some() {
                time.push_str(" AND mint <= ?");
            }
            if start.is_some() {
                time.push_str(" AND maxt >= ?");
            }
            ("rtree_items_spacetime", time)
        }
    };
    let selects: Vec<String> = boxes
        .iter()
        .map(|[x0, y0, x1, y1]| {
            params.extend([*x1, *x0, *y1, *y0].map(SqlValue::Real));
            if let Some((start, end)) = datetime {
                params.extend(end.map(|e| SqlValue::Real(e as f64 / DAY)));
                params.extend(start.map(|s| SqlValue::Real(s as f64 / DAY)));
            }
            format!(
                "SELECT id FROM {table} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?{time}"
            )
        })
        .collect();
    params.push(SqlValue::Blob(blob));
    let sql = format!(
        "i.fid IN ({}) AND stacdb_search_intersects(i.geometry, ?)",
        selects.join(" UNION ALL ")
    );
    (SqlFilter { sql, params }, Some(exact))
}

/// Whether a search has a bbox, perhaps a datetime, and nothing else that filters.
fn only_box_and_time(r: &Request) -> bool {
    r.bbox.is_some()
        && r.intersects.is_none()
        && r.ids.is_empty()
        && r.collections.is_empty()
        && r.filter.is_none()
        && r.query.is_none()
        && r.q.is_none()
}

/// Counts a bbox (and datetime) search in two parts: the R-tree entries wholly inside a box
/// (and within the time), which match without reading their rows (the stored boxes are
/// rounded outward, so the true ones are inside too), plus the exact test of the others.
fn box_count(
    boxes: &[[f64; 4]],
    datetime: Option<(Option<i64>, Option<i64>)>,
    blob: Vec<u8>,
) -> (String, Vec<SqlValue>) {
    const DAY: f64 = 86_400_000_000.0;
    let table = if datetime.is_some() { "rtree_items_spacetime" } else { "rtree_items_geometry" };
    let mut contained_params = Vec::new();
    let mut rest_params = Vec::new();
    let mut contained = Vec::new();
    let mut rest = Vec::new();
    for [x0, y0, x1, y1] in boxes {
        let (start, end) = datetime.unwrap_or((None, None));
        let (start, end) = (start.map(|s| s as f64 / DAY), end.map(|e| e as f64 / DAY));
        let mut inside = "minx >= ? AND maxx <= ? AND miny >= ? AND maxy <= ?".to_string();
        let mut inside_params = [*x0, *x1, *y0, *y1].map(SqlValue::Real).to_vec();
        let mut touches = "minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?".to_string();
        let mut touches_params = [*x1, *x0, *y1, *y0].map(SqlValue::Real).to_vec();
        if let Some(start) = start {
            inside.push_str(" AND mint >= ?");
            inside_params.push(SqlValue::Real(start));
            touches.push_str(" AND maxt >= ?");
            touches_params.push(SqlValue::Real(start));
        }
        if let Some(end) = end {
            inside.push_str(" AND maxt <= ?");
            inside_params.push(SqlValue::Real(end));
            touches.push_str(" AND mint <= ?");
            touches_params.push(SqlValue::Real(end));
        }
        contained.push(format!("(SELECT count(*) FROM {table} WHERE {inside})"));
        contained_params.extend(inside_params.iter().cloned());
        rest.push(format!("SELECT id FROM {table} WHERE {touches} AND NOT ({inside})"));
        rest_params.extend(touches_params);
        rest_params.extend(inside_params);
    }
    let mut time = String::new();
    let mut time_params = Vec::new();
    if let Some((start, end)) = datetime {
        if let Some(end) = end {
            time.push_str(" AND +i.datetime_start <= ?");
            time_params.push(SqlValue::Integer(end));
        }
        if let Some(start) = start {
            time.push_str(" AND +i.datetime_end >= ?");
            time_params.push(SqlValue::Integer(start));
        }
    }
    let sql = format!(
        "SELECT {} + (SELECT count(*) FROM items i WHERE i.fid IN ({}) \
         AND stacdb_search_intersects(i.geometry, ?){time})",
        contained.join(" + "),
        rest.join(" UNION ")
    );
    let mut params = contained_params;
    params.extend(rest_params);
    params.push(SqlValue::Blob(blob));
    params.extend(time_params);
    (sql, params)
}

fn json_to_sql(value: &Value) -> Option<SqlValue> {
    Some(match value {
        Value::Null => SqlValue::Null,
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64()?),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        _ => return None,
    })
}

fn sql_to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(r) => {
            serde_json::Number::from_f64(r).map(Value::Number).unwrap_or(Value::Null)
        }
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(_) => Value::Null,
    }
}

/// Prepares a statement, logging it and (at trace level) SQLite's plan for it.
fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    params: &[SqlValue],
) -> Result<rusqlite::CachedStatement<'c>> {
    tracing::debug!(sql, params = ?params.len(), "search statement");
    if tracing::enabled!(tracing::Level::TRACE) {
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
        let plan: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(params), |r| r.get::<_, String>(3))?
            .collect::<rusqlite::Result<_>>()?;
        tracing::trace!(plan = ?plan, "search plan");
    }
    // Cached: the text depends only on the search's shape (every value is a parameter), so the
    // same kind of search, with any values, skips SQLite's parser and planner.
    Ok(conn.prepare_cached(sql)?)
}

/// Runs `f` with the progress handler enforcing `timeout`.
fn with_deadline<T>(
    conn: &Connection,
    timeout: Option<Duration>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let Some(timeout) = timeout else { return f() };
    let deadline = Instant::now() + timeout;
    conn.progress_handler(1000, Some(move || Instant::now() > deadline));
    let result = f();
    conn.progress_handler(0, None::<fn() -> bool>);
    result.map_err(|e| match e {
        crate::Error::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if f.code == ErrorCode::OperationInterrupted =>
        {
            SearchError::Timeout(timeout).into()
        }
        e => e,
    })
}

/// The catalog's token key.
fn secret(conn: &Connection) -> Result<Vec<u8>> {
    Ok(conn
        .prepare_cached("SELECT token_secret FROM catalog")?
        .query_row([], |r| r.get::<_, Vec<u8>>(0))?)
}

/// Counts the items that match.
pub(crate) fn count(
    conn: &Connection,
    counts: &Mutex<CountCache>,
    request: &Request,
    options: &SearchOptions,
) -> Result<u64> {
    let tx = conn.unchecked_transaction()?;
    let plan = Plan::new(conn, request)?;
    // Read something first, so that the version the cache checks is this snapshot's.
    secret(conn)?;
    let n = with_deadline(conn, options.timeout, || {
        let (sql, params) = plan.count_sql();
        CountCache::count(counts, conn, &sql, &params)
    })?;
    tx.commit()?;
    Ok(n as u64)
}

/// One page: the exact count and the next `limit` items after the request's token.
pub(crate) fn page(
    conn: &Connection,
    counts: &Mutex<CountCache>,
    request: &Request,
    options: &SearchOptions,
) -> Result<Page> {
    let tx = conn.unchecked_transaction()?;
    let plan = Plan::new(conn, request)?;
    let secret = secret(conn)?;
    let after = decode_token(&plan, &secret)?;
    let limit = request.limit.unwrap_or(options.default_limit).clamp(1, options.max_limit.max(1));
    let page = with_deadline(conn, options.timeout, || {
        let (sql, params) = plan.count_sql();
        let matched = CountCache::count(counts, conn, &sql, &params)?;
        // Walk the time index in order and test each row, or find the matching rows first and
        // sort them? Reading rows in order finds `limit` matches after about
        // limit * total / matched rows; finding them all first costs `matched`. SQLite cannot
        // know `matched` (its estimates for the R-tree, FTS and JSON terms are guesses), but the
        // count just gave it exactly.
        let scan_in_order = plan.order_is_by_time() && {
            let total: i64 = conn
                .prepare_cached("SELECT coalesce(sum(item_count), 0) FROM collections")?
                .query_row([], |r| r.get(0))?;
            (matched as f64).powi(2) > (limit as f64) * (total as f64)
        };
        let (sql, params) =
            plan.page_sql(after.as_ref(), Some(limit.saturating_add(1)), scan_in_order)?;
        let mut statement = prepare(conn, &sql, &params)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut items = Vec::new();
        let mut last: Option<PageToken> = None;
        let mut more = false;
        while let Some(row) = rows.next()? {
            if items.len() as u64 == limit {
                more = true;
                break;
            }
            items.push(shape(&plan, row.get_ref(1)?)?);
            let sort_values = (0..plan.order.len())
                .map(|k| row.get_ref(2 + k).map(sql_to_json))
                .collect::<rusqlite::Result<_>>()?;
            last = Some(PageToken { sort_values, fid: row.get(0)?, fingerprint: plan.fingerprint });
        }
        let next = match (more, last) {
            (true, Some(last)) => Some(last.encode(&secret).map_err(SearchError::Token)?),
            _ => None,
        };
        Ok(Page { items, number_matched: matched as u64, next })
    })?;
    tx.commit()?;
    Ok(page)
}

/// Every matching item after the request's token, in order, up to `max_items`; `each` returns
/// `false` to stop early. Returns how many were given.
pub(crate) fn each(
    conn: &Connection,
    request: &Request,
    options: &SearchOptions,
    max_items: Option<u64>,
    mut each: impl FnMut(&str) -> std::io::Result<bool>,
) -> Result<u64> {
    let tx = conn.unchecked_transaction()?;
    let plan = Plan::new(conn, request)?;
    let secret = secret(conn)?;
    let after = decode_token(&plan, &secret)?;
    let given = with_deadline(conn, options.timeout, || {
        let (sql, params) = plan.page_sql(after.as_ref(), max_items, false)?;
        let mut statement = prepare(conn, &sql, &params)?;
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut given = 0;
        while let Some(row) = rows.next()? {
            let item = shape(&plan, row.get_ref(1)?)?;
            given += 1;
            if !each(&item)
                .map_err(|source| crate::Error::Io { path: "<stdout>".into(), source })?
            {
                break;
            }
        }
        Ok(given)
    })?;
    tx.commit()?;
    Ok(given)
}

fn decode_token(plan: &Plan, secret: &[u8]) -> Result<Option<PageToken>> {
    match &plan.request.token {
        None => Ok(None),
        Some(text) => Ok(Some(
            PageToken::decode(text, secret, &plan.fingerprint).map_err(SearchError::Token)?,
        )),
    }
}

/// The stored document, shaped by the request's `fields`.
fn shape(plan: &Plan, content: ValueRef<'_>) -> Result<String> {
    let text = content.as_str().map_err(rusqlite::Error::from)?;
    if plan.selection.is_whole() {
        return Ok(text.to_string());
    }
    let item: Map<String, Value> = serde_json::from_str(text)
        .map_err(|e| crate::Error::InvalidArgument(format!("stored item is not JSON: {e}")))?;
    Ok(Value::Object(plan.selection.apply(item)).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Catalog, IngestOptions, Input, Silent};
    use rusqlite::StatementStatus;
    use serde_json::json;

    /// A catalog of fixtures/demo, in a directory removed when the first value is dropped.
    fn demo() -> (tempfile::TempDir, Catalog) {
        let dir = tempfile::tempdir().unwrap();
        let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
        let mut catalog = Catalog::create(dir.path().join("demo.stacdb")).unwrap();
        catalog.ingest(&[Input::Path(demo)], &IngestOptions::default(), &Silent).unwrap();
        (dir, catalog)
    }

    /// Read in time order, a datetime search walks `items_datetime_id` and stops after the
    /// page: it neither gathers every match through the index (a MULTI-INDEX OR of the time
    /// classes' ranges) nor sorts them. On a million items that plan took 4.5 s for one item.
    #[test]
    fn a_datetime_page_read_in_time_order_walks_the_index_without_sorting() {
        let (_dir, catalog) = demo();
        let conn = catalog.connection();
        for datetime in ["1990-01-01T00:00:00Z/2029-12-31T23:59:59Z", "1990-01-01T00:00:00Z/.."] {
            let request = Request::from_json(&json!({"datetime": datetime, "limit": 1})).unwrap();
            let plan = Plan::new(conn, &request).unwrap();
            assert!(plan.order_is_by_time());
            let (sql, params) = plan.page_sql(None, Some(2), true).unwrap();
            let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let steps: Vec<String> = explain
                .query_map(rusqlite::params_from_iter(&params), |r| r.get(3))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let text = steps.join(" | ");
            assert!(!text.contains("MULTI-INDEX OR") && !text.contains("TEMP B-TREE"), "{text}");
            assert!(text.contains("items_datetime_id"), "{text}");
        }
    }

    /// A page statement runs again without SQLite parsing and planning it again: a value that
    /// SQLite plans with (as it does a bound `LIMIT` after `ORDER BY`) would expire the cached
    /// statement at every run.
    #[test]
    fn page_statements_are_not_prepared_again_at_each_run() {
        let (_dir, catalog) = demo();
        let conn = catalog.connection();
        for body in [
            json!({}),
            json!({"bbox": [0, 40, 20, 50], "datetime": "2020-01-01T00:00:00Z/..", "limit": 3}),
            json!({"sortby": [{"field": "properties.gsd", "direction": "asc"}], "limit": 2}),
            json!({"filter": "gsd < 1", "datetime": "../2030-01-01T00:00:00Z"}),
        ] {
            let request = Request::from_json(&body).unwrap();
            let plan = Plan::new(conn, &request).unwrap();
            for scan_in_order in [false, true] {
                if scan_in_order && !plan.order_is_by_time() {
                    continue;
                }
                let (sql, params) = plan.page_sql(None, Some(11), scan_in_order).unwrap();
                let mut statement = conn.prepare(&sql).unwrap();
                for _ in 0..3 {
                    let mut rows = statement.query(rusqlite::params_from_iter(&params)).unwrap();
                    while rows.next().unwrap().is_some() {}
                }
                assert_eq!(statement.get_status(StatementStatus::RePrepare), 0, "{body}: {sql}");
            }
        }
    }
}
