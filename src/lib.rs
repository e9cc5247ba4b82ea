//! stacdb: an embedded STAC catalog database in one SQLite file.
//!
//! A [`Catalog`] is one SQLite file holding STAC collections and items, with an R-tree over
//! item footprints, an FTS5 index over their text, learned queryables and a change log. It is
//! filled by [`Catalog::ingest`] and read with [`Catalog::item`], [`Catalog::collection`] and
//! [`Catalog::info`]; [`Catalog::check`] proves that its indexes agree with its items.
//!
//! ```
//! use stacdb::{Catalog, IngestOptions, Input, Silent};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("demo.stacdb");
//! std::fs::write(dir.path().join("item.json"), r#"{"type": "Feature", "stac_version": "1.1.0",
//!     "id": "a", "collection": "c", "geometry": {"type": "Point", "coordinates": [1, 2]},
//!     "properties": {"datetime": "2024-01-01T00:00:00Z"}, "links": [], "assets": {}}"#).unwrap();
//! let mut catalog = Catalog::create(&path).unwrap();
//! let options = IngestOptions { create_collections: true, ..Default::default() };
//! let report = catalog.ingest(&[Input::Path(dir.path().join("item.json"))], &options, &Silent).unwrap();
//! assert_eq!(report.items.inserted, 1);
//! assert_eq!(catalog.item("c", "a").unwrap()["id"], "a");
//! assert!(catalog.check().unwrap().is_ok());
//! ```

#![warn(missing_docs)]

mod check;
pub mod cli;
pub mod db;
pub mod document;
mod error;
pub mod export;
pub mod geometry;
mod info;
pub mod ingest;
mod logging;
pub mod search;
pub mod server;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

pub use check::CheckReport;
pub use db::{Access, SCHEMA_VERSION};
pub use error::{DocError, DocErrorKind, Error, Location, Result};
pub use info::{CollectionInfo, Info};
pub use ingest::{Counts, IngestOptions, IngestReport, Input, Observer, Silent};
pub use store::{Mode, QueryableStats, Stats};

/// How long a writer waits for another process's write lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// The root catalog's own metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogMeta {
    /// The root catalog's id.
    pub id: String,
    /// Its title.
    pub title: Option<String>,
    /// Its description.
    pub description: Option<String>,
}

/// One entry of the change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Position in the log; strictly increasing.
    pub seq: i64,
    /// `insert`, `update` or `delete`.
    pub op: String,
    /// `item` or `collection`.
    pub kind: String,
    /// The collection.
    pub collection: String,
    /// The item id, for item changes.
    pub item_id: Option<String>,
}

/// A catalog file, open.
#[derive(Debug)]
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    lock_timeout: Duration,
    /// Exact search counts made on this connection, while the file is unchanged.
    counts: std::sync::Mutex<search::engine::CountCache>,
}

impl Catalog {
    /// Opens an existing catalog for reading and writing, upgrading its schema if it is older.
    pub fn open(path: impl AsRef<Path>) -> Result<Catalog> {
        Catalog::open_with(path, Access::ReadWrite, DEFAULT_LOCK_TIMEOUT)
    }

    /// Opens a catalog, creating the file when it is missing.
    pub fn create(path: impl AsRef<Path>) -> Result<Catalog> {
        Catalog::open_with(path, Access::Create, DEFAULT_LOCK_TIMEOUT)
    }

