//! `--format ndjson`: the way out to other STAC stores.
//!
//! The output directory holds `collections.ndjson` (every collection, one per line, with its
//! current extent) and `items/NAME.ndjson` for each collection with items, NAME its id escaped
//! as every file name is (see [`super::paths`]): each line one item exactly as stored, with a
//! `collection` field added when it had none, in id order. These are the plain documents that
//! `pypgstac load collections` / `pypgstac load items` and the stac-fastapi
//! (elasticsearch/opensearch) bulk loaders read. Items keep their stored links.
//!
//! Incremental runs rewrite the items file of every collection the change log names since
//! the recorded position (and any whose file name changed), and `collections.ndjson` when its
//! bytes differ; files of collections that are gone are removed.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use super::incremental::{Manifest, State, replace_file, temp_path};
use super::links::with_collection;
use super::paths::{escape, resolve_case};
use super::{Context, ExportReport, io};
use crate::error::{Error, Result};

/// The collections file.
pub const COLLECTIONS: &str = "collections.ndjson";

pub(crate) fn run(ctx: &Context, root: &Path, state: Option<State>) -> Result<ExportReport> {
    let db = ctx.db();
    let conn = db.connection();
    let mut collections: Vec<(String, i64)> = Vec::new();
    {
        let mut stmt = conn.prepare(
            "SELECT id, item_count FROM collections WHERE content IS NOT NULL ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            collections.push(row?);
        }
    }
    let total: u64 = collections.iter().map(|(_, n)| *n as u64).sum();
    ctx.observer.started(total);
    let mut report = ExportReport {
        kind: if state.is_some() { "incremental" } else { "full" },
        items: total,
        ..Default::default()
    };
    // collections.ndjson
    let mut lines = Vec::new();
    for (id, _) in &collections {
        serde_json::to_writer(&mut lines, &db.collection(id)?)
            .map_err(|e| Error::InvalidArgument(format!("collection '{id}': {e}")))?;
        lines.push(b'\n');
    }
    let path = root.join(COLLECTIONS);
    if state.is_none() || std::fs::read(&path).map_or(true, |old| old != lines) {
        replace_file(&path, &lines)?;
        report.files_written += 1;
    }
    // items/NAME.ndjson
    let with_items: Vec<&str> =
        collections.iter().filter(|(_, n)| *n > 0).map(|(id, _)| id.as_str()).collect();
    let mut names: Vec<String> = with_items.iter().map(|id| escape(id)).collect();
    resolve_case(&mut names, &with_items, &[]);
    let files: Vec<String> = names.iter().map(|n| format!("items/{n}.ndjson")).collect();
    let items_dir = root.join("items");
    std::fs::create_dir_all(&items_dir).map_err(|e| io(&items_dir, e))?;
    let changed: Option<HashSet<&str>> = match &state {
        None => None,
        Some(s) => s.changed.as_ref().map(|set| set.iter().map(|(c, _)| c.as_str()).collect()),
    };
    let old_files: HashSet<&str> = match &state {
        Some(s) => s.old.documents.iter().map(String::as_str).collect(),
        None => HashSet::new(),
    };
    let mut stmt = conn.prepare("SELECT content FROM items WHERE collection = ?1 ORDER BY id")?;
    for (id, file) in with_items.iter().zip(&files) {
        let rewrite = state.is_none()
            || !old_files.contains(file.as_str())
            || changed.as_ref().is_none_or(|set| set.contains(id));
        let count = collections.iter().find(|(c, _)| c == id).map_or(0, |(_, n)| *n as u64);
        if !rewrite {
            ctx.observer.advanced(count);
            continue;
        }
        let path = root.join(file);
        let tmp = temp_path(&path);
        let mut out = std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?,
        );
        let mut rows = stmt.query([id])?;
        let mut line = Vec::new();
        while let Some(row) = rows.next()? {
            line.clear();
            let content = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            with_collection(content, id, &mut line).map_err(|e| {
                Error::InvalidArgument(format!("an item of '{id}' is not valid JSON ({e})"))
            })?;
            out.write_all(&line).map_err(|e| io(&tmp, e))?;
            report.items_written += 1;
            ctx.observer.advanced(1);
        }
        out.into_inner().map_err(|e| io(&tmp, e.into_error()))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        report.files_written += 1;
    }
    let mut documents: Vec<String> = files.clone();
    documents.push(COLLECTIONS.into());
    documents.sort();
    if state.is_some() {
        let current: HashSet<&str> = documents.iter().map(String::as_str).collect();
        for old in old_files.iter().filter(|f| !current.contains(*f)) {
            let path = root.join(old);
            match std::fs::remove_file(&path) {
                Ok(()) => report.files_deleted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path, e)),
            }
        }
    }
    report.catalogs = collections.len() as u64;
    Manifest {
        stacdb_export: 1,
        catalog_id: ctx.meta.id.clone(),
        change_seq: ctx.change_seq,
        complete: true,
        options: ctx.recorded.clone(),
        items: total,
        documents,
    }
    .write(root)?;
    report.files_written += 1;
    Ok(report)
}
