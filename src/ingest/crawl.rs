//! Crawling a static catalog: a Catalog file given as an INPUT is a root whose `child` and
//! `item` links are followed, to any depth.
//!
//! The crawl runs breadth first, a batch of up to [`BATCH_FILES`] files at a time: each batch
//! is read, parsed and normalised on all cores with rayon, then walked in link order on the
//! crawler thread, which queues the links it has not met before (so cycles and documents linked
//! twice are read once). The documents go to the writer over a bounded channel and are written
//! in the run's one transaction, as any other input's; the tree (sub-catalogs, and where each
//! collection and item hung) is written at the end of the run into the schema step 4 tables.
//!
//! What does not belong is reported: a link that cannot be followed (a missing file, an
//! `http(s)` URL) is a [`BrokenLink`], which fails a strict run and is listed with
//! `skip_invalid`; a linked file that is JSON but not STAC (plain GeoJSON) is [`NotStac`]: it is
//! not imported and is listed, and does not fail the run.

use std::collections::{HashSet, VecDeque};
use std::io::{BufRead, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};

use rayon::prelude::*;
use rusqlite::{Connection, params};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{MAX_KEPT_ERRORS, Parsed, Run};
use crate::document::{self, Doc};
use crate::error::{DocError, DocErrorKind, Location, Result};

/// Files read and parsed at a time.
const BATCH_FILES: usize = 512;
/// A file larger than this is never taken for a root catalog (it is read as an ordinary input).
const MAX_ROOT_BYTES: u64 = 64 << 20;

/// What crawling the static catalogs of a run found, besides the documents it ingested.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrawlReport {
    /// Root catalogs crawled (Catalog files given as inputs).
    pub roots: u64,
    /// Files the crawl read, the roots included.
    pub files: u64,
    /// Sub-catalogs met below the roots.
    pub catalogs: u64,
    /// Links to a file the crawl had already met (a cycle, or a document linked twice): not
    /// followed again.
    pub links_revisited: u64,
    /// How many links could not be followed. Each fails a strict run.
    pub broken_link_count: u64,
    /// The first 1,000 of them.
    pub broken_links: Vec<BrokenLink>,
    /// How many linked files are JSON but not STAC: they are not imported.
    pub not_stac_count: u64,
    /// The first 1,000 of them.
    pub not_stac: Vec<NotStac>,
}

/// A `child` or `item` link the crawl could not follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// The file holding the link.
    pub file: String,
    /// `child` or `item`.
    pub rel: String,
    /// The link's `href`, as written.
    pub href: String,
    /// Why it could not be followed.
    pub reason: String,
}

/// A linked file that is not a STAC document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotStac {
    /// The file.
    pub file: String,
    /// The file whose link led to it.
    pub linked_from: String,
    /// What it is instead.
    pub reason: String,
}

/// The root catalog's metadata, for the catalog row of a file this run created.
#[derive(Debug, Clone)]
pub(crate) struct RootMeta {
    pub id: String,
    pub title: Option<String>,
    pub description: Option<String>,
}

/// Where a node hangs in the crawled tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parent {
    /// The root catalog.
    Root,
    /// A sub-catalog, by its index in [`Tree::subcatalogs`].
    Catalog(usize),
    /// A collection, by id.
    Collection(String),
}

#[derive(Debug, Clone)]
struct SubCatalog {
    parent: Parent,
    position: i64,
    href: String,
    content: String,
}

#[derive(Debug, Clone)]
struct CollectionPlace {
    id: String,
    parent: Parent,
    position: i64,
    href: String,
}

#[derive(Debug, Clone)]
struct ItemPlace {
    collection: String,
    id: String,
    /// The sub-catalog it hung from; `None` when it hung from a collection or the root.
    parent: Option<usize>,
    href: String,
}

/// The shape of the crawled trees, written by [`write_tree`] once the documents are stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tree {
    subcatalogs: Vec<SubCatalog>,
    collections: Vec<CollectionPlace>,
    items: Vec<ItemPlace>,
    pub(crate) root: Option<RootMeta>,
}