    /// Opens an existing catalog read-only: nothing this handle does can change the file.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Catalog> {
        Catalog::open_with(path, Access::ReadOnly, DEFAULT_LOCK_TIMEOUT)
    }

    /// Opens a catalog with the given access and lock timeout.
    pub fn open_with(
        path: impl AsRef<Path>,
        access: Access,
        lock_timeout: Duration,
    ) -> Result<Catalog> {
        let path = path.as_ref().to_path_buf();
        let conn = db::open(&path, access, lock_timeout)?;
        // Search statements are cached by their text (which depends on the search's shape, not
        // its values): room for the shapes a server sees.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Catalog { conn, path, lock_timeout, counts: Default::default() })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying SQLite connection, for reading.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The root catalog's metadata.
    pub fn metadata(&self) -> Result<CatalogMeta> {
        Ok(self.conn.query_row("SELECT id, title, description FROM catalog", [], |r| {
            Ok(CatalogMeta { id: r.get(0)?, title: r.get(1)?, description: r.get(2)? })
        })?)
    }

    /// Sets the fields of the root catalog's metadata that are `Some`.
    pub fn set_metadata(
        &mut self,
        id: Option<&str>,
        title: Option<&str>,
        description: Option<&str>,
    ) -> Result<CatalogMeta> {
        if id.is_some_and(str::is_empty) {
            return Err(Error::InvalidArgument("the catalog id must not be empty".into()));
        }
        let tx = db::begin_write(&self.conn, &self.path, self.lock_timeout)?;
        tx.execute(
            "UPDATE catalog SET id = coalesce(?1, id), title = coalesce(?2, title),
                    description = coalesce(?3, description)",
            params![id, title, description],
        )?;
        tx.commit()?;
        self.metadata()
    }

    /// Ingests documents from files, directories or standard input. See [`ingest`].
    pub fn ingest(
        &mut self,
        inputs: &[Input],
        options: &IngestOptions,
        observer: &dyn Observer,
    ) -> Result<IngestReport> {
        ingest::run(&self.conn, &self.path, inputs, options, self.lock_timeout, observer)
    }

    /// Ingests into the catalog file at `path`, creating it when missing; see
    /// [`ingest::ingest_path`]. A new catalog appears only when the run succeeds.
    pub fn ingest_path(
        path: impl AsRef<Path>,
        lock_timeout: Duration,
        inputs: &[Input],
        options: &IngestOptions,
        observer: &dyn Observer,
    ) -> Result<IngestReport> {
        ingest::ingest_path(path.as_ref(), lock_timeout, inputs, options, observer)
    }

    /// An item, exactly as it was ingested.
    pub fn item(&self, collection: &str, id: &str) -> Result<Value> {
        serde_json::from_str(&self.item_text(collection, id)?).map_err(stored_json)
    }

    /// An item's stored document as compact JSON text, exactly as stored.
    pub fn item_text(&self, collection: &str, id: &str) -> Result<String> {
        let content: Option<String> = self
            .conn
            .prepare_cached("SELECT content FROM items WHERE collection = ?1 AND id = ?2")?
            .query_row([collection, id], |r| r.get(0))
            .optional()?;
        match content {
            Some(text) => Ok(text),
            None if self.collection_exists(collection)? => {
                Err(Error::ItemNotFound { collection: collection.into(), id: id.into() })
            }
            None => Err(Error::CollectionNotFound(collection.into())),
        }
    }

    /// A collection with its current extent: when it has items, the first spatial bbox and the
    /// first temporal interval are those of its items. Other members are as ingested.
    pub fn collection(&self, id: &str) -> Result<Value> {
        let mut document = self.collection_document(id)?;
        let stats = Stats::load(&self.conn, id)?;
        if stats.count > 0 {
            info::set_extent(&mut document, &stats);
        }
        Ok(document)
    }

    /// A collection exactly as it was ingested.
    pub fn collection_document(&self, id: &str) -> Result<Value> {
        let content: Option<Option<String>> = self
            .conn
            .prepare_cached("SELECT content FROM collections WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        match content.flatten() {
            Some(text) => Ok(serde_json::from_str(&text).map_err(stored_json)?),
            None => Err(Error::CollectionNotFound(id.into())),
        }
    }

    fn collection_exists(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM collections WHERE id = ?1 AND content IS NOT NULL")?
            .exists([id])?)
    }

    /// Deletes items from a collection in one transaction. Unless `missing_ok`, an id that is
    /// not there is an error and nothing is deleted. Returns how many were deleted.
    pub fn delete_items(
        &mut self,
        collection: &str,
        ids: &[String],
        missing_ok: bool,
    ) -> Result<u64> {
        if !self.collection_exists(collection)? {
            return Err(Error::CollectionNotFound(collection.into()));
        }
        let tx = db::begin_write(&self.conn, &self.path, self.lock_timeout)?;
        let mut writer = store::Writer::new(&tx)?;
        let mut deleted = 0;
        for id in ids {
            if writer.delete_item(collection, id)? {
                deleted += 1;
            } else if !missing_ok {
                return Err(Error::ItemNotFound { collection: collection.into(), id: id.clone() });
            }
        }
        writer.finish()?;
        tx.commit()?;
        Ok(deleted)
    }

    /// Deletes a collection and all its items. Returns how many items were deleted.
    pub fn delete_collection(&mut self, id: &str) -> Result<u64> {
        if !self.collection_exists(id)? {
            return Err(Error::CollectionNotFound(id.into()));
        }
        let tx = db::begin_write(&self.conn, &self.path, self.lock_timeout)?;
        let mut writer = store::Writer::new(&tx)?;
        let deleted = writer.delete_collection(id)?;
        writer.finish()?;
        tx.commit()?;
        Ok(deleted)
    }

    /// Counts, extents, file size and schema version.
    pub fn info(&self) -> Result<Info> {
        info::info(self)
    }

    /// Checks the file: SQLite's integrity check, and that the R-tree, the FTS index, the
    /// collection stats and the queryables agree with the items.
    pub fn check(&self) -> Result<CheckReport> {
        check::check(&self.conn)
    }

    /// What the catalog has learned about a collection's item properties, by name.
    pub fn queryables(&self, collection: &str) -> Result<BTreeMap<String, QueryableStats>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, types, minimum, maximum, enum_values FROM queryables
             WHERE collection = ?1 ORDER BY name",
        )?;
        let rows = stmt.query_map([collection], |r| {
            Ok((
                r.get::<_, String>(0)?,
                QueryableStats::from_row(
                    &r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get::<_, Option<String>>(4)?.as_deref(),
                ),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One page of a search: up to `limit` items after the request's token, the exact number
    /// of items matched, and the next page's token.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("c.stacdb");
    /// let catalog = stacdb::Catalog::create(&path).unwrap();
    /// let request = stacdb::search::Request::from_json(&serde_json::json!({
    ///     "bbox": [170, -20, -170, -10], "datetime": "2020-01-01T00:00:00Z/..", "limit": 5
    /// })).unwrap();
    /// let page = catalog.search(&request, &Default::default()).unwrap();
    /// assert_eq!(page.number_matched, 0);
    /// ```
    pub fn search(
        &self,
        request: &search::Request,
        options: &search::SearchOptions,
    ) -> Result<search::Page> {
        search::engine::page(&self.conn, &self.counts, request, options)
    }

    /// The exact number of items a search matches.
    pub fn count(&self, request: &search::Request, options: &search::SearchOptions) -> Result<u64> {
        search::engine::count(&self.conn, &self.counts, request, options)
    }

    /// Every item a search matches after the request's token, in order, across all pages, at
    /// most `max_items`, each as JSON text shaped by `fields`. `each` returns `Ok(false)` to
    /// stop. Returns how many items were given. The whole walk sees one snapshot of the file.
    pub fn search_each(
        &self,
        request: &search::Request,
        options: &search::SearchOptions,
        max_items: Option<u64>,
        each: impl FnMut(&str) -> std::io::Result<bool>,
    ) -> Result<u64> {
        search::engine::each(&self.conn, request, options, max_items, each)
    }

    /// The change log after position `after`, oldest first, at most `limit` entries.
    pub fn changes(&self, after: i64, limit: usize) -> Result<Vec<Change>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, op, kind, collection, item_id FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![after, limit as i64], |r| {
            Ok(Change {
                seq: r.get(0)?,
                op: r.get(1)?,
                kind: r.get(2)?,
                collection: r.get(3)?,
                item_id: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The error for a stored document that is not valid JSON (only a damaged file has one).
pub(crate) fn stored_json(e: serde_json::Error) -> Error {
    Error::InvalidArgument(format!("a stored document is not valid JSON ({e}); run `stacdb check`"))
}
