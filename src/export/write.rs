//! Writing a static catalog: the tree's documents, then every item, streamed.
//!
//! Items are read from SQLite on the calling thread in tree order (group key, then id; see
//! [`Plan`]), one container (a leaf catalog or part, at most `max_links` items) at a time:
//! only ids and row numbers are held for a container, to name its files. Items to write are
//! gathered into chunks of [`CHUNK`]; for each chunk the documents are read by row number, then
//! the item files are built and written by the thread pool while the calling thread reads the
//! next chunk. Memory is bounded by a few chunks and one container, whatever the catalog size.
//!
//! A container's document is written after the chunk that holds its items, so a reader of an
//! updated export never follows a link to an item file that is not there yet.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

use rayon::prelude::*;
use rusqlite::Connection;

use super::incremental::{self, Manifest, State, replace_file, temp_path};
use super::layout::{Kind, Link, Plan, Shape, Template};
use super::links::{Entry, catalog_base, fnv64, item_document, item_links, node_document};
use super::paths::{escape, join, resolve_case};
use super::{Context, ExportReport, INDEX, Layout, io};
use crate::error::{Error, Result};

/// Items read and written together.
pub const CHUNK: usize = 2048;

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
    conn: &'a Connection,
    plan: &'a Plan,
    state: Option<State>,
    report: ExportReport,
    chunk: Vec<Work>,
    /// Documents waiting for the chunk that holds their items.
    docs: Vec<(String, Vec<u8>)>,
    /// The next index, written as items are placed.
    index: BufWriter<File>,
    /// Lower-cased paths written by this run (incremental: never deleted as stale).
    written: HashSet<String>,
    /// Document path of each collection, by id.
    collection_docs: HashMap<String, String>,
    /// To the thread that hands batches to the pool.
    batches: Option<SyncSender<Batch>>,
    /// With one thread: writes a batch in place (instead of `batches`).
    inline: Option<&'a WriteBatch<'a>>,
    /// Items and files written in place.
    inline_written: (u64, u64),
}

type WriteBatch<'a> = dyn Fn(Batch) -> Result<(u64, u64)> + 'a;

/// Item files and then documents to write.
struct Batch {
    items: Vec<Work>,
    docs: Vec<(String, Vec<u8>)>,
}

/// Writes the static catalog of `ctx` into `root`: a fresh (empty) directory, or with
/// `state` an existing export to update.
pub(crate) fn run(ctx: &Context, root: &Path, state: Option<State>) -> Result<ExportReport> {
    let conn = ctx.catalog.connection();
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
    let mut w = Writer {
        ctx,
        conn,
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
        docs: Vec::new(),
        index,
        written: HashSet::new(),
        collection_docs,
        batches: None,
        inline: None,
        inline_written: (0, 0),
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
    // With one thread, batches are read and then written by this thread. With more, this
    // thread reads; a second one hands each batch to the pool of `threads` writers and waits
    // for it, so that reading the next batch overlaps writing this one. At most two batches
    // are in flight.
    let atomic = w.state.is_some();
    let (pool, observer) = (&ctx.pool, ctx.observer);
    let write_batch = move |batch: Batch| -> Result<(u64, u64)> {
        pool.install(|| {
            batch.items.par_iter().try_for_each(|work| {
                write_item(root, work, atomic)?;
                observer.advanced(1);
                Ok::<(), Error>(())
            })
        })?;
        let mut files = batch.items.len() as u64;
        for (path, bytes) in &batch.docs {
            files += u64::from(write_doc(root, path, bytes, atomic)?);
        }
        Ok((batch.items.len() as u64, files))
    };
    let (items_written, files_written) = if pool.current_num_threads() == 1 {
        w.inline = Some(&write_batch);
        w.stream()?;
        w.dispatch()?;
        w.inline = None;
        w.inline_written
    } else {
        let (read, written) = std::thread::scope(|s| {
            let (sender, receiver) = sync_channel::<Batch>(1);
            let writer = s.spawn(move || -> Result<(u64, u64)> {
                let (mut items, mut files) = (0, 0);
                for batch in receiver {
                    let (i, f) = write_batch(batch)?;
                    items += i;
                    files += f;
                }
                Ok((items, files))
            });
            w.batches = Some(sender);
            let read = w.stream().and_then(|()| w.dispatch());
            w.batches = None;
            (read, writer.join().expect("the export writer thread panicked"))
        });
        // An error of the writer explains a failed send; report it first.
        let written = written?;
        read?;
        written
    };
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

impl Writer<'_> {
    /// Reads every item in tree order and places it.
    fn stream(&mut self) -> Result<()> {
        let plan = self.plan;
        let k = plan.key_len;
        let mut stmt = self.conn.prepare(&plan.items_sql)?;
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
                self.flush(container, &key, &mut buffer)?;
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
    fn flush(&mut self, container: usize, key: &[String], buffer: &mut Vec<Pending>) -> Result<()> {
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
        }
        buffer.clear();
        self.node_doc(container, &paths)?;
        if self.chunk.len() >= CHUNK {
            self.dispatch()?;
        }
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
                match self.ctx.catalog.collection(id)? {
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

    /// Reads the chunk's documents and sends it, with the queued documents, to be written.
    fn dispatch(&mut self) -> Result<()> {
        let mut items = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        {
            let mut order: Vec<usize> = (0..items.len()).collect();
            order.sort_unstable_by_key(|&i| items[i].fid);
            let mut stmt = self.conn.prepare_cached("SELECT content FROM items WHERE fid = ?1")?;
            for i in order {
                items[i].content = stmt.query_row([items[i].fid], |r| r.get(0))?;
            }
        }
        let batch = Batch { items, docs: std::mem::take(&mut self.docs) };
        if let Some(write) = self.inline {
            let (items, files) = write(batch)?;
            self.inline_written.0 += items;
            self.inline_written.1 += files;
            return Ok(());
        }
        let sender = self.batches.as_ref().expect("dispatch runs while the writer thread does");
        sender
            .send(batch)
            .map_err(|_| Error::InvalidArgument("the export's writer thread stopped".into()))
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