/// Tells whether a file is a single STAC Catalog document: such an input is crawled. Anything
/// else (and any file that cannot be read) is left to the ordinary reader.
pub(crate) fn is_catalog_file(path: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "type", default)]
        kind: Option<Value>,
        #[serde(default)]
        stac_version: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        extent: Option<serde::de::IgnoredAny>,
        #[serde(default)]
        links: Option<serde::de::IgnoredAny>,
    }
    let Ok(meta) = std::fs::metadata(path) else { return false };
    if !meta.is_file() || meta.len() > MAX_ROOT_BYTES {
        return false;
    }
    // Only the first JSON value is read: the first line of an NDJSON file, not all of it.
    let Ok(file) = std::fs::File::open(path) else { return false };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let Ok(start) = reader.fill_buf() else { return false };
    let gzipped = start.starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead> = if gzipped {
        Box::new(std::io::BufReader::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    };
    let Ok(start) = reader.fill_buf() else { return false };
    if start.starts_with(b"\xEF\xBB\xBF") {
        reader.consume(3);
    }
    let mut json = serde_json::Deserializer::from_reader(reader);
    let Ok(head) = <Head as serde::Deserialize>::deserialize(&mut json) else { return false };
    match head.kind {
        Some(Value::String(kind)) => kind == "Catalog",
        Some(_) => false,
        // Before STAC 1.0 catalogs had no `type`; collections are told apart by `extent`.
        None => head.stac_version.is_some() && head.extent.is_none() && head.links.is_some(),
    }
}

/// Reads a whole file, gunzipping it when it starts with gzip's magic bytes.
fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let bytes = std::fs::read(path)?;
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .take(MAX_ROOT_BYTES * 16)
        .read_to_end(&mut text)?;
    Ok(text)
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// What tells two links to one file apart: its device and inode (one `stat`, where a
/// canonical path costs one per directory of the path).
#[cfg(unix)]
type FileKey = (u64, u64);
#[cfg(not(unix))]
type FileKey = PathBuf;

/// The key of a file, or why the path is not a readable file.
fn file_key(path: &Path) -> std::io::Result<FileKey> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::canonicalize(path)
    }
}

/// A file to read, and where its link put it.
struct Task {
    /// The file as the links reach it (absolute, without `.` and `..`).
    path: PathBuf,
    /// The file as reached through the links, for messages.
    label: Arc<str>,
    /// The root's directory, which tree paths are relative to.
    root_dir: Arc<Path>,
    /// True for a root catalog.
    is_root: bool,
    parent: Parent,
    /// Its parent's tree path's directory ("" for the root).
    parent_dir: String,
    position: i64,
    /// The nearest collection above it, which collectionless items join.
    above: Option<String>,
    /// The file whose link led here.
    linked_from: Option<Arc<str>>,
}

/// A `child` or `item` link, resolved.
struct Link {
    rel: &'static str,
    href: String,
    /// The file's key and the file as reached, or why the link cannot be followed.
    target: std::result::Result<(FileKey, PathBuf), String>,
}

/// A file, read and parsed.
enum Content {
    Catalog { id: String, title: Option<String>, description: Option<String>, content: String },
    Doc(Doc),
    Rejected(DocError),
    NotStac(String),
}

struct Loaded {
    content: Content,
    links: Vec<Link>,
    bytes: u64,
}

/// What the crawler hands the writer.
enum Event {
    Doc(Parsed),
    Reject(DocError),
    Note(String),
}

#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    bytes: u64,
}

/// What a crawl returns besides the documents.
pub(super) struct Crawled {
    pub tree: Tree,
    pub report: CrawlReport,
    pub bytes: u64,
}

/// Crawls the root catalogs, applying every document found through `run`, in link order
/// (breadth first). Returns the tree to store and the report.
pub(super) fn crawl(roots: &[PathBuf], run: &mut Run<'_>) -> Result<Crawled> {
    let collection = run.options.collection.clone();
    std::thread::scope(|scope| -> Result<Crawled> {
        let (tx, rx) = sync_channel::<Batch>(2);
        let crawler = scope.spawn(move || Crawler::new(collection).crawl(roots, &tx));
        let mut bytes = 0;
        let applied = (|| -> Result<()> {
            for batch in &rx {
                bytes += batch.bytes;
                for event in batch.events {
                    match event {
                        Event::Doc(parsed) => run.apply(parsed)?,
                        Event::Reject(error) => {
                            run.documents += 1;
                            run.reject(error)?
                        }
                        Event::Note(message) => run.observer.note(&message),
                    }
                }
                run.observer.progress(run.documents, bytes);
            }
            Ok(())
        })();
        // Dropping the receiver stops a crawler the writer gave up on.
        drop(rx);
        let (tree, report) = crawler.join().expect("the crawler thread panicked");
        applied?;
        Ok(Crawled { tree, report, bytes })
    })
}

