//! Ingest: read inputs, parse and normalise in parallel, write in one transaction.
//!
//! Three stages run at once, joined by bounded channels so memory stays bounded:
//! a reader thread turns inputs into units of JSON text ([`source`]), a parser thread
//! normalises each batch of units on all cores with rayon ([`crate::document`]), and the
//! calling thread applies the documents in input order through one [`Writer`].
//!
//! A run is one `BEGIN IMMEDIATE` transaction. In strict mode the first rejected document
//! rolls the whole run back, so the catalog is exactly as it was; with `skip_invalid` the
//! rejected documents are reported and the rest committed.
//!
//! A Catalog file given as an input is a static catalog's root: [`crawl`] follows its links
//! (reading and parsing in parallel too) and feeds the documents to the same writer, before the
//! other inputs; the tree it found is stored at the end of the run.

pub mod crawl;
pub mod source;

use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rusqlite::Connection;
use serde::Serialize;

use crate::db::{self, Access, Published};
use crate::document::{self, Doc};
use crate::error::{DocError, DocErrorKind, Location, Result};
use crate::store::{Mode, Outcome, Writer};
pub use crawl::{BrokenLink, CrawlReport, NotStac};
pub use source::Input;

/// Units per batch handed from the reader to the parser.
const BATCH_UNITS: usize = 2048;
/// Bytes of JSON text per batch, at most (about).
const BATCH_BYTES: usize = 16 << 20;
/// Rejections (and crawl findings) kept in the report; all are passed to the observer.
const MAX_KEPT_ERRORS: usize = 1000;

/// How to ingest.
#[derive(Debug, Clone, Default)]
pub struct IngestOptions {
    /// What to do with documents already stored.
    pub mode: Mode,
    /// Report invalid documents and go on, instead of rolling the run back.
    pub skip_invalid: bool,
    /// Build a collection from its items' stats when an item's collection never arrives.
    pub create_collections: bool,
    /// The collection for items that have no `collection` field.
    pub collection: Option<String>,
}

/// Counts of what a run did to one kind of document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// New documents written.
    pub inserted: u64,
    /// Stored documents replaced (`--mode upsert`).
    pub updated: u64,
    /// Stored documents kept (`--mode ignore`).
    pub skipped: u64,
}

/// What an ingest run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    /// Items written, replaced and kept.
    pub items: Counts,
    /// Collections written, replaced and kept.
    pub collections: Counts,
    /// Collections built from their items by `--create-collections`.
    pub collections_created: u64,
    /// Invalid documents rejected and broken links met by a crawl (only non-zero with
    /// `skip_invalid`).
    pub failed: u64,
    /// Catalog documents met while walking directories, and passed over.
    pub catalogs_passed_over: u64,
    /// What crawling static catalogs (Catalog files given as inputs) found.
    pub crawl: CrawlReport,
    /// Files read.
    pub files: u64,
    /// Bytes read from the inputs (compressed size for gzip).
    pub bytes: u64,
    /// Wall-clock time of the run.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
    /// The first rejections (up to 1,000), in input order.
    #[serde(serialize_with = "messages")]
    pub errors: Vec<DocError>,
    /// Ids of the collections built by `--create-collections`.
    #[serde(skip)]
    pub(crate) synthesized: Vec<String>,
    /// The crawled tree, kept to store it again if the run is merged into another catalog.
    #[serde(skip)]
    pub(crate) tree: Option<crawl::Tree>,
}

