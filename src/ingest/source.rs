//! Reading ingest inputs into units of JSON text.
//!
//! An input is a file, a directory (read recursively for `.json`, `.geojson`, `.ndjson` and
//! `.jsonl` files, each possibly gzipped) or standard input. Gzip is recognised by its magic
//! bytes, and the format by content: when the first non-blank line is a whole JSON value the
//! input is NDJSON and every line is a unit; otherwise the whole input is one JSON document.
//! NDJSON is streamed, so memory stays bounded whatever the input's size.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Location, Result};

/// One ingest input as the user named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file or a directory.
    Path(PathBuf),
    /// Standard input.
    Stdin,
}

impl Input {
    /// `-` is standard input; anything else is a path.
    pub fn from_arg(arg: &str) -> Input {
        if arg == "-" { Input::Stdin } else { Input::Path(PathBuf::from(arg)) }
    }
}

/// A file to read, after directories have been expanded.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file, or `None` for standard input.
    pub path: Option<PathBuf>,
    /// The label used in messages: the path as given, or `<stdin>`.
    pub label: Arc<str>,
    /// Found by walking a directory (rather than named by the user).
    pub walked: bool,
    /// Size on disk, when known.
    pub size: Option<u64>,
}

/// Expands inputs into the files to read, in a stable order. Missing paths are an error.
pub fn expand(inputs: &[Input]) -> Result<Vec<Source>> {
    let mut sources = Vec::new();
    for input in inputs {
        match input {
            Input::Stdin => sources.push(Source {
                path: None,
                label: Arc::from("<stdin>"),
                walked: false,
                size: None,
            }),
            Input::Path(path) => {
                let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
                if meta.is_dir() {
                    let mut files = Vec::new();
                    walk(path, &mut files)?;
                    files.sort();
                    for (file, size) in files {
                        sources.push(Source {
                            label: Arc::from(file.display().to_string()),
                            path: Some(file),
                            walked: true,
                            size: Some(size),
                        });
                    }
                } else {
                    sources.push(Source {
                        path: Some(path.clone()),
                        label: Arc::from(path.display().to_string()),
                        walked: false,
                        size: Some(meta.len()),
                    });
                }
            }
        }
    }
    Ok(sources)
}

/// The file names a directory walk picks up.
pub fn is_ingestible_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    [".json", ".geojson", ".ndjson", ".jsonl"].iter().any(|ext| name.ends_with(ext))
}

fn walk(dir: &Path, files: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let path = entry.path();
        let meta = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?;
        if meta.is_dir() {
            walk(&path, files)?;
        } else if is_ingestible_name(&entry.file_name().to_string_lossy()) {
            files.push((path, meta.len()));
        }
    }
    Ok(())
}

fn io_error(path: &Path, source: io::Error) -> Error {
    Error::Io { path: path.to_path_buf(), source }
}

/// A piece of JSON text and where it came from.
#[derive(Debug)]
pub struct Unit {
    /// Where the text is.
    pub location: Location,
    /// For a whole-document unit: how many lines precede its text (blank lines skipped),
    /// added to the line of a JSON syntax error.
    pub line_offset: u64,
    /// The source was found by walking a directory.
    pub walked: bool,
    /// The text, or why it could not be read.
    pub text: std::result::Result<Vec<u8>, String>,
}

/// Counts bytes read from the underlying files, for progress.
#[derive(Debug, Default)]
pub struct ByteCounter(AtomicU64);

impl ByteCounter {
    /// Bytes read so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

struct Counting<'a, R> {
    inner: R,
    counter: &'a ByteCounter,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Reads every source and hands units to `emit` in order. `emit` returns false to stop early.
/// Units are handed over in batches of at most `batch_units` units or about `batch_bytes`.
pub fn read_all(
    sources: &[Source],
    batch_units: usize,
    batch_bytes: usize,
    counter: &ByteCounter,
    emit: &mut dyn FnMut(Vec<Unit>) -> bool,
) {
    let mut batch = Vec::with_capacity(batch_units);
    let mut bytes = 0usize;
    for source in sources {
        let mut push = |unit: Unit| -> bool {
            bytes += unit.text.as_ref().map_or(0, Vec::len);
            batch.push(unit);
            if batch.len() >= batch_units || bytes >= batch_bytes {
                bytes = 0;
                return emit(std::mem::replace(&mut batch, Vec::with_capacity(batch_units)));
            }
            true
        };
        if !read_source(source, counter, &mut push) {
            return;
        }
    }
    if !batch.is_empty() {
        emit(batch);
    }
}

/// Reads one source. Returns false when `push` asked to stop.
fn read_source(source: &Source, counter: &ByteCounter, push: &mut dyn FnMut(Unit) -> bool) -> bool {
    let location = |line| Location { source: source.label.clone(), line, pointer: None };
    let unreadable = |line, e: io::Error| Unit {
        location: location(line),
        line_offset: 0,
        walked: source.walked,
        text: Err(format!("cannot read: {e}")),
    };
    let raw: Box<dyn Read + Send> = match &source.path {
        Some(path) => match File::open(path) {
            Ok(f) => Box::new(f),
            Err(e) => return push(unreadable(None, e)),
        },
        None => Box::new(io::stdin()),
    };
    let mut reader = BufReader::with_capacity(1 << 16, Counting { inner: raw, counter });
    let gzipped = match reader.fill_buf() {
        Ok(head) => head.starts_with(&[0x1f, 0x8b]),
        Err(e) => return push(unreadable(None, e)),
    };
    let mut reader: Box<dyn BufRead + Send + '_> = if gzipped {
        Box::new(BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(reader)))
    } else {
        Box::new(reader)
    };

    // Find the first non-blank line and decide the format from it.
    let mut line_no = 0u64;
    let mut first = Vec::new();
    loop {
        first.clear();
        match reader.read_until(b'\n', &mut first) {
            Ok(0) => return true, // empty input: nothing to ingest
            Ok(_) => line_no += 1,
            Err(e) => return push(unreadable(Some(line_no + 1), e)),
        }
        if !first.trim_ascii().is_empty() {
            break;
        }
    }
    let first_line = line_no;
    // A UTF-8 byte-order mark is not JSON, but editors on Windows write one; drop it.
    if first.starts_with(b"\xEF\xBB\xBF") {
        first.drain(..3);
    }
    let is_ndjson = serde_json::from_slice::<serde::de::IgnoredAny>(&first).is_ok();
    if !is_ndjson {
        // One JSON document: the rest of the input belongs to it. Serde reports error lines
        // relative to the text, so count the blank lines skipped before it.
        let mut text = first;
        if let Err(e) = reader.read_to_end(&mut text) {
            return push(unreadable(None, e));
        }
        return push(Unit {
            location: location(None),
            line_offset: first_line - 1,
            walked: source.walked,
            text: Ok(text),
        });
    }
    if !push(Unit {
        location: location(Some(first_line)),
        line_offset: 0,
        walked: source.walked,
        text: Ok(first),
    }) {
        return false;
    }
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return true,
            Ok(_) => line_no += 1,
            Err(e) => return push(unreadable(Some(line_no + 1), e)),
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        if !push(Unit {
            location: location(Some(line_no)),
            line_offset: 0,
            walked: source.walked,
            text: Ok(line),
        }) {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingestible_names() {
        assert!(is_ingestible_name("a.json"));
        assert!(is_ingestible_name("a.NDJSON.gz"));
        assert!(is_ingestible_name("index.geojson"));
        assert!(!is_ingestible_name("a.parquet"));
        assert!(!is_ingestible_name("README.md"));
    }
}