struct Crawler {
    collection: Option<String>,
    visited: HashSet<FileKey>,
    queue: VecDeque<Task>,
    tree: Tree,
    report: CrawlReport,
    subcatalog_hrefs: HashSet<String>,
}

impl Crawler {
    fn new(collection: Option<String>) -> Crawler {
        Crawler {
            collection,
            visited: HashSet::new(),
            queue: VecDeque::new(),
            tree: Tree::default(),
            report: CrawlReport::default(),
            subcatalog_hrefs: HashSet::new(),
        }
    }

    fn crawl(mut self, roots: &[PathBuf], tx: &SyncSender<Batch>) -> (Tree, CrawlReport) {
        for root in roots {
            let label: Arc<str> = Arc::from(root.display().to_string());
            let path = std::path::absolute(root).map(|p| lexical(&p));
            let key = path.as_ref().map_err(|e| e.kind().into()).and_then(|p| file_key(p));
            let (path, key) = match (path, key) {
                (Ok(path), Ok(key)) => (path, key),
                (Err(e), _) | (_, Err(e)) => {
                    let error = DocError {
                        location: Location::file(label),
                        id: None,
                        reason: DocErrorKind::Unreadable(format!("cannot read: {e}")),
                    };
                    let batch = Batch { events: vec![Event::Reject(error)], bytes: 0 };
                    if tx.send(batch).is_err() {
                        return (self.tree, self.report);
                    }
                    continue;
                }
            };
            if !self.visited.insert(key) {
                continue;
            }
            self.report.roots += 1;
            let root_dir: Arc<Path> = Arc::from(path.parent().unwrap_or(Path::new("/")));
            self.queue.push_back(Task {
                path,
                label,
                root_dir,
                is_root: true,
                parent: Parent::Root,
                parent_dir: String::new(),
                position: 0,
                above: None,
                linked_from: None,
            });
        }
        while !self.queue.is_empty() {
            let n = self.queue.len().min(BATCH_FILES);
            let tasks: Vec<Task> = self.queue.drain(..n).collect();
            let loaded: Vec<Loaded> = tasks.par_iter().map(load).collect();
            let mut batch = Batch::default();
            for (task, loaded) in tasks.into_iter().zip(loaded) {
                self.report.files += 1;
                batch.bytes += loaded.bytes;
                self.visit(task, loaded, &mut batch.events);
            }
            if tx.send(batch).is_err() {
                break;
            }
        }
        (self.tree, self.report)
    }

