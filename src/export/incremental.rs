//! What an export remembers in its output directory, and how `--incremental` uses it.
//!
//! Two hidden files sit at the top of every export:
//!
//! * `.stacdb-export.json`, the manifest: the catalog id, the change-log position the export
//!   reflects, the options it was made with (format, layout, catalog type, base URL,
//!   max-links), the number of items, every catalog/collection/part document (or NDJSON file)
//!   it wrote, and whether it is complete;
//! * `.stacdb-export.index`, one line per item in tree order: a JSON array of the item's sort
//!   key in the tree (group key, then id), its file and a hash of the links the export gave it.
//!
//! Both are deterministic, so a fresh export and an incremental one of the same state are
//! byte-identical, these files included.
//!
//! An incremental run builds the tree of the current state exactly as a full export does, and
//! walks its items in the same order alongside the old index (a merge on the sort key). An
//! item is rewritten when the change log names it after the recorded position, when it is new,
//! or when its file or its links differ from the recorded ones (its part moved, a case twin
//! arrived, …); every other item file is left alone. Index entries the walk passes over are
//! deleted or moved items: their files are removed (unless this run wrote a file at that path,
//! ignoring case), then their directories if empty. Catalog and collection documents are all
//! regenerated, and written only when their bytes differ from the file; documents no longer in
//! the tree are removed. The manifest is first rewritten as incomplete and only marked
//! complete at the end, so an interrupted run is redone in full by the next one.
//!
//! A full export is done instead (with a note) when the manifest is incomplete, names another
//! catalog, is ahead of the catalog's change log, or the log has lost entries after its
//! position. Different options are an error: the caller must ask for a full export.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Context, INDEX, MANIFEST, RecordedOptions, io};
use crate::error::{Error, Result};

/// More changed items than this and an incremental run treats every item as changed.
const MAX_CHANGED: i64 = 2_000_000;

/// The manifest of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format's version (1).
    pub stacdb_export: u32,
    /// The root catalog's id.
    pub catalog_id: String,
    /// The change-log position the export reflects.
    pub change_seq: i64,
    /// False while an incremental run is under way.
    pub complete: bool,
    /// The options it was made with.
    pub options: RecordedOptions,
    /// Items in the export.
    pub items: u64,
    /// Every document (static catalog) or file (NDJSON) besides the items, sorted.
    pub documents: Vec<String>,
}

impl Manifest {
    /// Reads a manifest.
    pub fn read(path: &Path) -> Result<Manifest> {
        let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            Error::InvalidArgument(format!(
                "{}: not a stacdb export manifest ({e}); remove the directory or choose another",
                path.display()
            ))
        })
    }

    /// Writes it into `dir` (temporary file, then rename).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut text = serde_json::to_vec_pretty(self).expect("serialises");
        text.push(b'\n');
        replace_file(&dir.join(MANIFEST), &text)
    }
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    std::fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path, e)
    })
}

/// The temporary file for `path`: hidden, beside it.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".stacdb-tmp");
    path.with_file_name(name)
}

/// Whether an incremental run can update the export of `manifest`: `Ok(Err(why))` when a full
/// export must be done instead, an error when the options differ.
pub(crate) fn can_update(
    ctx: &Context,
    manifest: &Manifest,
) -> Result<std::result::Result<(), String>> {
    if manifest.options != ctx.recorded {
        let show = |o: &RecordedOptions| {
            format!(
                "--format {} --layout '{}' --catalog-type {}{} --max-links {}",
                o.format,
                o.layout,
                o.catalog_type,
                o.base_url.as_ref().map(|b| format!(" --base-url {b}")).unwrap_or_default(),
                o.max_links
            )
        };
        return Err(Error::InvalidArgument(format!(
            "--incremental: the export was made with {}, and this run asks for {}; run a full \
             export with --overwrite to change options",
            show(&manifest.options),
            show(&ctx.recorded)
        )));
    }
    if !manifest.complete {
        return Ok(Err("the previous export of this directory did not finish".into()));
    }
    if manifest.catalog_id != ctx.meta.id {
        return Ok(Err(format!(
            "the export is of catalog '{}', not '{}'",
            manifest.catalog_id, ctx.meta.id
        )));
    }
    if manifest.change_seq > ctx.change_seq {
        return Ok(Err(format!(
            "the export is at change {} but the catalog's change log ends at {}",
            manifest.change_seq, ctx.change_seq
        )));
    }
    let logged: i64 = ctx.db().connection().query_row(
        "SELECT count(*) FROM changes WHERE seq > ?1",
        [manifest.change_seq],
        |r| r.get(0),
    )?;
    if logged < ctx.change_seq - manifest.change_seq {
        return Ok(Err(format!(
            "the change log has lost entries after position {} (truncated)",
            manifest.change_seq
        )));
    }
    Ok(Ok(()))
}

/// An incremental run under way.
pub(crate) struct State {
    /// The manifest of the export being updated.
    pub old: Manifest,
    /// Items (collection, id) changed since the recorded position; `None`: all of them.
    pub changed: Option<HashSet<(String, String)>>,
    index: Option<std::iter::Peekable<IndexLines>>,
    /// Files of items that are gone or moved.
    pub stale: Vec<String>,
}

