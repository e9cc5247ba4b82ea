//! `stacdb info`: what is in a catalog.

use serde::Serialize;
use serde_json::{Value, json};

use crate::document::format_micros;
use crate::error::Result;
use crate::geometry::Bbox;
use crate::{Catalog, CatalogMeta, Stats};

/// A summary of a catalog file.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    /// The file.
    pub path: String,
    /// Bytes on disk: the database file plus its write-ahead log.
    pub file_size: u64,
    /// The file's schema version.
    pub schema_version: i64,
    /// The root catalog's metadata.
    pub catalog: CatalogMeta,
    /// Items in all collections.
    pub item_count: i64,
    /// The change log's last position.
    pub last_change: i64,
    /// Each collection, by id.
    pub collections: Vec<CollectionInfo>,
}

/// A summary of one collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionInfo {
    /// The collection id.
    pub id: String,
    /// Its title, when it has one.
    pub title: Option<String>,
    /// Items in it.
    pub item_count: i64,
    /// The union of its items' bboxes.
    pub bbox: Option<Bbox>,
    /// Its items' earliest start (RFC 3339).
    pub start: Option<String>,
    /// Its items' latest end (RFC 3339).
    pub end: Option<String>,
}

pub(crate) fn info(catalog: &Catalog) -> Result<Info> {
    let conn = catalog.connection();
    let mut collections = Vec::new();
    let mut stmt = conn.prepare(
        "SELECT id, json_extract(content, '$.title') FROM collections
         WHERE content IS NOT NULL ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        let title = match row.get_ref(1)? {
            rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        };
        let stats = Stats::load(conn, &id)?;
        collections.push(CollectionInfo {
            id,
            title,
            item_count: stats.count,
            bbox: stats.bbox,
            start: stats.start.map(format_micros),
            end: stats.end.map(format_micros),
        });
    }
    let path = catalog.path();
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    Ok(Info {
        path: path.display().to_string(),
        file_size: size(path) + size(std::path::Path::new(&wal)),
        schema_version: conn.query_row("PRAGMA user_version", [], |r| r.get(0))?,
        catalog: catalog.metadata()?,
        item_count: collections.iter().map(|c| c.item_count).sum(),
        last_change: conn
            .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))?,
        collections,
    })
}

/// Writes a collection's current extent into its document: the first bbox of
/// `extent.spatial.bbox` and the first interval of `extent.temporal.interval`, creating the
/// members when the document lacks them.
pub(crate) fn set_extent(document: &mut Value, stats: &Stats) {
    let Some(object) = document.as_object_mut() else { return };
    let extent = object.entry("extent").or_insert_with(|| json!({}));
    if !extent.is_object() {
        *extent = json!({});
    }
    if let Some(bbox) = stats.bbox {
        set_first(extent, "spatial", "bbox", json!(bbox));
    }
    if let (Some(start), Some(end)) = (stats.start, stats.end) {
        set_first(
            extent,
            "temporal",
            "interval",
            json!([format_micros(start), format_micros(end)]),
        );
    }
}

fn set_first(extent: &mut Value, part: &str, member: &str, value: Value) {
    let part = extent
        .as_object_mut()
        .expect("made an object by the caller")
        .entry(part)
        .or_insert_with(|| json!({}));
    if !part.is_object() {
        *part = json!({});
    }
    let list =
        part.as_object_mut().expect("made an object above").entry(member).or_insert(Value::Null);
    match list {
        Value::Array(values) if !values.is_empty() => values[0] = value,
        _ => *list = json!([value]),
    }
}