    /// Records one file in the tree, hands its document to the writer and queues its links.
    fn visit(&mut self, task: Task, loaded: Loaded, events: &mut Vec<Event>) {
        let location = Location::file(task.label.clone());
        // Where the file's own links hang, when they are followed.
        let (children, children_dir, above, id) = match loaded.content {
            Content::Catalog { id, title, description, content } => {
                if task.is_root {
                    if self.tree.root.is_none() {
                        self.tree.root = Some(RootMeta { id: id.clone(), title, description });
                    }
                    (Parent::Root, String::new(), None, id)
                } else {
                    let href = self.unique_subcatalog_href(tree_path(&task, &id));
                    let dir = parent_dir(&href);
                    self.tree.subcatalogs.push(SubCatalog {
                        parent: task.parent.clone(),
                        position: task.position,
                        href,
                        content,
                    });
                    self.report.catalogs += 1;
                    (Parent::Catalog(self.tree.subcatalogs.len() - 1), dir, task.above.clone(), id)
                }
            }
            Content::Doc(Doc::Collection(collection)) => {
                let id = collection.id.clone();
                let href = tree_path(&task, &id);
                let dir = parent_dir(&href);
                // A collection linked from a collection of the same id hangs where the first did.
                if task.parent != Parent::Collection(id.clone()) {
                    self.tree.collections.push(CollectionPlace {
                        id: id.clone(),
                        parent: task.parent.clone(),
                        position: task.position,
                        href,
                    });
                }
                events.push(Event::Doc(Parsed {
                    walked: false,
                    doc: Ok(Doc::Collection(collection)),
                }));
                (Parent::Collection(id.clone()), dir, Some(id.clone()), id)
            }
            Content::Doc(Doc::Item(mut item)) => {
                if item.collection.is_none() {
                    match (&task.above, &self.collection) {
                        (Some(above), _) => item.collection = Some(above.clone()),
                        (None, Some(_)) => {} // the run's --collection
                        (None, None) => {
                            events.push(Event::Reject(DocError {
                                location,
                                id: Some(item.id.clone()),
                                reason: DocErrorKind::NoCollectionAbove,
                            }));
                            return;
                        }
                    }
                }
                let collection = item.collection.clone().or_else(|| self.collection.clone());
                if let Some(collection) = collection {
                    let parent = match task.parent {
                        Parent::Catalog(node) => Some(node),
                        _ => None,
                    };
                    self.tree.items.push(ItemPlace {
                        collection,
                        id: item.id.clone(),
                        parent,
                        href: tree_path(&task, &item.id),
                    });
                }
                events.push(Event::Doc(Parsed { walked: false, doc: Ok(Doc::Item(item)) }));
                return;
            }
            Content::Doc(Doc::Catalog(catalog)) => {
                // Not reached: catalogs are recognised before normalising.
                events
                    .push(Event::Note(format!("{location}: catalog '{}' passed over", catalog.id)));
                return;
            }
            Content::Rejected(error) => {
                events.push(Event::Reject(error));
                return;
            }
            Content::NotStac(reason) => {
                let from = task.linked_from.as_deref().unwrap_or("(an input)").to_string();
                events.push(Event::Note(format!(
                    "{location}: not a STAC document, not imported ({reason}); linked from {from}"
                )));
                self.report.not_stac_count += 1;
                if self.report.not_stac.len() < MAX_KEPT_ERRORS {
                    self.report.not_stac.push(NotStac {
                        file: task.label.to_string(),
                        linked_from: from,
                        reason,
                    });
                }
                return;
            }
        };
        for (position, link) in loaded.links.into_iter().enumerate() {
            match link.target {
                Err(reason) => {
                    self.report.broken_link_count += 1;
                    if self.report.broken_links.len() < MAX_KEPT_ERRORS {
                        self.report.broken_links.push(BrokenLink {
                            file: task.label.to_string(),
                            rel: link.rel.to_string(),
                            href: link.href.clone(),
                            reason: reason.clone(),
                        });
                    }
                    events.push(Event::Reject(DocError {
                        location: location.clone(),
                        id: Some(id.clone()),
                        reason: DocErrorKind::BrokenLink { rel: link.rel, href: link.href, reason },
                    }));
                }
                Ok((key, path)) => {
                    if !self.visited.insert(key) {
                        self.report.links_revisited += 1;
                        continue;
                    }
                    self.queue.push_back(Task {
                        label: Arc::from(path.display().to_string()),
                        path,
                        root_dir: task.root_dir.clone(),
                        is_root: false,
                        parent: children.clone(),
                        parent_dir: children_dir.clone(),
                        position: position as i64,
                        above: above.clone(),
                        linked_from: Some(task.label.clone()),
                    });
                }
            }
        }
    }

    /// Two sub-catalogs never share a path (they are told apart by it); only a synthesised
    /// path, for a catalog outside the root's directory, can collide, and gets a suffix.
    fn unique_subcatalog_href(&mut self, href: String) -> String {
        if self.subcatalog_hrefs.insert(href.clone()) {
            return href;
        }
        let (dir, file) = href.rsplit_once('/').unwrap_or(("", &href));
        for n in 2.. {
            let candidate =
                if dir.is_empty() { format!("{n}/{file}") } else { format!("{dir}-{n}/{file}") };
            if self.subcatalog_hrefs.insert(candidate.clone()) {
                return candidate;
            }
        }
        unreachable!("some suffix is free")
    }
}

/// A node's path in the tree: its file relative to the root's directory, '/'-separated. A file
/// outside the root's directory (reached by an absolute link) is placed as STAC's best
/// practices lay a tree out: `<parent's directory>/<id>/<file name>`.
fn tree_path(task: &Task, id: &str) -> String {
    if let Ok(relative) = task.path.strip_prefix(&*task.root_dir) {
        let parts: Vec<String> = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        if !parts.is_empty() {
            return parts.join("/");
        }
    }
    let file =
        task.path.file_name().map_or("document.json".into(), |f| f.to_string_lossy().into_owned());
    let segment: String = match id {
        "" | "." | ".." => "_".to_string(),
        id => id.replace(['/', '\\'], "_"),
    };
    if task.parent_dir.is_empty() {
        format!("{segment}/{file}")
    } else {
        format!("{}/{segment}/{file}", task.parent_dir)
    }
}

