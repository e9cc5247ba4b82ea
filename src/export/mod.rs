//! `stacdb export`: a static STAC catalog (or NDJSON files) from a catalog file.
//!
//! ```no_run
//! use stacdb::export::{export, ExportOptions, Quiet};
//! let catalog = stacdb::Catalog::open_read_only("archive.stacdb").unwrap();
//! let report = export(&catalog, "site".as_ref(), &ExportOptions::default(), &Quiet).unwrap();
//! println!("{} items written", report.items_written);
//! ```
//!
//! How the work is divided:
//!
//! * [`layout`]: the layout template, the tree of catalogs built from one grouped query before
//!   any item is read, and its split into `part-NNNN` sub-catalogs at `max_links`;
//! * [`paths`]: file names from untrusted ids and values (escaping, case twins, long names);
//! * [`links`]: the links of every document, and item files spliced from the stored text;
//! * [`write`]: the stream of items from SQLite in tree order, written in parallel chunks;
//! * [`incremental`]: the manifest and index in the output directory, the change log, and
//!   what an incremental run rewrites and deletes;
//! * [`ndjson`]: the `--format ndjson` way out, for pypgstac and stac-fastapi loaders.
//!
//! The whole export reads one snapshot of the catalog (one read transaction, on a read-only
//! connection of its own, so that the reading can move to a thread of the export's pool). A
//! fresh export is written into a hidden directory beside the output
//! (`.NAME.stacdb-export-PID`) and renamed into place when complete, so a reader never sees
//! part of it; a failed export removes it and leaves any existing output as it was; the next
//! export removes what a killed one left. An incremental export replaces files one at a time,
//! each by writing a temporary file and renaming it over the old one.

pub mod incremental;
pub mod layout;
pub mod links;
pub mod ndjson;
pub mod paths;
pub mod write;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::{Catalog, CatalogMeta};
use incremental::Manifest;

/// The default largest number of children and items one catalog lists.
pub const DEFAULT_MAX_LINKS: usize = 10_000;

/// The catalog types pystac defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CatalogType {
    /// Relative hrefs everywhere and no self links: the tree can be moved or copied anywhere.
    #[default]
    SelfContained,
    /// Relative hrefs, and each document's absolute `self` link under the base URL.
    RelativePublished,
    /// Every href absolute, under the base URL.
    AbsolutePublished,
}

impl CatalogType {
    /// Its name, as the CLI spells it.
    pub fn name(self) -> &'static str {
        match self {
            CatalogType::SelfContained => "self-contained",
            CatalogType::RelativePublished => "relative-published",
            CatalogType::AbsolutePublished => "absolute-published",
        }
    }
}

/// Where items go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Layout {
    /// `COLLECTION/ITEM/ITEM.json`.
    #[default]
    Default,
    /// A path template such as `${collection}/${year}/${month}`: each segment after the
    /// collection is a sub-catalog level (see the README, "Export").
    Template(String),
    /// The tree recorded when the catalog was imported from a static catalog.
    AsImported,
}

impl Layout {
    /// Parses the CLI's `--layout` value.
    pub fn parse(text: &str) -> Layout {
        match text {
            "default" | "${collection}" => Layout::Default,
            "as-imported" => Layout::AsImported,
            other => Layout::Template(other.to_string()),
        }
    }

    /// Its canonical text, as recorded in the manifest.
    pub fn text(&self) -> String {
        match self {
            Layout::Default => "default".into(),
            Layout::Template(t) => t.clone(),
            Layout::AsImported => "as-imported".into(),
        }
    }
}

/// What the export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// A static STAC catalog: catalog.json, collection.json and one file per item.
    #[default]
    Stac,
    /// `collections.ndjson` and `items/COLLECTION.ndjson`, one document per line.
    Ndjson,
}

/// How to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The catalog type (hrefs and self links).
    pub catalog_type: CatalogType,
    /// The URL the output directory will be published at; required by the published types.
    pub base_url: Option<String>,
    /// Where items go.
    pub layout: Layout,
    /// The most children and items one document lists; larger groups are split into parts.
    pub max_links: usize,
    /// Threads writing item files (default: all cores).
    pub threads: Option<usize>,
    /// Update a previous export of this catalog in place: rewrite only what changed.
    pub incremental: bool,
    /// Replace a previous export (written whole beside it, then swapped in).
    pub overwrite: bool,
    /// Static catalog or NDJSON.
    pub format: ExportFormat,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            catalog_type: CatalogType::SelfContained,
            base_url: None,
            layout: Layout::Default,
            max_links: DEFAULT_MAX_LINKS,
            threads: None,
            incremental: false,
            overwrite: false,
            format: ExportFormat::Stac,
        }
    }
}

