//! The write side: the one place where items and collections change.
//!
//! A [`Writer`] works inside a transaction the caller holds. It keeps the R-tree, the FTS
//! index, the change log, the collection stats and the queryables in step with every item it
//! writes. Stats and queryables are gathered in memory and written by [`Writer::finish`],
//! before the caller commits.

use std::collections::{BTreeSet, HashMap};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::document::{CollectionDoc, ItemDoc, JsonType, PropertySummary};
use crate::error::{DocErrorKind, Location, Result};
use crate::geometry::{self, Bbox};

/// How a write treats a document that is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A stored (collection, id) is an error.
    #[default]
    Insert,
    /// The new document replaces the stored one.
    Upsert,
    /// The stored document is kept and the new one skipped.
    Ignore,
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new row.
    Inserted,
    /// A stored row was replaced.
    Updated,
    /// A stored row was kept (`Mode::Ignore`).
    Skipped,
}

/// A property with more distinct values than this is no longer listed as an enumeration.
pub const MAX_ENUM_VALUES: usize = 32;

/// A collection's item statistics, as the `collections` table keeps them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// Number of items.
    pub count: i64,
    /// Union of the items' bboxes on the globe (see [`geometry::globe_box`]).
    pub bbox: Option<Bbox>,
    /// Earliest item start, microseconds since the epoch.
    pub start: Option<i64>,
    /// Latest item end, microseconds since the epoch.
    pub end: Option<i64>,
}

impl Stats {
    fn add(&mut self, bbox: Option<Bbox>, start: i64, end: i64) {
        self.count += 1;
        if let Some(b) = bbox.map(geometry::globe_box) {
            self.bbox = Some(self.bbox.map_or(b, |s| geometry::union(s, b)));
        }
        self.start = Some(self.start.map_or(start, |s| s.min(start)));
        self.end = Some(self.end.map_or(end, |e| e.max(end)));
    }

    /// Removes an item; returns true when the item lay on the extent's edge, so the extent
    /// must be recomputed from the remaining items.
    fn remove(&mut self, bbox: Option<Bbox>, start: i64, end: i64) -> bool {
        self.count -= 1;
        let on_edge_in_space = match (bbox.map(geometry::globe_box), self.bbox) {
            (Some(b), Some(s)) => b[0] <= s[0] || b[1] <= s[1] || b[2] >= s[2] || b[3] >= s[3],
            _ => false,
        };
        on_edge_in_space
            || self.start.is_none_or(|s| start <= s)
            || self.end.is_none_or(|e| end >= e)
    }

    /// Reads the stored stats of a collection.
    pub fn load(conn: &Connection, collection: &str) -> rusqlite::Result<Stats> {
        conn.prepare_cached(
            "SELECT item_count, minx, miny, maxx, maxy, datetime_start, datetime_end
             FROM collections WHERE id = ?1",
        )?
        .query_row([collection], |r| {
            let bbox = match (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?) {
                (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
                _ => None,
            };
            Ok(Stats { count: r.get(0)?, bbox, start: r.get(5)?, end: r.get(6)? })
        })
    }

    /// Computes a collection's stats from its items.
    pub fn compute(conn: &Connection, collection: &str) -> rusqlite::Result<Stats> {
        // The CASE and min/max mirror geometry::globe_box exactly.
        conn.prepare_cached(
            "SELECT count(*),
                    min(CASE WHEN minx > maxx OR minx < -180.0 OR maxx > 180.0 THEN -180.0 ELSE minx END),
                    min(min(max(miny, -90.0), 90.0)),
                    max(CASE WHEN minx > maxx OR minx < -180.0 OR maxx > 180.0 THEN 180.0 ELSE maxx END),
                    max(max(min(maxy, 90.0), -90.0)),
                    min(datetime_start), max(datetime_end)
             FROM items WHERE collection = ?1",
        )?
        .query_row([collection], |r| {
            let bbox = match (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?) {
                (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
                _ => None,
            };
            Ok(Stats { count: r.get(0)?, bbox, start: r.get(5)?, end: r.get(6)? })
        })
    }

    fn store(&self, conn: &Connection, collection: &str) -> rusqlite::Result<()> {
        let b = self.bbox;
        conn.prepare_cached(
            "UPDATE collections SET item_count = ?2, minx = ?3, miny = ?4, maxx = ?5, maxy = ?6,
                    datetime_start = ?7, datetime_end = ?8 WHERE id = ?1",
        )?
        .execute(params![
            collection,
            self.count,
            b.map(|b| b[0]),
            b.map(|b| b[1]),
            b.map(|b| b[2]),
            b.map(|b| b[3]),
            self.start,
            self.end
        ])?;
        Ok(())
    }
}

/// What the writer knows about one collection during a run.
#[derive(Debug, Default)]
struct CollectionState {
    /// The collection's document is stored (false for a placeholder made for early items).
    has_document: bool,
    /// Stats loaded and changed in memory, to be stored by `finish`.
    stats: Option<Stats>,
    /// An item on the extent's edge was removed: recompute the stats from the items.
    recompute: bool,
}

/// A collection that items named before its document arrived.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The collection id.
    pub collection: String,
    /// Where the first item naming it was.
    pub location: Location,
    /// The first item's id.
    pub item_id: String,
}

/// What the queryables table learns about one property in one collection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryableStats {
    /// The JSON types seen.
    pub types: BTreeSet<JsonType>,
    /// The smallest number seen.
    pub minimum: Option<f64>,
    /// The largest number seen.
    pub maximum: Option<f64>,
    /// The distinct short scalar values seen (as JSON text), or `None` once there are more
    /// than [`MAX_ENUM_VALUES`] or one is too long to list.
    pub values: Option<BTreeSet<String>>,
}