/// The directory part of a tree path ("" at the top).
fn parent_dir(href: &str) -> String {
    href.rsplit_once('/').map_or(String::new(), |(dir, _)| dir.to_string())
}

/// Reads and parses one file (on a rayon worker).
fn load(task: &Task) -> Loaded {
    let location = Location::file(task.label.clone());
    let rejected = |reason| Loaded {
        content: Content::Rejected(DocError { location: location.clone(), id: None, reason }),
        links: Vec::new(),
        bytes: 0,
    };
    let bytes = match read_file(&task.path) {
        Ok(bytes) => bytes,
        Err(e) => return rejected(DocErrorKind::Unreadable(format!("cannot read: {e}"))),
    };
    let size = bytes.len() as u64;
    let value: Value = match serde_json::from_slice(strip_bom(&bytes)) {
        Ok(value) => value,
        Err(e) => {
            let message = e.to_string();
            let message = message.rfind(" at line ").map_or(&message[..], |i| &message[..i]);
            let mut loaded =
                rejected(DocErrorKind::InvalidJson(format!("{message} (column {})", e.column())));
            if let Content::Rejected(error) = &mut loaded.content {
                error.location.line = Some(e.line() as u64);
            }
            loaded.bytes = size;
            return loaded;
        }
    };
    let Value::Object(mut object) = value else {
        let reason = format!("expected a JSON object, found {}", document::json_kind(&value));
        return Loaded { content: Content::NotStac(reason), links: Vec::new(), bytes: size };
    };
    let kind = object.get("type").and_then(Value::as_str);
    let is_catalog = kind == Some("Catalog")
        || (object.get("type").is_none()
            && object.get("stac_version").is_some_and(Value::is_string)
            && !object.contains_key("extent")
            && object.contains_key("links"));
    // An item's links (parent, collection, root) are never followed.
    let links = if kind == Some("Feature") { Vec::new() } else { links_of(&object, &task.path) };
    let content = if is_catalog {
        catalog(&mut object, &location)
    } else {
        match document::normalize(Value::Object(object), location.clone()) {
            Ok(Doc::Catalog(c)) => Content::NotStac(format!("an unexpected catalog '{}'", c.id)),
            Ok(doc) => Content::Doc(doc),
            Err(e) => match e.reason {
                DocErrorKind::NotStac(reason) => Content::NotStac(reason),
                _ => Content::Rejected(e),
            },
        }
    };
    Loaded { content, links, bytes: size }
}

/// Checks a Catalog document and keeps what the tree stores: the document without its links.
fn catalog(object: &mut Map<String, Value>, location: &Location) -> Content {
    let id = match object.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => {
            return Content::Rejected(DocError {
                location: location.clone(),
                id: None,
                reason: DocErrorKind::MissingField("id"),
            });
        }
    };
    if !object.get("stac_version").is_some_and(Value::is_string) {
        return Content::Rejected(DocError {
            location: location.clone(),
            id: Some(id),
            reason: DocErrorKind::NotStac("a Catalog without `stac_version`".into()),
        });
    }
    let string = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_string);
    let (title, description) = (string("title"), string("description"));
    object.remove("links");
    Content::Catalog { id, title, description, content: document::compact(object) }
}

/// The document's `child` and `item` links, resolved against the file's directory.
fn links_of(object: &Map<String, Value>, file: &Path) -> Vec<Link> {
    let Some(Value::Array(links)) = object.get("links") else { return Vec::new() };
    let base = file.parent().unwrap_or(Path::new("/"));
    links
        .iter()
        .filter_map(|link| {
            let rel = match link.get("rel").and_then(Value::as_str)? {
                "child" => "child",
                "item" => "item",
                _ => return None,
            };
            Some(match link.get("href") {
                Some(Value::String(href)) => {
                    Link { rel, href: href.clone(), target: resolve(base, href) }
                }
                _ => Link {
                    rel,
                    href: String::new(),
                    target: Err("the link has no `href` string".into()),
                },
            })
        })
        .collect()
}