/// Hears how an export goes (the CLI draws a progress bar).
pub trait ExportObserver: Sync {
    /// The export starts; `items` will be read.
    fn started(&self, _items: u64) {}
    /// `items` more items were handled (written or found unchanged).
    fn advanced(&self, _items: u64) {}
    /// Something worth saying, such as a fallback to a full export.
    fn note(&self, _message: &str) {}
}

/// An observer that ignores everything.
pub struct Quiet;
impl ExportObserver for Quiet {}

/// What an export did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportReport {
    /// `full` or `incremental`.
    pub kind: &'static str,
    /// Items in the export.
    pub items: u64,
    /// Item files (or NDJSON lines) written by this run.
    pub items_written: u64,
    /// Files written (items, catalogs, collections, manifest).
    pub files_written: u64,
    /// Files deleted (items and catalogs that are gone).
    pub files_deleted: u64,
    /// Catalog, collection and part documents in the export.
    pub catalogs: u64,
    /// The change-log position the export reflects.
    pub change_seq: i64,
    /// Wall time.
    pub elapsed: Duration,
    /// Notes, such as why an incremental export was done in full.
    pub notes: Vec<String>,
}

impl ExportReport {
    /// Items handled per second (all items of the export over the wall time).
    pub fn items_per_second(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The name of the manifest an export leaves in its output directory.
pub const MANIFEST: &str = ".stacdb-export.json";
/// The item index an export leaves beside its manifest (for `--incremental`).
pub const INDEX: &str = ".stacdb-export.index";

/// The options as recorded in the manifest: an incremental run must use the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RecordedOptions {
    /// `stac` or `ndjson`.
    pub format: String,
    /// The layout's canonical text.
    pub layout: String,
    /// The catalog type's name.
    pub catalog_type: String,
    /// The base URL, normalised to end in '/'.
    pub base_url: Option<String>,
    /// The max-links value.
    pub max_links: usize,
}

/// Everything a run needs that does not change during it.
pub(crate) struct Context<'a> {
    /// The export's own read-only connection, holding the snapshot. Behind a mutex so that the
    /// context can be shared with the pool: one thread at a time reads.
    pub catalog: Mutex<Catalog>,
    pub meta: CatalogMeta,
    pub options: &'a ExportOptions,
    pub recorded: RecordedOptions,
    pub hrefs: links::Hrefs,
    pub pool: rayon::ThreadPool,
    pub observer: &'a dyn ExportObserver,
    pub change_seq: i64,
}

impl Context<'_> {
    /// The export's connection (see [`Context::catalog`]).
    pub fn db(&self) -> MutexGuard<'_, Catalog> {
        // A panic while reading poisons the lock; the export fails then anyway.
        self.catalog.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Exports `catalog` into `out_dir`. See the module documentation and the README.
pub fn export(
    catalog: &Catalog,
    out_dir: &Path,
    options: &ExportOptions,
    observer: &dyn ExportObserver,
) -> Result<ExportReport> {
    let start = Instant::now();
    let base = check_options(options)?;
    let threads = options.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1)
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("stacdb-export-{i}"))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start {threads} threads: {e}")))?;
    // One snapshot for the whole export, on a connection of its own: a deferred transaction
    // whose first read starts it. It ends when the connection is dropped.
    let own = Catalog::open_with(catalog.path(), crate::Access::ReadOnly, catalog.lock_timeout)?;
    own.connection().execute_batch("BEGIN DEFERRED")?;
    let change_seq: i64 =
        own.connection()
            .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))?;
    let meta = own.metadata()?;
    let recorded = RecordedOptions {
        format: match options.format {
            ExportFormat::Stac => "stac".into(),
            ExportFormat::Ndjson => "ndjson".into(),
        },
        layout: options.layout.text(),
        catalog_type: options.catalog_type.name().into(),
        base_url: base.clone(),
        max_links: options.max_links,
    };
    let ctx = Context {
        catalog: Mutex::new(own),
        meta,
        options,
        recorded,
        hrefs: links::Hrefs { catalog_type: options.catalog_type, base },
        pool,
        observer,
        change_seq,
    };
    let recovered = recover(out_dir)?;
    for note in &recovered {
        observer.note(note);
    }
    let mut report = match existing(out_dir)? {
        Existing::None => fresh(&ctx, out_dir, false)?,
        Existing::Empty => fresh(&ctx, out_dir, true)?,
        Existing::Ours(manifest) if options.incremental => {
            match incremental::can_update(&ctx, &manifest)? {
                Ok(()) => update(&ctx, out_dir, &manifest)?,
                Err(why) => {
                    let note = format!("{why}; doing a full export instead");
                    observer.note(&note);
                    let mut report = fresh(&ctx, out_dir, true)?;
                    report.notes.insert(0, note);
                    report
                }
            }
        }
        Existing::Ours(_) if options.overwrite => fresh(&ctx, out_dir, true)?,
        Existing::Ours(_) => {
            return Err(Error::InvalidArgument(format!(
                "{}: a previous stacdb export is there; pass --incremental to update it or \
                 --overwrite to replace it",
                out_dir.display()
            )));
        }
        Existing::Foreign(what) => {
            return Err(Error::InvalidArgument(format!(
                "{}: {what} that is not a stacdb export; refusing to write there (choose a new \
                 or empty directory)",
                out_dir.display()
            )));
        }
    };
    report.notes.splice(0..0, recovered);
    report.change_seq = change_seq;
    report.elapsed = start.elapsed();
    Ok(report)
}