type IndexLines = std::io::Lines<BufReader<File>>;

/// One parsed line of the old index.
pub(crate) struct OldEntry {
    /// Group key and sort key.
    pub key: Vec<String>,
    pub path: String,
    pub hash: String,
}

impl State {
    /// Starts an incremental run: marks the manifest incomplete and reads the change log.
    pub fn begin(ctx: &Context, dir: &Path, manifest: &Manifest) -> Result<State> {
        let mut marked = manifest.clone();
        marked.complete = false;
        marked.write(dir)?;
        let db = ctx.db();
        let conn = db.connection();
        let count: i64 = conn.query_row(
            "SELECT count(*) FROM changes WHERE seq > ?1 AND kind = 'item'",
            [manifest.change_seq],
            |r| r.get(0),
        )?;
        let changed = if count > MAX_CHANGED {
            None
        } else {
            let mut stmt = conn.prepare(
                "SELECT DISTINCT collection, item_id FROM changes
                 WHERE seq > ?1 AND kind = 'item' AND item_id IS NOT NULL",
            )?;
            let rows = stmt.query_map([manifest.change_seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Some(rows.collect::<rusqlite::Result<HashSet<(String, String)>>>()?)
        };
        let index_path = dir.join(INDEX);
        let index = match File::open(&index_path) {
            Ok(f) => Some(BufReader::new(f).lines().peekable()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(&index_path, e)),
        };
        Ok(State { old: manifest.clone(), changed, index, stale: Vec::new() })
    }

    fn next_entry(&mut self, key_len: usize) -> Result<Option<OldEntry>> {
        let Some(lines) = self.index.as_mut() else { return Ok(None) };
        let Some(line) = lines.next() else { return Ok(None) };
        let line = line.map_err(|e| io(Path::new(INDEX), e))?;
        parse_line(&line, key_len).map(Some)
    }

    fn peek_key(&mut self, key_len: usize) -> Result<Option<Vec<String>>> {
        let Some(lines) = self.index.as_mut() else { return Ok(None) };
        match lines.peek() {
            None => Ok(None),
            Some(Err(_)) => {
                let e = lines.next().expect("peeked").expect_err("peeked an error");
                Err(io(Path::new(INDEX), e))
            }
            Some(Ok(line)) => Ok(Some(parse_line(line, key_len)?.key)),
        }
    }

    /// Whether the item at this place of the walk must be written; passes over (and marks
    /// stale) every old entry before it.
    #[allow(clippy::too_many_arguments)]
    pub fn must_write(
        &mut self,
        key: &[&str],
        path: &str,
        hash: &str,
        collection: &str,
        id: &str,
    ) -> Result<bool> {
        let changed = match &self.changed {
            None => true,
            Some(set) => set.contains(&(collection.to_string(), id.to_string())),
        };
        loop {
            let Some(old_key) = self.peek_key(key.len())? else { return Ok(true) };
            match compare(&old_key, key) {
                std::cmp::Ordering::Less => {
                    let old = self.next_entry(key.len())?.expect("peeked");
                    self.stale.push(old.path);
                }
                std::cmp::Ordering::Equal => {
                    let old = self.next_entry(key.len())?.expect("peeked");
                    let moved = old.path != path;
                    if moved {
                        self.stale.push(old.path);
                    }
                    return Ok(changed || moved || old.hash != hash);
                }
                std::cmp::Ordering::Greater => return Ok(true),
            }
        }
    }

    /// Marks every old entry not yet passed as stale.
    pub fn finish_walk(&mut self, key_len: usize) -> Result<()> {
        while let Some(old) = self.next_entry(key_len)? {
            self.stale.push(old.path);
        }
        Ok(())
    }
}

fn compare(old: &[String], new: &[&str]) -> std::cmp::Ordering {
    old.iter().map(|s| s.as_bytes()).cmp(new.iter().map(|s| s.as_bytes()))
}

fn parse_line(line: &str, key_len: usize) -> Result<OldEntry> {
    let bad = || {
        Error::InvalidArgument(format!(
            "{INDEX}: a line is not an index entry; run a full export with --overwrite"
        ))
    };
    let mut parts: Vec<String> = serde_json::from_str(line).map_err(|_| bad())?;
    if parts.len() != key_len + 2 {
        return Err(bad());
    }
    let hash = parts.pop().expect("length checked");
    let path = parts.pop().expect("length checked");
    Ok(OldEntry { key: parts, path, hash })
}

/// Removes the files of `stale` (paths relative to `root`) unless `keep` holds them ignoring
/// case, then their directories while empty. Returns how many files were removed.
pub(crate) fn remove_stale(root: &Path, stale: &[String], keep: &HashSet<String>) -> Result<u64> {
    let mut removed = 0;
    for rel in stale {
        if keep.contains(&rel.to_ascii_lowercase()) {
            continue;
        }
        let path = root.join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
        let mut dir = path.parent();
        while let Some(d) = dir {
            if d == root || !d.starts_with(root) || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
    Ok(removed)
}