impl QueryableStats {
    fn empty() -> QueryableStats {
        QueryableStats { values: Some(BTreeSet::new()), ..Default::default() }
    }

    fn observe(&mut self, p: &PropertySummary) {
        self.types.insert(p.json_type);
        if let Some(n) = p.number {
            self.minimum = Some(self.minimum.map_or(n, |m| m.min(n)));
            self.maximum = Some(self.maximum.map_or(n, |m| m.max(n)));
        }
        match p.json_type {
            JsonType::Boolean | JsonType::Integer | JsonType::Number | JsonType::String => {
                match (&mut self.values, &p.scalar) {
                    (Some(values), Some(scalar)) => {
                        if !values.contains(scalar) {
                            values.insert(scalar.clone());
                            if values.len() > MAX_ENUM_VALUES {
                                self.values = None;
                            }
                        }
                    }
                    (values, None) => *values = None,
                    (None, Some(_)) => {}
                }
            }
            _ => {}
        }
    }

    fn merge(&mut self, other: &QueryableStats) {
        self.types.extend(other.types.iter().copied());
        for n in [other.minimum, other.maximum].into_iter().flatten() {
            self.minimum = Some(self.minimum.map_or(n, |m| m.min(n)));
            self.maximum = Some(self.maximum.map_or(n, |m| m.max(n)));
        }
        self.values = match (self.values.take(), &other.values) {
            (Some(mut a), Some(b)) => {
                a.extend(b.iter().cloned());
                (a.len() <= MAX_ENUM_VALUES).then_some(a)
            }
            _ => None,
        };
    }

    /// Reads one row of the queryables table.
    pub fn from_row(
        types: &str,
        minimum: Option<f64>,
        maximum: Option<f64>,
        enum_values: Option<&str>,
    ) -> QueryableStats {
        let types: Vec<String> = serde_json::from_str(types).unwrap_or_default();
        let values = enum_values.map(|text| {
            let values: Vec<Value> = serde_json::from_str(text).unwrap_or_default();
            values.iter().map(Value::to_string).collect()
        });
        QueryableStats {
            types: types.iter().filter_map(|t| JsonType::from_name(t)).collect(),
            minimum,
            maximum,
            values,
        }
    }

    fn types_json(&self) -> String {
        let names: Vec<&str> = self.types.iter().map(|t| t.name()).collect();
        serde_json::to_string(&names).expect("strings serialise")
    }

    fn values_json(&self) -> Option<String> {
        self.values.as_ref().map(|values| {
            let parsed: Vec<Value> =
                values.iter().filter_map(|v| serde_json::from_str(v).ok()).collect();
            serde_json::to_string(&parsed).expect("values serialise")
        })
    }
}

