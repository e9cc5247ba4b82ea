//! Writing a static catalog: the tree's documents, then every item, streamed.
//!
//! The whole run is one job of the export's thread pool. Its thread reads the items from
//! SQLite in tree order (group key, then id; see [`Plan`]), one container (a leaf catalog or
//! part, at most `max_links` items) at a time: only ids and row numbers are held for a
//! container, to name its files. Items to write are gathered into chunks (growing from
//! [`FIRST_CHUNK`] to [`CHUNK`]); for each chunk the documents are read by row number and the
//! chunk becomes a job of the pool, whose threads build and write the item files while the
//! reading thread reads on. When [`IN_FLIGHT`] chunks wait, the reading thread writes too.
//! Memory is bounded by a few chunks and one container, whatever the catalog size.
//!
//! A container's document is written after the chunk that holds its items (and every earlier
//! chunk), so a reader of an updated export never follows a link to an item file that is not
//! there yet.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use rayon::ScopeFifo;
use rayon::prelude::*;
use rusqlite::Connection;

use super::incremental::{self, Manifest, State, replace_file, temp_path};
use super::layout::{Kind, Link, Plan, Shape, Template};
use super::links::{Entry, catalog_base, fnv64, item_document, item_links, node_document};
use super::paths::{escape, join, resolve_case};
use super::{Context, ExportObserver, ExportReport, INDEX, Layout, io};
use crate::Catalog;
use crate::error::{Error, Result};

/// Items read and written together, at most.
pub const CHUNK: usize = 2048;
/// The first chunk: small, so the writers start while the reader reads on; each next chunk
/// doubles up to [`CHUNK`].
const FIRST_CHUNK: usize = 128;

/// One item file to write.
struct Work {
    fid: i64,
    collection: String,
    id: String,
    /// Directory and file, relative to the output root.
    dir: String,
    path: String,
    /// The export's links, from [`item_links`].
    links: String,
    content: String,
}

/// An item read from the stream, waiting for its container to be complete.
struct Pending {
    sort: String,
    id: String,
    collection: String,
    fid: i64,
}

struct Writer<'a> {
    ctx: &'a Context<'a>,
    db: &'a Catalog,
    plan: &'a Plan,
    state: Option<State>,
    report: ExportReport,
    chunk: Vec<Work>,
    /// The size at which `chunk` is sent.
    chunk_size: usize,
    /// Documents waiting for the chunk that holds their items.
    docs: Vec<(String, Vec<u8>)>,
    /// The next index, written as items are placed.
    index: BufWriter<File>,
    /// Lower-cased paths written by this run (incremental: never deleted as stale).
    written: HashSet<String>,
    /// Document path of each collection, by id.
    collection_docs: HashMap<String, String>,
    /// What the reader and the writing jobs share.
    shared: &'a Shared<'a>,
    /// Batches sent so far (each batch's number orders the writing of documents).
    batches: u64,
}

/// Batches written at once, at most, while the reader reads the next one.
const IN_FLIGHT: usize = 2;

/// The state the reader and the pool's writing jobs share.
struct Shared<'a> {
    root: &'a Path,
    /// Items replace existing files through temporary files (an update).
    atomic: bool,
    observer: &'a dyn ExportObserver,
    /// Batches sent and not yet written.
    in_flight: AtomicUsize,
    /// A job failed: the others stop and the reader stops reading.
    failed: AtomicBool,
    /// The first error.
    error: Mutex<Option<Error>>,
    items_written: AtomicU64,
    files_written: AtomicU64,
    /// Documents are written in batch order, after the items of every earlier batch.
    docs: Mutex<DocOrder>,
}

#[derive(Default)]
struct DocOrder {
    /// The batch whose documents are written next.
    next: u64,
    /// Documents of batches written out of order, by batch number.
    waiting: BTreeMap<u64, Vec<(String, Vec<u8>)>>,
}