/// Checks the options before anything is read; returns the base URL ending in `/`.
pub fn check_options(options: &ExportOptions) -> Result<Option<String>> {
    if options.max_links < 2 {
        return Err(Error::InvalidArgument("--max-links must be at least 2".into()));
    }
    if options.threads == Some(0) {
        return Err(Error::InvalidArgument("--threads must be at least 1".into()));
    }
    if options.incremental && options.overwrite {
        return Err(Error::InvalidArgument(
            "--incremental and --overwrite cannot be used together".into(),
        ));
    }
    let base = match (&options.base_url, options.catalog_type) {
        (None, CatalogType::SelfContained) => None,
        (Some(_), CatalogType::SelfContained) => {
            return Err(Error::InvalidArgument(
                "--base-url is only for --catalog-type relative-published or absolute-published"
                    .into(),
            ));
        }
        (None, t) => {
            return Err(Error::InvalidArgument(format!(
                "--catalog-type {} needs --base-url URL (where the directory will be published)",
                t.name()
            )));
        }
        (Some(url), _) => {
            let ok = url.split_once("://").is_some_and(|(scheme, rest)| {
                !scheme.is_empty()
                    && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
                    && !rest.is_empty()
            }) && !url.contains(['?', '#', ' ']);
            if !ok {
                return Err(Error::InvalidArgument(format!(
                    "--base-url '{url}': must be an absolute URL such as https://example.org/stac/"
                )));
            }
            Some(if url.ends_with('/') { url.clone() } else { format!("{url}/") })
        }
    };
    if options.format == ExportFormat::Ndjson
        && (options.catalog_type != CatalogType::SelfContained || options.layout != Layout::Default)
    {
        return Err(Error::InvalidArgument(
            "--format ndjson writes plain documents: --layout and --catalog-type do not apply"
                .into(),
        ));
    }
    if let Layout::Template(t) = &options.layout {
        layout::Template::parse(t)?;
    }
    Ok(base)
}

enum Existing {
    None,
    Empty,
    Ours(Manifest),
    Foreign(&'static str),
}

fn existing(out_dir: &Path) -> Result<Existing> {
    let meta = match std::fs::symlink_metadata(out_dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Existing::None),
        Err(e) => return Err(io(out_dir, e)),
    };
    if !meta.is_dir() {
        return Ok(Existing::Foreign("a file (or link) is there"));
    }
    let manifest = out_dir.join(MANIFEST);
    if manifest.exists() {
        return Ok(Existing::Ours(Manifest::read(&manifest)?));
    }
    let mut entries = std::fs::read_dir(out_dir).map_err(|e| io(out_dir, e))?;
    Ok(if entries.next().is_none() {
        Existing::Empty
    } else {
        Existing::Foreign("a directory with files is there")
    })
}

pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), source }
}

/// The hidden sibling a fresh export is written into.
fn side_dir(out_dir: &Path, what: &str) -> Result<PathBuf> {
    let name = out_dir.file_name().ok_or_else(|| {
        Error::InvalidArgument(format!("{}: not a directory name", out_dir.display()))
    })?;
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut side = std::ffi::OsString::from(".");
    side.push(name);
    side.push(format!(".stacdb-{what}-{}", std::process::id()));
    Ok(parent.join(side))
}