/// Resolves an href against a directory: a relative path, an absolute path, or a `file://`
/// URL. Returns the file's key and the file as reached, or why it cannot be followed.
fn resolve(base: &Path, href: &str) -> std::result::Result<(FileKey, PathBuf), String> {
    let lower = href.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Err("an http(s) URL: stacdb follows links to local files only".into());
    }
    let candidates: Vec<PathBuf> = if lower.starts_with("file://") {
        let rest = &href["file://".len()..];
        let rest = if rest.len() >= 9 && rest[..9].eq_ignore_ascii_case("localhost") {
            &rest[9..]
        } else {
            rest
        };
        if !rest.starts_with('/') {
            return Err("a file:// URL naming another host".into());
        }
        vec![PathBuf::from(percent_decode(rest))]
    } else if let Some(scheme) = url_scheme(href) {
        return Err(format!("a {scheme}: URL: stacdb follows links to local files only"));
    } else if href.is_empty() {
        return Err("an empty href".into());
    } else {
        let mut hrefs = vec![href.to_string()];
        // Hrefs written on Windows, with backslashes.
        if href.contains('\\') && !href.contains('/') {
            hrefs.push(href.replace('\\', "/"));
        }
        if href.contains('%') {
            hrefs.push(percent_decode(href));
        }
        hrefs.into_iter().map(|h| base.join(h)).collect()
    };
    let mut first = None;
    for candidate in candidates {
        let reached = lexical(&candidate);
        match file_key(&reached) {
            Ok(key) => return Ok((key, reached)),
            Err(e) if e.kind() == std::io::ErrorKind::Other => {
                return Err(format!("{} is not a file", reached.display()));
            }
            Err(e) => {
                first.get_or_insert_with(|| match e.kind() {
                    std::io::ErrorKind::NotFound => format!("no such file: {}", reached.display()),
                    _ => format!("cannot open {}: {e}", reached.display()),
                });
            }
        }
    }
    Err(first.unwrap_or_else(|| "cannot resolve".into()))
}

/// The scheme of an absolute URL (`s3`, `gs`, …); a drive letter (`C:`) is not one.
fn url_scheme(href: &str) -> Option<&str> {
    let (scheme, _) = href.split_once(':')?;
    let mut chars = scheme.chars();
    let valid = scheme.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    valid.then_some(scheme)
}

/// Decodes `%XX` escapes; anything malformed is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(hi * 16 + lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_string())
}

/// Removes `.` and resolves `..` components without touching the file system.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                None | Some(Component::ParentDir) => out.push(".."),
                Some(Component::RootDir | Component::Prefix(_)) => {}
                Some(_) => {
                    out.pop();
                }
            },
            other => out.push(other),
        }
    }
    out
}