impl Shared<'_> {
    /// Writes batch `number`: its item files, then (in batch order) its documents.
    fn write(&self, number: u64, batch: Batch) {
        // Counted out even if the job panics (rayon then re-raises the panic at the scope's
        // end), so that the reader never waits for it forever.
        struct Done<'b>(&'b AtomicUsize);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _done = Done(&self.in_flight);
        if let Err(e) = self.try_write(number, batch) {
            self.fail(e);
        }
    }

    fn try_write(&self, number: u64, batch: Batch) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        batch.items.par_iter().try_for_each(|work| {
            if self.failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            write_item(self.root, work, self.atomic)?;
            self.observer.advanced(1);
            Ok::<(), Error>(())
        })?;
        self.items_written.fetch_add(batch.items.len() as u64, Ordering::Relaxed);
        self.files_written.fetch_add(batch.items.len() as u64, Ordering::Relaxed);
        let mut order = self.docs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        order.waiting.insert(number, batch.docs);
        while let Some(docs) = {
            let next = order.next;
            order.waiting.remove(&next)
        } {
            for (path, bytes) in &docs {
                let written = write_doc(self.root, path, bytes, self.atomic)?;
                self.files_written.fetch_add(u64::from(written), Ordering::Relaxed);
            }
            order.next += 1;
        }
        Ok(())
    }

    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::Release);
        let mut slot = self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert(e);
    }
}

/// Item files and then documents to write.
struct Batch {
    items: Vec<Work>,
    docs: Vec<(String, Vec<u8>)>,
}

/// Writes the static catalog of `ctx` into `root`: a fresh (empty) directory, or with
/// `state` an existing export to update.
pub(crate) fn run(ctx: &Context, root: &Path, state: Option<State>) -> Result<ExportReport> {
    // The whole run is one job of the pool: the thread that reads is one of the pool's, and
    // helps to write whenever it is ahead, so `--threads N` means N busy threads, not N + 1.
    ctx.pool.install(|| run_in_pool(ctx, root, state))
}

fn run_in_pool(ctx: &Context, root: &Path, state: Option<State>) -> Result<ExportReport> {
    let db = ctx.db();
    let conn = db.connection();
    let mut notes = Vec::new();
    let template;
    let shape = match &ctx.options.layout {
        Layout::Default => {
            template = Template::default_layout();
            Shape::Template(&template)
        }
        Layout::Template(text) => {
            template = Template::parse(text)?;
            Shape::Template(&template)
        }
        Layout::AsImported => {
            if has_imported_tree(conn)? {
                Shape::Imported
            } else {
                let note = "--layout as-imported: this catalog has no imported tree (it was \
                            not ingested from a static catalog.json); using the default layout"
                    .to_string();
                ctx.observer.note(&note);
                notes.push(note);
                template = Template::default_layout();
                Shape::Template(&template)
            }
        }
    };
    let plan = Plan::build(conn, shape, ctx.options.max_links)?;
    let total: u64 = plan.nodes.iter().map(|n| n.items).sum();
    ctx.observer.started(total);
    let index_path = match state {
        Some(_) => temp_path(&root.join(INDEX)),
        None => root.join(INDEX),
    };
    let index = BufWriter::new(File::create(&index_path).map_err(|e| io(&index_path, e))?);
    let collection_docs =
        plan.collections.iter().map(|c| (c.id.clone(), plan.doc_path(c.node))).collect();
    let shared = Shared {
        root,
        atomic: state.is_some(),
        observer: ctx.observer,
        in_flight: AtomicUsize::new(0),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        items_written: AtomicU64::new(0),
        files_written: AtomicU64::new(0),
        docs: Mutex::new(DocOrder::default()),
    };
    let mut w = Writer {
        ctx,
        db: &db,
        plan: &plan,
        state,
        report: ExportReport {
            kind: "full",
            items: total,
            catalogs: plan.nodes.len() as u64,
            notes,
            ..Default::default()
        },
        chunk: Vec::with_capacity(CHUNK),
        chunk_size: FIRST_CHUNK,
        docs: Vec::new(),
        index,
        written: HashSet::new(),
        collection_docs,
        shared: &shared,
        batches: 0,
    };
    if w.state.is_some() {
        w.report.kind = "incremental";
    }
    // Directories, and the documents that list no items.
    for n in 0..plan.nodes.len() {
        let dir = root.join(&plan.nodes[n].dir);
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        if !plan.nodes[n].links.iter().any(|l| matches!(l, Link::Items { .. })) {
            w.node_doc(n, &[])?;
        }
    }
    // Each batch read becomes a job of the pool (first in, first out); the scope ends when
    // every job has. An error of a job explains a failed read; report it first.
    let read = rayon::in_place_scope_fifo(|scope| {
        let read = w.stream(scope).and_then(|()| w.dispatch(scope));
        if read.is_err() {
            // The jobs still waiting need not write what will be removed.
            shared.failed.store(true, Ordering::Release);
        }
        read
    });
    if let Some(e) = shared.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
        return Err(e);
    }
    read?;
    let (items_written, files_written) = (
        shared.items_written.load(Ordering::Acquire),
        shared.files_written.load(Ordering::Acquire),
    );
    w.report.items_written += items_written;
    w.report.files_written += files_written;
    w.index.flush().map_err(|e| io(&index_path, e))?;
    // Incremental: remove what is gone, then record the new state.
    let mut documents: Vec<String> = (0..plan.nodes.len()).map(|n| plan.doc_path(n)).collect();
    documents.sort();
    if let Some(mut state) = w.state.take() {
        state.finish_walk(plan.key_len + 1)?;
        let mut stale = std::mem::take(&mut state.stale);
        let current: HashSet<&String> = documents.iter().collect();
        stale.extend(state.old.documents.iter().filter(|d| !current.contains(d)).cloned());
        let mut keep = std::mem::take(&mut w.written);
        keep.extend(documents.iter().map(|d| d.to_ascii_lowercase()));
        w.report.files_deleted += incremental::remove_stale(root, &stale, &keep)?;
        let final_index = root.join(INDEX);
        std::fs::rename(&index_path, &final_index).map_err(|e| io(&final_index, e))?;
    }
    let manifest = Manifest {
        stacdb_export: 1,
        catalog_id: ctx.meta.id.clone(),
        change_seq: ctx.change_seq,
        complete: true,
        options: ctx.recorded.clone(),
        items: total,
        documents,
    };
    manifest.write(root)?;
    w.report.files_written += 2;
    Ok(w.report)
}

