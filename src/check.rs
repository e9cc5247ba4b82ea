//! `stacdb check`: prove that a catalog file is whole and that its indexes agree with it.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use rusqlite::Connection;
use serde::Serialize;

use crate::document::{self, Doc, JsonType};
use crate::error::{Location, Result};
use crate::store::Stats;

/// Rows read and checked at a time.
const CHUNK: usize = 10_000;
/// Problems listed at most; the count goes on.
const MAX_LISTED: usize = 100;
/// The R-tree stores 32-bit floats, rounded outward; allow for that.
const RTREE_SLACK: f64 = 1e-3;

/// What `check` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Items checked one by one.
    pub items_checked: u64,
    /// Collections checked.
    pub collections_checked: u64,
    /// Number of problems found.
    pub problem_count: u64,
    /// The first problems, described.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// True when nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problem_count == 0
    }

    fn problem(&mut self, message: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(message);
        }
    }
}

/// One stored item row, with its index entries.
struct Row {
    fid: i64,
    collection: String,
    id: String,
    start: i64,
    end: i64,
    bbox: [Option<f64>; 4],
    geometry: Option<Vec<u8>>,
    content: String,
    rtree: Option<[f64; 4]>,
    fts: Option<[Option<String>; 4]>,
    /// The typed property columns, in `document::INDEXED_PROPERTIES` order.
    indexed: [rusqlite::types::Value; 4],
}

pub(crate) fn check(conn: &Connection) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    // One read transaction, so every part sees the same snapshot.
    conn.execute_batch("BEGIN")?;
    let result = check_snapshot(conn, &mut report);
    conn.execute_batch("COMMIT")?;
    result?;
    Ok(report)
}