/// Cleans up after exports to `out_dir` that were killed: removes the side directories of
/// processes that are gone and, when one was killed between the two renames of `--overwrite`
/// (no `out_dir`, its old export set aside), puts its finished export in place. Returns what
/// it did, as notes. Only where `/proc` tells which processes run (Linux); elsewhere the side
/// directories stay.
fn recover(out_dir: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    if !Path::new("/proc/self").exists() {
        return Ok(notes);
    }
    let (Some(name), Some(side)) = (out_dir.file_name(), side_dir(out_dir, "export").ok()) else {
        return Ok(notes);
    };
    let parent = side.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let prefix = format!(".{}.stacdb-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(&parent) else { return Ok(notes) };
    // (what, pid) of every side directory whose process is gone.
    let mut dead: Vec<(String, u32)> = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(rest) = file.to_str().and_then(|f| f.strip_prefix(&prefix)) else { continue };
        let Some((what, pid)) = rest.split_once('-') else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if (what == "export" || what == "old")
            && pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            dead.push((what.to_string(), pid));
        }
    }
    // The set-aside old exports first: one may need its process's finished export.
    dead.sort_by_key(|(what, _)| what != "old");
    let path = |what: &str, pid: u32| parent.join(format!("{prefix}{what}-{pid}"));
    for (what, pid) in &dead {
        let dir = path(what, *pid);
        if what == "old" && !out_dir.exists() {
            let finished = path("export", *pid);
            if finished.is_dir() {
                // Killed between `out_dir -> old` and `side -> out_dir`: the side directory
                // is a finished export (it is renamed only then).
                std::fs::rename(&finished, out_dir).map_err(|e| io(out_dir, e))?;
                notes.push(format!(
                    "an export killed while replacing {} had finished: put in place",
                    out_dir.display()
                ));
            } else {
                // The new export is gone too: the set-aside one is the only copy; restore it.
                std::fs::rename(&dir, out_dir).map_err(|e| io(out_dir, e))?;
                notes.push(format!(
                    "restored {} from {}, set aside by a killed export",
                    out_dir.display(),
                    dir.display()
                ));
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
            notes.push(format!(
                "removed {}, left by a killed export (process {pid})",
                dir.display()
            ));
        }
    }
    Ok(notes)
}

/// A full export into a side directory, renamed into place (replacing `out_dir` when
/// `replace`).
fn fresh(ctx: &Context, out_dir: &Path, replace: bool) -> Result<ExportReport> {
    if let Some(parent) = out_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
    }
    let side = side_dir(out_dir, "export")?;
    if side.exists() {
        std::fs::remove_dir_all(&side).map_err(|e| io(&side, e))?;
    }
    std::fs::create_dir(&side).map_err(|e| io(&side, e))?;
    let result = match ctx.options.format {
        ExportFormat::Stac => write::run(ctx, &side, None),
        ExportFormat::Ndjson => ndjson::run(ctx, &side, None),
    };
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&side);
            return Err(e);
        }
    };
    if let Err(e) = publish(&side, out_dir, replace) {
        let _ = std::fs::remove_dir_all(&side);
        return Err(e);
    }
    Ok(report)
}

/// Renames the finished side directory to `out_dir`. When `replace`, the old `out_dir` is
/// first renamed aside, and removed once the new one is in place (or renamed back if that
/// fails).
fn publish(side: &Path, out_dir: &Path, replace: bool) -> Result<()> {
    if !replace {
        return std::fs::rename(side, out_dir).map_err(|e| io(out_dir, e));
    }
    let old = side_dir(out_dir, "old")?;
    std::fs::rename(out_dir, &old).map_err(|e| io(out_dir, e))?;
    if let Err(e) = std::fs::rename(side, out_dir) {
        let _ = std::fs::rename(&old, out_dir);
        return Err(io(out_dir, e));
    }
    std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    Ok(())
}

/// An incremental export into an existing export.
fn update(ctx: &Context, out_dir: &Path, manifest: &Manifest) -> Result<ExportReport> {
    let state = incremental::State::begin(ctx, out_dir, manifest)?;
    match ctx.options.format {
        ExportFormat::Stac => write::run(ctx, out_dir, Some(state)),
        ExportFormat::Ndjson => ndjson::run(ctx, out_dir, Some(state)),
    }
}