fn has_imported_tree(conn: &Connection) -> Result<bool> {
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'
         AND name IN ('subcatalogs', 'collection_parents', 'item_parents')",
        [],
        |r| r.get(0),
    )?;
    if tables < 3 {
        return Ok(false);
    }
    Ok(conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM subcatalogs) OR EXISTS (SELECT 1 FROM collection_parents)
                OR EXISTS (SELECT 1 FROM item_parents)",
        [],
        |r| r.get(0),
    )?)
}

impl<'a> Writer<'a> {
    /// Reads every item in tree order and places it.
    fn stream<'s>(&mut self, scope: &ScopeFifo<'s>) -> Result<()>
    where
        'a: 's,
    {
        let plan = self.plan;
        let k = plan.key_len;
        let mut stmt = self.db.connection().prepare(&plan.items_sql)?;
        let mut rows = stmt.query([])?;
        let mut key: Vec<String> = Vec::new();
        let mut owner: Option<usize> = None;
        let mut index = 0u64;
        let (mut container, mut run_end) = (0usize, 0u64);
        let mut buffer: Vec<Pending> = Vec::new();
        while let Some(row) = rows.next()? {
            let mut same = owner.is_some();
            for (i, part) in key.iter().enumerate().take(k) {
                if !same {
                    break;
                }
                same = row.get_ref(i)?.as_str().map_err(rusqlite::Error::from)? == part;
            }
            if !same {
                if let Some(o) = owner {
                    self.check_count(o, index)?;
                }
                key = (0..k).map(|i| row.get(i)).collect::<rusqlite::Result<_>>()?;
                let o = *plan.groups.get(&key).ok_or_else(|| changed_under(&key))?;
                owner = Some(o);
                index = 0;
                (container, run_end) = plan.container(o, 0);
            } else if index == run_end {
                (container, run_end) = plan.container(owner.expect("set"), index);
            }
            buffer.push(Pending {
                sort: row.get(k)?,
                id: row.get(k + 1)?,
                collection: row.get(k + 2)?,
                fid: row.get(k + 3)?,
            });
            index += 1;
            if index == run_end {
                self.flush(scope, container, &key, &mut buffer)?;
            }
        }
        if let Some(o) = owner {
            self.check_count(o, index)?;
        }
        Ok(())
    }

    fn check_count(&self, owner: usize, seen: u64) -> Result<()> {
        let expected = self.plan.nodes[owner].items;
        if seen != expected {
            return Err(Error::InvalidArgument(format!(
                "'{}' was counted with {expected} items but {seen} were read; run `stacdb check`",
                self.plan.node_id(owner)
            )));
        }
        Ok(())
    }

    /// Names the items of a complete container, queues the ones to write, and its document.
    fn flush<'s>(
        &mut self,
        scope: &ScopeFifo<'s>,
        container: usize,
        key: &[String],
        buffer: &mut Vec<Pending>,
    ) -> Result<()>
    where
        'a: 's,
    {
        let plan = self.plan;
        let node = &plan.nodes[container];
        let fixed: Vec<&str> = node
            .links
            .iter()
            .filter_map(|l| match l {
                Link::Node(c) => Some(plan.nodes[*c].name.as_str()),
                Link::Items { .. } => None,
            })
            .collect();
        let originals: Vec<&str> = buffer.iter().map(|p| p.id.as_str()).collect();
        let mut names: Vec<String> = originals.iter().map(|id| escape(id)).collect();
        resolve_case(&mut names, &originals, &fixed);
        let parent_doc = plan.doc_path(container);
        let mut paths = Vec::with_capacity(buffer.len());
        for (p, name) in buffer.iter().zip(&names) {
            let dir = join(&node.dir, name);
            let path = format!("{dir}/{name}.json");
            let collection_doc = self.collection_docs.get(&p.collection).ok_or_else(|| {
                Error::InvalidArgument(format!("item '{}': no collection '{}'", p.id, p.collection))
            })?;
            let links =
                item_links(&self.ctx.hrefs, &path, "catalog.json", &parent_doc, collection_doc);
            let hash = fnv64(&links);
            let mut line: Vec<&str> = Vec::with_capacity(key.len() + 3);
            line.extend(key.iter().map(String::as_str));
            line.push(&p.sort);
            let write = match self.state.as_mut() {
                None => true,
                Some(state) => state.must_write(&line, &path, &hash, &p.collection, &p.id)?,
            };
            line.push(&path);
            line.push(&hash);
            serde_json::to_writer(&mut self.index, &line)
                .and_then(|()| self.index.write_all(b"\n").map_err(serde_json::Error::io))
                .map_err(|e| Error::InvalidArgument(format!("{INDEX}: {e}")))?;
            if write {
                if self.state.is_some() {
                    self.written.insert(path.to_ascii_lowercase());
                }
                self.chunk.push(Work {
                    fid: p.fid,
                    collection: p.collection.clone(),
                    id: p.id.clone(),
                    dir,
                    path: path.to_string(),
                    links,
                    content: String::new(),
                });
            } else {
                self.ctx.observer.advanced(1);
            }
            paths.push(path);
            // A container may hold up to --max-links items: send them in chunks as they are
            // named. Its document is queued after the last of them.
            if self.chunk.len() >= self.chunk_size {
                self.dispatch(scope)?;
            }
        }
        buffer.clear();
        self.node_doc(container, &paths)?;
        Ok(())
    }

    /// Builds a node's document (`items`: the paths of the items it lists) and queues it.
    fn node_doc(&mut self, n: usize, items: &[String]) -> Result<()> {
        let plan = self.plan;
        let node = &plan.nodes[n];
        let path = plan.doc_path(n);
        let base = match &node.kind {
            Kind::Root => {
                let m = &self.ctx.meta;
                let description = m
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("The STAC catalog '{}', exported by stacdb", m.id));
                catalog_base(&m.id, m.title.as_deref(), &description)
            }
            Kind::Collection(c) => {
                let id = &plan.collections[*c].id;
                match self.db.collection(id)? {
                    serde_json::Value::Object(map) => map,
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "collection '{id}': the stored document is not a JSON object"
                        )));
                    }
                }
            }
            Kind::Catalog { id, description, content } => match content {
                Some(text) => match serde_json::from_str(text).map_err(crate::stored_json)? {
                    serde_json::Value::Object(map) => map,
                    _ => catalog_base(id, None, description),
                },
                None => catalog_base(id, None, description),
            },
            Kind::Part { number, of } => {
                let owner = plan.node_id(*of);
                let owner = if owner.is_empty() { self.ctx.meta.id.clone() } else { owner };
                let description = format!(
                    "Part {number} of '{owner}', whose entries are split into parts of at most \
                     {} (stacdb export --max-links)",
                    self.ctx.options.max_links
                );
                catalog_base(&super::layout::part_name(*number), None, &description)
            }
        };
        let mut entries = Vec::with_capacity(node.links.len() + items.len());
        for link in &node.links {
            match link {
                Link::Node(c) => entries.push(Entry::child(plan.doc_path(*c), None)),
                Link::Items { .. } => entries.extend(items.iter().map(|p| Entry::item(p.clone()))),
            }
        }
        let parent = node.parent.map(|p| plan.doc_path(p));
        let bytes = node_document(
            &self.ctx.hrefs,
            base,
            &path,
            "catalog.json",
            parent.as_deref(),
            &entries,
        );
        self.docs.push((path, bytes));
        Ok(())
    }

    /// Reads the chunk's documents and hands it, with the queued documents, to the pool. With
    /// [`IN_FLIGHT`] batches already waiting, this thread writes too until one is done.
    fn dispatch<'s>(&mut self, scope: &ScopeFifo<'s>) -> Result<()>
    where
        'a: 's,
    {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(Error::InvalidArgument("the export's writing failed".into()));
        }
        self.chunk_size = (self.chunk_size * 2).min(CHUNK);
        let mut items = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        {
            let mut order: Vec<usize> = (0..items.len()).collect();
            order.sort_unstable_by_key(|&i| items[i].fid);
            let mut stmt =
                self.db.connection().prepare_cached("SELECT content FROM items WHERE fid = ?1")?;
            for i in order {
                items[i].content = stmt.query_row([items[i].fid], |r| r.get(0))?;
            }
        }
        let batch = Batch { items, docs: std::mem::take(&mut self.docs) };
        let (shared, number) = (self.shared, self.batches);
        self.batches += 1;
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        scope.spawn_fifo(move |_| shared.write(number, batch));
        while shared.in_flight.load(Ordering::Acquire) > IN_FLIGHT {
            // Run a waiting job (or a piece of one) here; when there is none to take, the
            // other threads are on the last pieces: wait a moment.
            if rayon::yield_now() != Some(rayon::Yield::Executed) {
                std::thread::sleep(std::time::Duration::from_micros(50));
            }
        }
        Ok(())
    }
}