fn check_snapshot(conn: &Connection, report: &mut CheckReport) -> Result<()> {
    let integrity: Vec<String> = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if integrity != ["ok"] {
        for line in integrity {
            report.problem(format!("SQLite integrity check: {line}"));
        }
    }
    let mut fk = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = fk.query([])?;
    while let Some(row) = rows.next()? {
        report.problem(format!(
            "foreign key broken in table {} row {:?}",
            row.get::<_, String>(0)?,
            row.get::<_, Option<i64>>(1)?
        ));
    }
    for table in ["rtree_items_geometry", "rtree_items_spacetime"] {
        let rtree: String = conn.query_row("SELECT rtreecheck(?1)", [table], |r| r.get(0))?;
        if rtree != "ok" {
            report.problem(format!("R-tree structure ({table}): {rtree}"));
        }
    }
    // The space-time R-tree holds each item's spatial R-tree box and its time in days, both
    // rounded outward; anything else (missing, extra, narrower) is a problem.
    let mut spacetime = conn.prepare(
        "SELECT i.collection, i.id FROM items i
         JOIN rtree_items_geometry r ON r.id = i.fid
         LEFT JOIN rtree_items_spacetime s ON s.id = i.fid
         WHERE s.id IS NULL
            OR s.minx > r.minx OR s.maxx < r.maxx OR s.miny > r.miny OR s.maxy < r.maxy
            OR s.minx < r.minx - 1e-3 OR s.maxx > r.maxx + 1e-3
            OR s.miny < r.miny - 1e-3 OR s.maxy > r.maxy + 1e-3
            OR s.mint > i.datetime_start / 86400000000.0
            OR s.maxt < i.datetime_end / 86400000000.0
            OR s.mint < i.datetime_start / 86400000000.0 - 0.01
            OR s.maxt > i.datetime_end / 86400000000.0 + 0.01
         UNION ALL
         SELECT i.collection, i.id FROM rtree_items_spacetime s JOIN items i ON i.fid = s.id
         WHERE s.id NOT IN (SELECT id FROM rtree_items_geometry)",
    )?;
    for row in spacetime.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (collection, id) = row?;
        report.problem(format!(
            "item '{id}' in '{collection}': its space-time R-tree entry does not match"
        ));
    }
    let mut placeholders = conn.prepare("SELECT id FROM collections WHERE content IS NULL")?;
    for id in placeholders.query_map([], |r| r.get::<_, String>(0))? {
        report.problem(format!("collection '{}' has no document", id?));
    }
    check_tree(conn, report)?;
    for (table, sql) in [
        ("R-tree", "SELECT id FROM rtree_items_geometry WHERE id NOT IN (SELECT fid FROM items)"),
        (
            "space-time R-tree",
            "SELECT id FROM rtree_items_spacetime WHERE id NOT IN (SELECT fid FROM items)",
        ),
        ("FTS index", "SELECT rowid FROM items_fts WHERE rowid NOT IN (SELECT fid FROM items)"),
    ] {
        let mut stmt = conn.prepare(sql)?;
        for fid in stmt.query_map([], |r| r.get::<_, i64>(0))? {
            report.problem(format!("{table} entry {} has no item", fid?));
        }
    }

    let mut learned: BTreeMap<String, BTreeMap<String, BTreeSet<JsonType>>> = BTreeMap::new();
    let mut stmt = conn.prepare(
        "SELECT i.fid, i.collection, i.id, i.datetime_start, i.datetime_end, i.minx, i.miny,
                i.maxx, i.maxy, i.geometry, i.content, r.minx, r.miny, r.maxx, r.maxy,
                f.rowid, f.id, f.title, f.description, f.keywords,
                i.p_eo_cloud_cover, i.p_gsd, i.p_platform, i.p_constellation
         FROM items i
         LEFT JOIN rtree_items_geometry r ON r.id = i.fid
         LEFT JOIN items_fts f ON f.rowid = i.fid
         ORDER BY i.fid",
    )?;
    let mut rows = stmt.query([])?;
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        let row = rows.next()?;
        if let Some(r) = row {
            let rtree = match (r.get(11)?, r.get(12)?, r.get(13)?, r.get(14)?) {
                (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
                _ => None,
            };
            let fts = match r.get::<_, Option<i64>>(15)? {
                Some(_) => Some([r.get(16)?, r.get(17)?, r.get(18)?, r.get(19)?]),
                None => None,
            };
            chunk.push(Row {
                fid: r.get(0)?,
                collection: r.get(1)?,
                id: r.get(2)?,
                start: r.get(3)?,
                end: r.get(4)?,
                bbox: [r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?],
                geometry: r.get(9)?,
                content: r.get(10)?,
                rtree,
                fts,
                indexed: [r.get(20)?, r.get(21)?, r.get(22)?, r.get(23)?],
            });
        }
        if chunk.len() == CHUNK || (row.is_none() && !chunk.is_empty()) {
            let checked: Vec<RowFindings> = chunk.par_iter().map(check_row).collect();
            for (row, (problems, properties)) in chunk.iter().zip(checked) {
                report.items_checked += 1;
                for p in problems {
                    report.problem(p);
                }
                let by_name = learned.entry(row.collection.clone()).or_default();
                for (name, t) in properties {
                    by_name.entry(name).or_default().insert(t);
                }
            }
            chunk.clear();
        }
        if row.is_none() {
            break;
        }
    }

    let ids: Vec<String> = conn
        .prepare("SELECT id FROM collections WHERE content IS NOT NULL ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        report.collections_checked += 1;
        let stored = Stats::load(conn, &id)?;
        let computed = Stats::compute(conn, &id)?;
        if stored != computed {
            report.problem(format!(
                "collection '{id}': stored stats {stored:?} differ from its items' {computed:?}"
            ));
        }
        let mut stmt =
            conn.prepare_cached("SELECT name, types FROM queryables WHERE collection = ?1")?;
        let stored: BTreeMap<String, String> = stmt
            .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        for (name, types) in learned.remove(&id).unwrap_or_default() {
            let recorded = stored
                .get(&name)
                .map(|t| crate::QueryableStats::from_row(t, None, None, None).types);
            match recorded {
                None => report.problem(format!("collection '{id}': property '{name}' is missing from the queryables")),
                Some(recorded) if !types.is_subset(&recorded) => report.problem(format!(
                    "collection '{id}': queryable '{name}' records types {recorded:?} but items have {types:?}"
                )),
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The tree of an imported static catalog (schema step 4): every item row names a stored
/// item, no node is its own ancestor, sub-catalog documents are catalogs stored without links,
/// and every path is a plain relative path. (Broken references are found by the foreign key
/// check.)
fn check_tree(conn: &Connection, report: &mut CheckReport) -> Result<()> {
    let mut orphans = conn.prepare(
        "SELECT p.collection, p.id FROM item_parents p
         WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.collection = p.collection AND i.id = p.id)",
    )?;
    for row in orphans.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
        let (collection, id) = row?;
        report
            .problem(format!("item_parents: item '{id}' in '{collection}' is not in the catalog"));
    }

    // Parents of every node: sub-catalogs by node, collections by id.
    #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
    enum Node {
        Catalog(i64),
        Collection(String),
    }
    let mut parents: BTreeMap<Node, Option<Node>> = BTreeMap::new();
    let mut paths: Vec<(String, String)> = Vec::new();
    let parent_of = |catalog: Option<i64>, collection: Option<String>| {
        catalog.map(Node::Catalog).or(collection.map(Node::Collection))
    };
    let mut stmt =
        conn.prepare("SELECT node, parent, parent_collection, href, content FROM subcatalogs")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let node: i64 = r.get(0)?;
        parents.insert(Node::Catalog(node), parent_of(r.get(1)?, r.get(2)?));
        let href: String = r.get(3)?;
        let content: String = r.get(4)?;
        match serde_json::from_str::<serde_json::Value>(&content) {
            Ok(serde_json::Value::Object(o)) if o.contains_key("links") => report.problem(format!(
                "sub-catalog {node} ({href}): its stored document still has links"
            )),
            Ok(serde_json::Value::Object(o)) if !o.get("id").is_some_and(|id| id.is_string()) => {
                report.problem(format!("sub-catalog {node} ({href}): its document has no id"))
            }
            Ok(serde_json::Value::Object(_)) => {}
            _ => report
                .problem(format!("sub-catalog {node} ({href}): its document is not a JSON object")),
        }
        paths.push((format!("sub-catalog {node}"), href));
    }
    let mut stmt =
        conn.prepare("SELECT collection, parent, parent_collection, href FROM collection_parents")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        parents.insert(Node::Collection(id.clone()), parent_of(r.get(1)?, r.get(2)?));
        paths.push((format!("collection '{id}'"), r.get(3)?));
    }
    let mut stmt = conn.prepare("SELECT collection, id, href FROM item_parents")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let (collection, id): (String, String) = (r.get(0)?, r.get(1)?);
        paths.push((format!("item '{id}' in '{collection}'"), r.get(2)?));
    }
    for start in parents.keys() {
        let mut seen = BTreeSet::new();
        let mut at = Some(start.clone());
        while let Some(node) = at {
            if !seen.insert(node.clone()) {
                report.problem(format!("the imported tree has a cycle through {start:?}"));
                break;
            }
            at = parents.get(&node).cloned().flatten();
        }
    }
    for (what, href) in paths {
        let plain = !href.is_empty()
            && !href.starts_with('/')
            && !href.contains('\\')
            && href.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
        if !plain {
            report.problem(format!("{what}: path '{href}' is not a plain relative path"));
        }
    }
    Ok(())
}