/// Writes items and collections inside a transaction the caller holds.
pub struct Writer<'c> {
    conn: &'c Connection,
    /// The statements every inserted item runs, prepared once: looking them up in the
    /// statement cache hashed their SQL text three times per item.
    insert_item: rusqlite::Statement<'c>,
    insert_rtree: rusqlite::Statement<'c>,
    insert_spacetime: rusqlite::Statement<'c>,
    insert_fts: rusqlite::Statement<'c>,
    now: i64,
    collections: HashMap<String, CollectionState>,
    queryables: HashMap<String, HashMap<String, QueryableStats>>,
    pending: Vec<Pending>,
    /// The change log's last sequence number when the writer started.
    start_seq: i64,
    /// The largest item fid when the writer started: rows above it are new in this run, and
    /// `finish` logs their inserts in one statement.
    start_fid: i64,
    /// The file has schema step 4's tree tables (a writer may also work on an older file, as
    /// the fixture generators in `tests/migrations.rs` do).
    has_tree: bool,
}

impl<'c> Writer<'c> {
    /// Starts writing. `conn` must be inside a write transaction.
    pub fn new(conn: &'c Connection) -> Result<Writer<'c>> {
        let mut collections = HashMap::new();
        let mut stmt = conn.prepare("SELECT id, content IS NOT NULL FROM collections")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let state = CollectionState { has_document: row.get(1)?, ..Default::default() };
            collections.insert(row.get::<_, String>(0)?, state);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let start_seq =
            conn.query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))?;
        let start_fid =
            conn.query_row("SELECT coalesce(max(fid), 0) FROM items", [], |r| r.get(0))?;
        let has_tree = conn
            .prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'item_parents'")?
            .exists([])?;
        Ok(Writer {
            conn,
            insert_item: conn.prepare(
                "INSERT INTO items (collection, id, datetime_start, datetime_end, minx, miny,
                                    maxx, maxy, geometry, content, p_eo_cloud_cover, p_gsd,
                                    p_platform, p_constellation)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?,
            insert_spacetime: conn.prepare(
                "INSERT INTO rtree_items_spacetime (id, minx, maxx, miny, maxy, mint, maxt)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6 / 86400000000.0, ?7 / 86400000000.0)",
            )?,
            insert_rtree: conn.prepare(
                "INSERT INTO rtree_items_geometry (id, minx, maxx, miny, maxy)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            insert_fts: conn.prepare(
                "INSERT INTO items_fts (rowid, id, title, description, keywords)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            now,
            collections,
            queryables: HashMap::new(),
            pending: Vec::new(),
            start_seq,
            start_fid,
            has_tree,
        })
    }

    /// True when the collection is in the catalog (or was written earlier in this run).
    pub fn has_collection(&self, id: &str) -> bool {
        self.collections.get(id).is_some_and(|c| c.has_document)
    }

    /// Makes sure a collection row exists for an item to point at. When its document has not
    /// arrived yet, a placeholder row is written and remembered in [`Writer::pending`].
    pub fn ensure_collection(&mut self, id: &str, item: &ItemDoc) -> Result<()> {
        if self.collections.contains_key(id) {
            return Ok(());
        }
        self.conn
            .prepare_cached("INSERT INTO collections (id, content) VALUES (?1, NULL)")?
            .execute([id])?;
        self.collections.insert(id.to_string(), CollectionState::default());
        self.pending.push(Pending {
            collection: id.to_string(),
            location: item.location.clone(),
            item_id: item.id.clone(),
        });
        Ok(())
    }

    /// Collections that items named but whose documents have not arrived.
    pub fn pending(&self) -> Vec<Pending> {
        self.pending.iter().filter(|p| !self.has_collection(&p.collection)).cloned().collect()
    }