impl IngestReport {
    /// Items per second over the whole run.
    pub fn items_per_second(&self) -> f64 {
        let items = self.items.inserted + self.items.updated + self.items.skipped;
        items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn messages<S: serde::Serializer>(e: &[DocError], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(e.iter().map(ToString::to_string))
}

/// Hears about an ingest run as it goes. Every method has an empty default.
pub trait Observer: Sync {
    /// The run starts; `total_bytes` is the inputs' size when every input is a file.
    fn started(&self, _total_bytes: Option<u64>) {}
    /// Progress after each batch.
    fn progress(&self, _documents: u64, _bytes: u64) {}
    /// A document was rejected and the run goes on (`skip_invalid`).
    fn rejected(&self, _error: &DocError) {}
    /// Something worth telling that is not an error.
    fn note(&self, _message: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;
impl Observer for Silent {}

/// A parsed document and whether its source came from a directory walk.
struct Parsed {
    walked: bool,
    doc: std::result::Result<Doc, DocError>,
}

pub(crate) fn run(
    conn: &Connection,
    path: &Path,
    inputs: &[Input],
    options: &IngestOptions,
    lock_timeout: Duration,
    observer: &dyn Observer,
) -> Result<IngestReport> {
    run_into(conn, path, inputs, options, lock_timeout, observer, false)
}

/// Runs an ingest. `created` says the catalog file is new, made by this run: a crawled root
/// catalog's id, title and description then become the catalog's.
fn run_into(
    conn: &Connection,
    path: &Path,
    inputs: &[Input],
    options: &IngestOptions,
    lock_timeout: Duration,
    observer: &dyn Observer,
    created: bool,
) -> Result<IngestReport> {
    let started = Instant::now();
    // Catalog files are roots to crawl; everything else is read as before.
    let (roots, inputs): (Vec<&Input>, Vec<&Input>) = inputs
        .iter()
        .partition(|input| matches!(input, Input::Path(p) if crawl::is_catalog_file(p)));
    let roots: Vec<std::path::PathBuf> = roots
        .into_iter()
        .filter_map(|input| match input {
            Input::Path(p) => Some(p.clone()),
            Input::Stdin => None,
        })
        .collect();
    let inputs: Vec<Input> = inputs.into_iter().cloned().collect();
    let sources = source::expand(&inputs)?;
    let total = if roots.is_empty() { sources.iter().map(|s| s.size).sum() } else { None };
    observer.started(total);
    let counter = source::ByteCounter::default();
    let tx = db::begin_write(conn, path, lock_timeout)?;
    let mut run = Run::new(&tx, options, observer)?;
    let crawled = if roots.is_empty() { None } else { Some(crawl::crawl(&roots, &mut run)?) };
    let crawl_bytes = crawled.as_ref().map_or(0, |c| c.bytes);
    std::thread::scope(|scope| -> Result<()> {
        let (units_tx, units_rx) = sync_channel(2);
        let (docs_tx, docs_rx) = sync_channel::<Vec<Parsed>>(2);
        let (sources, counter) = (&sources, &counter);
        scope.spawn(move || {
            source::read_all(sources, BATCH_UNITS, BATCH_BYTES, counter, &mut |batch| {
                units_tx.send(batch).is_ok()
            });
        });
        scope.spawn(move || {
            for batch in units_rx {
                let parsed: Vec<Vec<Parsed>> = batch.into_par_iter().map(parse_unit).collect();
                if docs_tx.send(parsed.into_iter().flatten().collect()).is_err() {
                    break;
                }
            }
        });
        // Returning early drops docs_rx, which stops the parser and then the reader.
        for batch in docs_rx {
            for parsed in batch {
                run.apply(parsed)?;
            }
            observer.progress(run.documents, crawl_bytes + counter.get());
        }
        Ok(())
    })?;
    let mut report = run.finish()?;
    report.files = sources.len() as u64;
    report.bytes = crawl_bytes + counter.get();
    if let Some(crawled) = crawled {
        crawl::write_tree(&tx, &crawled.tree)?;
        if created && let Some(root) = &crawled.tree.root {
            crawl::set_root_metadata(&tx, root)?;
        }
        report.files += crawled.report.files;
        report.crawl = crawled.report;
        report.tree = Some(crawled.tree);
    }
    tx.commit()?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Ingests into the catalog file at `path`, creating it when it is missing.
///
/// A new catalog is built whole in a temporary file and published when the run commits (see
/// [`db::NewCatalog`]): a failed run leaves no file behind, and a first load writes each page
/// once instead of twice. If another process creates `path` meanwhile, the run's documents
/// are then ingested into that catalog, with the same options.
pub fn ingest_path(
    path: &Path,
    lock_timeout: Duration,
    inputs: &[Input],
    options: &IngestOptions,
    observer: &dyn Observer,
) -> Result<IngestReport> {
    if let Ok(meta) = std::fs::metadata(path) {
        // An empty file (say, made by `touch`) is turned into a catalog in place.
        let access = if meta.len() == 0 { Access::Create } else { Access::ReadWrite };
        let conn = db::open(path, access, lock_timeout)?;
        let created = access == Access::Create;
        return run_into(&conn, path, inputs, options, lock_timeout, observer, created);
    }
    let new = db::NewCatalog::build(path, lock_timeout)?;
    let report = match run_into(&new.conn, &new.temp, inputs, options, lock_timeout, observer, true)
    {
        Ok(report) => report,
        Err(e) => {
            new.discard();
            return Err(e);
        }
    };
    match new.publish(path)? {
        Published::Linked => Ok(report),
        Published::Exists(temp) => {
            let merged = merge(&temp, path, options, lock_timeout, observer, report);
            db::remove_with_sidecars(&temp);
            merged
        }
    }
}

/// Ingests the documents of the catalog at `from` into the one at `into`: the path taken when
/// another process created `into` while this run built its own.
fn merge(
    from: &Path,
    into: &Path,
    options: &IngestOptions,
    lock_timeout: Duration,
    observer: &dyn Observer,
    first: IngestReport,
) -> Result<IngestReport> {
    tracing::debug!("{} was created meanwhile; merging this run into it", into.display());
    let source = db::open(from, Access::ReadOnly, lock_timeout)?;
    let conn = db::open(into, Access::ReadWrite, lock_timeout)?;
    let tx = db::begin_write(&conn, into, lock_timeout)?;
    let mut run = Run::new(&tx, options, observer)?;
    let location = Location::file("(this run's input)");
    let mut stmt = source
        .prepare("SELECT content FROM collections WHERE content IS NOT NULL ORDER BY rowid")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let value = serde_json::from_str(&row.get::<_, String>(0)?).map_err(crate::stored_json)?;
        let doc = document::normalize(value, location.clone());
        // A collection --create-collections built is built again here if still missing.
        if let Ok(Doc::Collection(c)) = &doc
            && first.synthesized.contains(&c.id)
        {
            continue;
        }
        run.apply(Parsed { walked: false, doc })?;
    }
    let mut stmt = source.prepare("SELECT collection, content FROM items ORDER BY fid")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let value = serde_json::from_str(&row.get::<_, String>(1)?).map_err(crate::stored_json)?;
        let mut doc = document::normalize(value, location.clone());
        if let Ok(Doc::Item(item)) = &mut doc {
            // Keep the collection the run gave it (it may have come from --collection).
            item.collection = Some(row.get(0)?);
        }
        run.apply(Parsed { walked: false, doc })?;
    }
    let mut report = run.finish()?;
    if let Some(tree) = &first.tree {
        crawl::write_tree(&tx, tree)?;
    }
    tx.commit()?;
    report.crawl = first.crawl;
    report.tree = first.tree;
    report.failed += first.failed;
    let mut errors = first.errors;
    errors.append(&mut report.errors);
    report.errors = errors;
    report.files = first.files;
    report.bytes = first.bytes;
    report.elapsed = first.elapsed;
    Ok(report)
}

fn parse_unit(unit: source::Unit) -> Vec<Parsed> {
    let walked = unit.walked;
    let wrap = |doc| Parsed { walked, doc };
    let text = match unit.text {
        Ok(text) => text,
        Err(reason) => {
            let error = DocError {
                location: unit.location,
                id: None,
                reason: DocErrorKind::Unreadable(reason),
            };
            return vec![wrap(Err(error))];
        }
    };
    // An NDJSON line holding one valid item takes the fast path, which stores the line itself.
    if unit.location.line.is_some()
        && let Some(item) = document::fast_item(&text, &unit.location)
    {
        return vec![wrap(Ok(Doc::Item(Box::new(item))))];
    }
    match serde_json::from_slice(&text) {
        Ok(value) => document::documents(value, &unit.location).into_iter().map(wrap).collect(),
        Err(e) => {
            let mut location = unit.location;
            let message = e.to_string();
            let message = match message.rfind(" at line ") {
                Some(i) => &message[..i],
                None => &message,
            };
            let reason = if location.line.is_some() {
                format!("{message} (column {})", e.column())
            } else {
                location.line = Some(unit.line_offset + e.line() as u64);
                format!("{message} (column {})", e.column())
            };
            vec![wrap(Err(DocError {
                location,
                id: None,
                reason: DocErrorKind::InvalidJson(reason),
            }))]
        }
    }
}

/// The writer-side state of one run.
pub(crate) struct Run<'a> {
    writer: Writer<'a>,
    options: &'a IngestOptions,
    observer: &'a dyn Observer,
    report: IngestReport,
    documents: u64,
}

impl<'a> Run<'a> {
    fn new(
        conn: &'a Connection,
        options: &'a IngestOptions,
        observer: &'a dyn Observer,
    ) -> Result<Self> {
        Ok(Run {
            writer: Writer::new(conn)?,
            options,
            observer,
            report: IngestReport::default(),
            documents: 0,
        })
    }

    fn apply(&mut self, parsed: Parsed) -> Result<()> {
        self.documents += 1;
        match parsed.doc {
            Err(e) => self.reject(e),
            Ok(Doc::Item(item)) => {
                let Some(collection) =
                    item.collection.as_ref().or(self.options.collection.as_ref())
                else {
                    let id = Some(item.id.clone());
                    return self.reject(DocError {
                        location: item.location,
                        id,
                        reason: DocErrorKind::NoCollection,
                    });
                };
                self.writer.ensure_collection(collection, &item)?;
                match self.writer.put_item(&item, collection, self.options.mode)? {
                    Ok(outcome) => count(&mut self.report.items, outcome),
                    Err(reason) => {
                        let id = Some(item.id.clone());
                        return self.reject(DocError { location: item.location, id, reason });
                    }
                }
                Ok(())
            }
            Ok(Doc::Collection(collection)) => {
                match self.writer.put_collection(&collection, self.options.mode)? {
                    Ok(outcome) => count(&mut self.report.collections, outcome),
                    Err(reason) => {
                        let id = Some(collection.id.clone());
                        return self.reject(DocError { location: collection.location, id, reason });
                    }
                }
                Ok(())
            }
            Ok(Doc::Catalog(catalog)) if parsed.walked => {
                self.report.catalogs_passed_over += 1;
                self.observer.note(&format!(
                    "{}: passed over catalog '{}' (a directory walk ingests the item and collection files beside it)",
                    catalog.location, catalog.id
                ));
                Ok(())
            }
            Ok(Doc::Catalog(catalog)) => self.reject(DocError {
                location: catalog.location,
                id: Some(catalog.id),
                reason: DocErrorKind::CatalogNotSupported,
            }),
        }
    }

    fn reject(&mut self, error: DocError) -> Result<()> {
        if !self.options.skip_invalid {
            return Err(error.into());
        }
        self.report.failed += 1;
        self.observer.rejected(&error);
        if self.report.errors.len() < MAX_KEPT_ERRORS {
            self.report.errors.push(error);
        }
        Ok(())
    }

    /// Resolves collections that items named but never delivered, then stores the stats.
    fn finish(mut self) -> Result<IngestReport> {
        for pending in self.writer.pending() {
            if self.options.create_collections {
                self.writer.create_collection_from_items(&pending.collection)?;
                self.report.collections_created += 1;
                self.report.synthesized.push(pending.collection);
                continue;
            }
            let items = self.writer.discard_pending(&pending.collection)?;
            let error = DocError {
                location: pending.location,
                id: Some(pending.item_id),
                reason: DocErrorKind::UnknownCollection { collection: pending.collection, items },
            };
            if !self.options.skip_invalid {
                return Err(error.into());
            }
            self.report.items.inserted -= items;
            self.report.failed += items - 1;
            self.reject(error)?;
        }
        self.writer.finish()?;
        Ok(self.report)
    }
}

fn count(counts: &mut Counts, outcome: Outcome) {
    match outcome {
        Outcome::Inserted => counts.inserted += 1,
        Outcome::Updated => counts.updated += 1,
        Outcome::Skipped => counts.skipped += 1,
    }
}