/// Stores the crawled tree: sub-catalogs (found again by their path on a re-import, so their
/// rows are replaced, not duplicated), where each stored collection hung, and which stored
/// items hung from a sub-catalog. Crawled items that hung straight from their collection lose
/// any row an earlier import gave them, and sub-catalogs of earlier imports left with nothing
/// below them are removed.
pub(crate) fn write_tree(conn: &Connection, tree: &Tree) -> Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS crawl_written (node INTEGER PRIMARY KEY);
         DELETE FROM temp.crawl_written;",
    )?;
    let stored_collection = |id: &str| -> rusqlite::Result<bool> {
        conn.prepare_cached("SELECT 1 FROM collections WHERE id = ?1 AND content IS NOT NULL")?
            .exists([id])
    };
    // (parent node, parent collection) as stored.
    let mut nodes: Vec<i64> = Vec::with_capacity(tree.subcatalogs.len());
    let place = |parent: &Parent,
                 nodes: &[i64],
                 own: Option<&str>|
     -> rusqlite::Result<(Option<i64>, Option<String>)> {
        Ok(match parent {
            Parent::Root => (None, None),
            Parent::Catalog(i) => (Some(nodes[*i]), None),
            Parent::Collection(id) if Some(id.as_str()) != own && stored_collection(id)? => {
                (None, Some(id.clone()))
            }
            Parent::Collection(_) => (None, None),
        })
    };
    for sub in &tree.subcatalogs {
        let (parent, parent_collection) = place(&sub.parent, &nodes, None)?;
        let node: i64 = conn
            .prepare_cached(
                "INSERT INTO subcatalogs (parent, parent_collection, position, href, content)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (href) DO UPDATE SET parent = excluded.parent,
                     parent_collection = excluded.parent_collection,
                     position = excluded.position, content = excluded.content
                 RETURNING node",
            )?
            .query_row(
                params![parent, parent_collection, sub.position, sub.href, sub.content],
                |r| r.get(0),
            )?;
        conn.prepare_cached("INSERT OR IGNORE INTO temp.crawl_written (node) VALUES (?1)")?
            .execute([node])?;
        nodes.push(node);
    }
    for c in &tree.collections {
        let (parent, parent_collection) = place(&c.parent, &nodes, Some(&c.id))?;
        conn.prepare_cached(
            "INSERT INTO collection_parents (collection, parent, parent_collection, position, href)
             SELECT ?1, ?2, ?3, ?4, ?5
             WHERE EXISTS (SELECT 1 FROM collections WHERE id = ?1 AND content IS NOT NULL)
             ON CONFLICT (collection) DO UPDATE SET parent = excluded.parent,
                 parent_collection = excluded.parent_collection, position = excluded.position,
                 href = excluded.href",
        )?
        .execute(params![c.id, parent, parent_collection, c.position, c.href])?;
    }
    for item in &tree.items {
        match item.parent {
            Some(i) => {
                conn.prepare_cached(
                    "INSERT INTO item_parents (collection, id, parent, href)
                     SELECT ?1, ?2, ?3, ?4
                     WHERE EXISTS (SELECT 1 FROM items WHERE collection = ?1 AND id = ?2)
                     ON CONFLICT (collection, id) DO UPDATE SET parent = excluded.parent,
                         href = excluded.href",
                )?
                .execute(params![
                    item.collection,
                    item.id,
                    nodes[i],
                    item.href
                ])?;
            }
            None => {
                conn.prepare_cached("DELETE FROM item_parents WHERE collection = ?1 AND id = ?2")?
                    .execute([&item.collection, &item.id])?;
            }
        }
    }
    // Sub-catalogs an earlier import made that now have nothing below them.
    loop {
        let removed = conn.execute(
            "DELETE FROM subcatalogs
             WHERE node NOT IN (SELECT node FROM temp.crawl_written)
               AND node NOT IN (SELECT parent FROM subcatalogs WHERE parent IS NOT NULL)
               AND node NOT IN (SELECT parent FROM collection_parents WHERE parent IS NOT NULL)
               AND node NOT IN (SELECT parent FROM item_parents)",
            [],
        )?;
        if removed == 0 {
            break;
        }
    }
    conn.execute_batch("DROP TABLE temp.crawl_written")?;
    Ok(())
}

/// Sets the catalog row from the root catalog (for a file this run created).
pub(crate) fn set_root_metadata(conn: &Connection, root: &RootMeta) -> Result<()> {
    conn.execute(
        "UPDATE catalog SET id = ?1, title = ?2, description = ?3",
        params![root.id, root.title, root.description],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert_eq!(url_scheme("s3://bucket/key"), Some("s3"));
        assert_eq!(url_scheme("C:\\data\\catalog.json"), None);
        assert_eq!(url_scheme("./a:b.json"), None);
        assert_eq!(url_scheme("items/a.json"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b/c.json"), "/a b/c.json");
        assert_eq!(percent_decode("/100%"), "/100%");
        assert_eq!(percent_decode("/a%zz"), "/a%zz");
    }

    #[test]
    fn lexical_paths() {
        assert_eq!(lexical(Path::new("/a/b/./../c.json")), PathBuf::from("/a/c.json"));
        assert_eq!(lexical(Path::new("a/../../c.json")), PathBuf::from("../c.json"));
        assert_eq!(lexical(Path::new("../../c.json")), PathBuf::from("../../c.json"));
        assert_eq!(lexical(Path::new("/../c.json")), PathBuf::from("/c.json"));
    }

    #[test]
    fn http_links_are_broken() {
        let e = resolve(Path::new("/tmp"), "https://example.com/c.json").unwrap_err();
        assert!(e.contains("http(s) URL"), "{e}");
        let e = resolve(Path::new("/tmp"), "s3://bucket/c.json").unwrap_err();
        assert!(e.contains("s3: URL"), "{e}");
        let e = resolve(Path::new("/nonexistent-dir"), "./c.json").unwrap_err();
        assert!(e.contains("no such file: /nonexistent-dir/c.json"), "{e}");
    }
}