    /// Writes an item into `collection`, which must exist (see [`Writer::ensure_collection`]).
    /// The inner error is a rejection of this document; the outer one is fatal.
    pub fn put_item(
        &mut self,
        item: &ItemDoc,
        collection: &str,
        mode: Mode,
    ) -> Result<Result<Outcome, DocErrorKind>> {
        let existing = match mode {
            Mode::Upsert => self
                .conn
                .prepare_cached(
                    "SELECT fid, minx, miny, maxx, maxy, datetime_start, datetime_end
                     FROM items WHERE collection = ?1 AND id = ?2",
                )?
                .query_row([collection, &item.id], OldItem::from_row)
                .optional()?,
            Mode::Insert | Mode::Ignore => None,
        };
        let b = item.bbox;
        let replaced = existing.is_some();
        let fid = if let Some(old) = existing {
            self.conn
                .prepare_cached(
                    "UPDATE items SET datetime_start = ?2, datetime_end = ?3, minx = ?4,
                            miny = ?5, maxx = ?6, maxy = ?7, geometry = ?8, content = ?9,
                            p_eo_cloud_cover = ?10, p_gsd = ?11, p_platform = ?12,
                            p_constellation = ?13
                     WHERE fid = ?1",
                )?
                .execute(params![
                    old.fid,
                    item.start,
                    item.end,
                    b.map(|b| b[0]),
                    b.map(|b| b[1]),
                    b.map(|b| b[2]),
                    b.map(|b| b[3]),
                    item.geometry,
                    item.content,
                    indexed_sql(&item.indexed[0]),
                    indexed_sql(&item.indexed[1]),
                    indexed_sql(&item.indexed[2]),
                    indexed_sql(&item.indexed[3]),
                ])?;
            self.unindex(old.fid)?;
            self.stats_remove(collection, old.bbox, old.start, old.end)?;
            old.fid
        } else {
            let values = params![
                collection,
                item.id,
                item.start,
                item.end,
                b.map(|b| b[0]),
                b.map(|b| b[1]),
                b.map(|b| b[2]),
                b.map(|b| b[3]),
                item.geometry,
                item.content,
                indexed_sql(&item.indexed[0]),
                indexed_sql(&item.indexed[1]),
                indexed_sql(&item.indexed[2]),
                indexed_sql(&item.indexed[3]),
            ];
            let inserted = match mode {
                Mode::Ignore => self
                    .conn
                    .prepare_cached(
                        "INSERT INTO items (collection, id, datetime_start, datetime_end, minx,
                                            miny, maxx, maxy, geometry, content,
                                            p_eo_cloud_cover, p_gsd, p_platform,
                                            p_constellation)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                         ON CONFLICT (collection, id) DO NOTHING",
                    )?
                    .execute(values),
                Mode::Insert | Mode::Upsert => self.insert_item.execute(values),
            };
            match inserted {
                Ok(0) => return Ok(Ok(Outcome::Skipped)),
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    return Ok(Err(DocErrorKind::Duplicate {
                        kind: "item",
                        collection: Some(collection.to_string()),
                        id: item.id.clone(),
                    }));
                }
                Err(e) => return Err(e.into()),
            }
            self.conn.last_insert_rowid()
        };
        if let Some(r) = item.index_box {
            self.insert_rtree.execute(params![fid, r[0], r[2], r[1], r[3]])?;
            self.insert_spacetime
                .execute(params![fid, r[0], r[2], r[1], r[3], item.start, item.end])?;
        }
        self.insert_fts.execute(params![
            fid,
            item.id,
            item.text.title,
            item.text.description,
            item.text.keywords
        ])?;
        let outcome = if replaced { Outcome::Updated } else { Outcome::Inserted };
        // Inserts are logged by `finish`, and so is any later update of a row new in this run.
        if replaced && fid <= self.start_fid {
            self.log(outcome, "item", collection, Some(&item.id))?;
        }
        self.stats_mut(collection)?.add(item.bbox, item.start, item.end);
        self.learn(collection, &item.properties);
        Ok(Ok(outcome))
    }

    /// Deletes one item. Returns false when it was not there.
    pub fn delete_item(&mut self, collection: &str, id: &str) -> Result<bool> {
        let old = self
            .conn
            .prepare_cached(
                "SELECT fid, minx, miny, maxx, maxy, datetime_start, datetime_end
                 FROM items WHERE collection = ?1 AND id = ?2",
            )?
            .query_row([collection, id], OldItem::from_row)
            .optional()?;
        let Some(old) = old else { return Ok(false) };
        self.unindex(old.fid)?;
        self.conn.prepare_cached("DELETE FROM items WHERE fid = ?1")?.execute([old.fid])?;
        // Where it hung in an imported static catalog goes with it.
        if self.has_tree {
            self.conn
                .prepare_cached("DELETE FROM item_parents WHERE collection = ?1 AND id = ?2")?
                .execute([collection, id])?;
        }
        self.log(Outcome::Skipped, "item", collection, Some(id))?;
        self.stats_remove(collection, old.bbox, old.start, old.end)?;
        Ok(true)
    }

    /// Writes a collection document.
    pub fn put_collection(
        &mut self,
        doc: &CollectionDoc,
        mode: Mode,
    ) -> Result<Result<Outcome, DocErrorKind>> {
        let state = self.collections.get(&doc.id);
        let outcome = match state {
            Some(s) if s.has_document => match mode {
                Mode::Insert => {
                    return Ok(Err(DocErrorKind::Duplicate {
                        kind: "collection",
                        collection: None,
                        id: doc.id.clone(),
                    }));
                }
                Mode::Ignore => return Ok(Ok(Outcome::Skipped)),
                Mode::Upsert => Outcome::Updated,
            },
            Some(_) => Outcome::Inserted, // a placeholder made for earlier items
            None => {
                self.conn
                    .prepare_cached("INSERT INTO collections (id, content) VALUES (?1, NULL)")?
                    .execute([&doc.id])?;
                Outcome::Inserted
            }
        };
        self.conn
            .prepare_cached("UPDATE collections SET content = ?2 WHERE id = ?1")?
            .execute([&doc.id, &doc.content])?;
        self.collections.entry(doc.id.clone()).or_default().has_document = true;
        self.log(outcome, "collection", &doc.id, None)?;
        Ok(Ok(outcome))
    }

    /// Deletes a collection with all its items and what was learned about them. Returns the
    /// number of items deleted.
    pub fn delete_collection(&mut self, id: &str) -> Result<u64> {
        let conn = self.conn;
        for rtree in ["rtree_items_geometry", "rtree_items_spacetime"] {
            conn.execute(
                &format!(
                    "DELETE FROM {rtree} WHERE id IN (SELECT fid FROM items WHERE collection = ?1)"
                ),
                [id],
            )?;
        }
        conn.execute(
            "DELETE FROM items_fts WHERE rowid IN (SELECT fid FROM items WHERE collection = ?1)",
            [id],
        )?;
        conn.execute(
            "INSERT INTO changes (op, kind, collection, item_id, changed_at)
             SELECT 'delete', 'item', collection, id, ?2 FROM items WHERE collection = ?1 ORDER BY fid",
            params![id, self.now],
        )?;
        let items = conn.execute("DELETE FROM items WHERE collection = ?1", [id])?;
        conn.execute("DELETE FROM queryables WHERE collection = ?1", [id])?;
        let had_document = self.has_collection(id);
        conn.execute("DELETE FROM collections WHERE id = ?1", [id])?;
        if had_document {
            self.log(Outcome::Skipped, "collection", id, None)?;
        }
        self.collections.remove(id);
        self.queryables.remove(id);
        Ok(items as u64)
    }

    /// Removes a placeholder collection and the items of this run that named it, leaving no
    /// trace in the change log. Returns the number of items removed.
    pub fn discard_pending(&mut self, id: &str) -> Result<u64> {
        let items = self.delete_collection(id)?;
        self.conn.execute(
            "DELETE FROM changes WHERE collection = ?1 AND seq > ?2",
            params![id, self.start_seq],
        )?;
        Ok(items)
    }

    /// Writes a collection document built from its items' stats, for a placeholder.
    pub fn create_collection_from_items(&mut self, id: &str) -> Result<()> {
        self.flush_stats()?;
        let stats = Stats::load(self.conn, id)?;
        let content = synthesized_collection(id, &stats);
        let doc = CollectionDoc {
            location: Location::file("--create-collections"),
            id: id.into(),
            content,
        };
        self.put_collection(&doc, Mode::Upsert)?.map_err(|e| {
            crate::Error::InvalidArgument(format!("cannot create collection '{id}': {e}"))
        })?;
        Ok(())
    }

    /// Stores the stats and queryables gathered in memory. Call before committing.
    pub fn finish(mut self) -> Result<()> {
        // One statement logs every item this run inserted, in insertion order.
        self.conn
            .prepare_cached(
                "INSERT INTO changes (op, kind, collection, item_id, changed_at)
                 SELECT 'insert', 'item', collection, id, ?2 FROM items WHERE fid > ?1 ORDER BY fid",
            )?
            .execute(params![self.start_fid, self.now])?;
        self.flush_stats()?;
        self.flush_queryables()?;
        Ok(())
    }

    fn flush_stats(&mut self) -> Result<()> {
        for (id, state) in self.collections.iter_mut() {
            let Some(stats) = state.stats.as_mut() else { continue };
            if state.recompute {
                *stats = Stats::compute(self.conn, id)?;
                state.recompute = false;
            }
            stats.store(self.conn, id)?;
        }
        Ok(())
    }

    fn flush_queryables(&mut self) -> Result<()> {
        let mut select = self.conn.prepare_cached(
            "SELECT types, minimum, maximum, enum_values FROM queryables
             WHERE collection = ?1 AND name = ?2",
        )?;
        let mut upsert = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO queryables (collection, name, types, minimum, maximum, enum_values)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for (collection, properties) in self.queryables.drain() {
            for (name, learned) in properties {
                let stored = select
                    .query_row([&collection, &name], |r| {
                        Ok(QueryableStats::from_row(
                            &r.get::<_, String>(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get::<_, Option<String>>(3)?.as_deref(),
                        ))
                    })
                    .optional()?;
                let mut merged = stored.unwrap_or_else(QueryableStats::empty);
                merged.merge(&learned);
                upsert.execute(params![
                    collection,
                    name,
                    merged.types_json(),
                    merged.minimum,
                    merged.maximum,
                    merged.values_json()
                ])?;
            }
        }
        Ok(())
    }

    fn learn(&mut self, collection: &str, properties: &[PropertySummary]) {
        if !self.queryables.contains_key(collection) {
            self.queryables.insert(collection.to_string(), HashMap::new());
        }
        let learned = self.queryables.get_mut(collection).expect("inserted above");
        for p in properties {
            match learned.get_mut(&p.name) {
                Some(q) => q.observe(p),
                None => {
                    let mut q = QueryableStats::empty();
                    q.observe(p);
                    learned.insert(p.name.clone(), q);
                }
            }
        }
    }

    fn stats_mut(&mut self, collection: &str) -> Result<&mut Stats> {
        let state = self.collections.entry(collection.to_string()).or_default();
        if state.stats.is_none() {
            state.stats = Some(Stats::load(self.conn, collection)?);
        }
        Ok(state.stats.as_mut().expect("loaded above"))
    }

    fn stats_remove(
        &mut self,
        collection: &str,
        bbox: Option<Bbox>,
        start: i64,
        end: i64,
    ) -> Result<()> {
        let on_edge = self.stats_mut(collection)?.remove(bbox, start, end);
        if on_edge {
            self.collections.get_mut(collection).expect("loaded by stats_mut").recompute = true;
        }
        Ok(())
    }

    fn unindex(&self, fid: i64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM rtree_items_geometry WHERE id = ?1")?
            .execute([fid])?;
        self.conn
            .prepare_cached("DELETE FROM rtree_items_spacetime WHERE id = ?1")?
            .execute([fid])?;
        self.conn.prepare_cached("DELETE FROM items_fts WHERE rowid = ?1")?.execute([fid])?;
        Ok(())
    }

    /// Appends to the change log. `Outcome::Skipped` is logged as a delete.
    fn log(
        &self,
        outcome: Outcome,
        kind: &str,
        collection: &str,
        item: Option<&str>,
    ) -> Result<()> {
        let op = match outcome {
            Outcome::Inserted => "insert",
            Outcome::Updated => "update",
            Outcome::Skipped => "delete",
        };
        self.conn
            .prepare_cached(
                "INSERT INTO changes (op, kind, collection, item_id, changed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![op, kind, collection, item, self.now])?;
        Ok(())
    }
}

/// The stored values of an item about to be replaced or deleted.
struct OldItem {
    fid: i64,
    bbox: Option<Bbox>,
    start: i64,
    end: i64,
}

impl OldItem {
    fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OldItem> {
        let bbox = match (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?) {
            (Some(a), Some(b), Some(c), Some(d)) => Some([a, b, c, d]),
            _ => None,
        };
        Ok(OldItem { fid: r.get(0)?, bbox, start: r.get(5)?, end: r.get(6)? })
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// The document `--create-collections` writes for a collection known only from its items.
fn synthesized_collection(id: &str, stats: &Stats) -> String {
    let bbox = serde_json::json!([stats.bbox.unwrap_or([-180.0, -90.0, 180.0, 90.0])]);
    let interval = match (stats.start, stats.end) {
        (Some(s), Some(e)) => serde_json::json!([[
            crate::document::format_micros(s),
            crate::document::format_micros(e)
        ]]),
        _ => serde_json::json!([[null, null]]),
    };
    serde_json::json!({
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": id,
        "description": format!("Collection '{id}', created by stacdb from its items"),
        "license": "other",
        "extent": {"spatial": {"bbox": bbox}, "temporal": {"interval": interval}},
        "links": []
    })
    .to_string()
}

/// A typed property column's value as SQLite stores it.
pub(crate) fn indexed_sql(value: &crate::document::Indexed) -> rusqlite::types::Value {
    use crate::document::Indexed;
    match value {
        Indexed::None => rusqlite::types::Value::Null,
        Indexed::Number(x) => rusqlite::types::Value::Real(*x),
        Indexed::Text(s) => rusqlite::types::Value::Text(s.clone()),
    }
}