/// The problems found in one row, and the item's property names and types.
type RowFindings = (Vec<String>, Vec<(String, JsonType)>);

/// Re-derives an item's promoted columns and index entries from its document and compares.
fn check_row(row: &Row) -> RowFindings {
    let mut problems = Vec::new();
    let name = format!("item '{}' in '{}' (fid {})", row.id, row.collection, row.fid);
    let value = match serde_json::from_str(&row.content) {
        Ok(v) => v,
        Err(e) => return (vec![format!("{name}: stored document is not JSON: {e}")], Vec::new()),
    };
    let item = match document::normalize(value, Location::file("catalog")) {
        Ok(Doc::Item(item)) => item,
        Ok(_) => return (vec![format!("{name}: stored document is not an item")], Vec::new()),
        Err(e) => {
            return (vec![format!("{name}: stored document is invalid: {}", e.reason)], Vec::new());
        }
    };
    if item.id != row.id {
        problems.push(format!("{name}: document id is '{}'", item.id));
    }
    if item.collection.as_ref().is_some_and(|c| *c != row.collection) {
        problems.push(format!("{name}: document names collection {:?}", item.collection));
    }
    for (n, (property, column, _)) in document::INDEXED_PROPERTIES.iter().enumerate() {
        let want = crate::store::indexed_sql(&item.indexed[n]);
        if want != row.indexed[n] {
            problems.push(format!(
                "{name}: column {column} holds {:?}, but property '{property}' gives {want:?}",
                row.indexed[n]
            ));
        }
    }
    if (item.start, item.end) != (row.start, row.end) {
        problems.push(format!(
            "{name}: stored time {}..{} differs from the document's {}..{}",
            row.start, row.end, item.start, item.end
        ));
    }
    if item.bbox.map(|b| b.map(Some)) != Some(row.bbox)
        && !(item.bbox.is_none() && row.bbox == [None; 4])
    {
        problems.push(format!(
            "{name}: stored bbox {:?} differs from the document's {:?}",
            row.bbox, item.bbox
        ));
    }
    if item.geometry != row.geometry {
        problems.push(format!("{name}: stored geometry differs from the document's"));
    }
    match (item.index_box, row.rtree) {
        (None, None) => {}
        (Some(_), None) => problems.push(format!("{name}: missing from the R-tree")),
        (None, Some(_)) => problems.push(format!("{name}: has null geometry but an R-tree entry")),
        (Some(want), Some(have)) => {
            let holds = have[0] <= want[0]
                && have[1] <= want[1]
                && have[2] >= want[2]
                && have[3] >= want[3];
            let tight = (0..4).all(|i| (have[i] - want[i]).abs() <= RTREE_SLACK);
            if !holds || !tight {
                problems.push(format!("{name}: R-tree box {have:?} does not match {want:?}"));
            }
        }
    }
    let text = &item.text;
    let want =
        [Some(row.id.clone()), text.title.clone(), text.description.clone(), text.keywords.clone()];
    match &row.fts {
        None => problems.push(format!("{name}: missing from the FTS index")),
        Some(have) if *have != want => {
            problems.push(format!("{name}: FTS entry {have:?} differs from {want:?}"))
        }
        Some(_) => {}
    }
    let properties = item.properties.into_iter().map(|p| (p.name, p.json_type)).collect();
    (problems, properties)
}