/// Writes a catalog document; with `atomic` (an update), only when its bytes differ, through a
/// temporary file. Returns whether it was written.
fn write_doc(root: &Path, rel: &str, bytes: &[u8], atomic: bool) -> Result<bool> {
    let path = root.join(rel);
    if atomic {
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        replace_file(&path, bytes)?;
    } else {
        std::fs::write(&path, bytes).map_err(|e| io(&path, e))?;
    }
    Ok(true)
}

fn changed_under(key: &[String]) -> Error {
    Error::InvalidArgument(format!(
        "items of group {key:?} were not counted when the tree was built; run `stacdb check`"
    ))
}

fn write_item(root: &Path, work: &Work, atomic: bool) -> Result<()> {
    let mut bytes = Vec::new();
    item_document(&work.content, &work.links, &work.collection, &mut bytes).map_err(|e| {
        Error::InvalidArgument(format!(
            "item '{}' of collection '{}': the stored document is not a JSON object ({e}); run \
             `stacdb check`",
            work.id, work.collection
        ))
    })?;
    let dir = root.join(&work.dir);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(&dir, e)),
    }
    let path = root.join(&work.path);
    if atomic {
        replace_file(&path, &bytes)
    } else {
        std::fs::write(&path, &bytes).map_err(|e| io(&path, e))
    }
}
