//! The command line: clap definitions and `run()`. `main.rs` only calls [`main`].
//!
//! Exit codes: 0 success; 1 failure (for a write, nothing was changed); 2 usage error;
//! 3 `ingest --skip-invalid` finished but skipped invalid documents; a broken pipe
//! (`stacdb get … | head`) ends quietly with 0.

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{Access, Catalog, DocError, IngestOptions, IngestReport, Input, Mode, Observer};

/// Exit code when `ingest --skip-invalid` skipped invalid documents.
pub const EXIT_SKIPPED: u8 = 3;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure; a write that fails changes nothing
  2  usage error
  3  ingest --skip-invalid finished, but skipped invalid documents";

/// An embedded STAC catalog database in one SQLite file.
#[derive(Debug, Parser)]
#[command(
    name = "stacdb",
    version,
    about = "An embedded STAC catalog database in one SQLite file",
    long_about = "An embedded STAC catalog database in one SQLite file.\n\n\
        A catalog file holds STAC collections and items with a spatial index (R-tree), a \
        full-text index (FTS5), learned queryables and a change log. Many processes may read \
        and write it at once; every write is a transaction.\n\n\
        Quick start:\n  stacdb ingest demo.stacdb fixtures/\n  stacdb info demo.stacdb\n  \
        stacdb get demo.stacdb COLLECTION ITEM",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a catalog file, or set its root metadata.
    Init(InitArgs),
    // `about` rather than a doc comment, which would also clear the long help the
    // arguments' struct sets.
    #[command(about = "Load items and collections from files, directories or standard input")]
    Ingest(IngestArgs),
    /// Print an item, or a collection with its current extent.
    Get(GetArgs),
    /// Delete items, or a whole collection with --all.
    Delete(DeleteArgs),
    /// Show item counts, extents, file size and schema version.
    Info(InfoArgs),
    // `about` rather than a doc comment, which would also clear the long help the
    // arguments' struct sets.
    #[command(about = "Verify the file and that its indexes and stats agree with its items")]
    Check(CheckArgs),
    // `about` rather than a doc comment, which would also clear the long help the
    // arguments' struct sets.
    #[command(
        about = "Search items: bbox, intersects, datetime, CQL2 filter, free text, sort, fields"
    )]
    Search(SearchArgs),
    /// Print the exact number of items a search matches.
    Count(CountArgs),
    // `about` rather than a doc comment, which would also clear the long help the
    // arguments' struct sets.
    #[command(about = "Serve the catalog as a read-only STAC API")]
    Serve(ServeArgs),
    /// Write a static STAC catalog (or NDJSON files) from the catalog file.
    #[command(long_about = EXPORT_ABOUT, after_help = EXPORT_HELP)]
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CatalogTypeArg {
    /// Relative hrefs, no self links: the directory can be moved or copied anywhere.
    SelfContained,
    /// Relative hrefs, plus each document's absolute self link under --base-url.
    RelativePublished,
    /// Every href absolute, under --base-url.
    AbsolutePublished,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormatArg {
    /// A static STAC catalog: catalog.json, collection.json and one file per item.
    Stac,
    /// collections.ndjson and items/COLLECTION.ndjson, for pypgstac and stac-fastapi loaders.
    Ndjson,
}

const EXPORT_ABOUT: &str = "Write a static STAC catalog that pystac, stac-validator and STAC Browser can \
        read: OUT_DIR/catalog.json (the root catalog, from the catalog file's id, title and \
        description), one collection.json per collection with its current extent, and one JSON \
        file per item: the stored document with the links a static catalog needs (root, \
        parent, collection, and self when published; its other links are kept).\n\n\
        The whole export reads one snapshot of the catalog. A new export is written into a \
        hidden directory beside OUT_DIR and renamed into place when complete: a reader never \
        sees half of it, and a failed export leaves nothing (and an existing OUT_DIR as it \
        was). An existing export is refused unless --incremental (update it: rewrite only \
        items changed since, per the change log, and the catalogs whose links or extents \
        changed; the result is byte-identical to a fresh export) or --overwrite. Any other \
        non-empty OUT_DIR is refused.\n\n\
        Layout: --layout is a path template. The default, ${collection}, writes \
        COLLECTION/ITEM/ITEM.json. Further segments, such as ${collection}/${year}/${month}, \
        make one sub-catalog per value (its id is the value): ${year}, ${month} and ${day} of \
        the item's datetime (or start_datetime), or ${NAME} for any item property (missing, \
        null or empty: _none_); a segment may mix text and variables (y${year}). \
        --layout as-imported rebuilds the tree the catalog was imported from. No document \
        lists more than --max-links children and items: larger groups are split into \
        sub-catalogs part-0001, part-0002, ...\n\n\
        File names come from ids and values escaped so that no id can write outside OUT_DIR \
        or collide with another: A-Z a-z 0-9 - _ and inner dots are kept, every other byte is \
        ~XX (hex), Windows device names and catalog.json/collection.json get one byte escaped, \
        names over 200 bytes are cut and end with a hash, and names equal ignoring case get a \
        hash suffix (see the README, \"Export\").";

const EXPORT_HELP: &str = "Examples:\n  \
        stacdb export archive.stacdb site/\n  \
        stacdb export archive.stacdb site/ --incremental              # after more ingests\n  \
        stacdb export archive.stacdb site/ --layout '${collection}/${year}/${month}' --overwrite\n  \
        stacdb export archive.stacdb site/ --catalog-type absolute-published \\\n      \
        --base-url https://data.example.org/stac/\n  \
        stacdb export archive.stacdb dump/ --format ndjson\n  \
        pypgstac load collections dump/collections.ndjson && pypgstac load items dump/items/naip.ndjson\n\n\
        Exit codes:\n  0  success\n  1  failure (a new export leaves nothing behind)\n  \
        2  usage error";

#[derive(Debug, Args)]
struct ExportArgs {
    /// The catalog file.
    catalog: PathBuf,
    /// The directory to write; must be new, empty, or a previous export (with --incremental
    /// or --overwrite).
    out_dir: PathBuf,
    /// How hrefs are written, as pystac defines catalog types.
    #[arg(long, value_enum, default_value = "self-contained")]
    catalog_type: CatalogTypeArg,
    /// The URL OUT_DIR will be published at (for the published catalog types).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Where items go: a path template starting with ${collection} (such as
    /// '${collection}/${year}/${month}'), or as-imported.
    #[arg(long, value_name = "TEMPLATE", default_value = "${collection}")]
    layout: String,
    /// The most children and items one catalog or collection lists; larger groups are split
    /// into part-NNNN sub-catalogs.
    #[arg(long, value_name = "N", default_value_t = crate::export::DEFAULT_MAX_LINKS)]
    max_links: usize,
    /// Threads reading and writing item files (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Update a previous export in place: rewrite only what changed since it was made.
    #[arg(long, conflicts_with = "overwrite")]
    incremental: bool,
    /// Replace a previous export (the new one is written whole beside it, then swapped in).
    #[arg(long)]
    overwrite: bool,
    /// What to write.
    #[arg(long, value_enum, default_value = "stac")]
    format: ExportFormatArg,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Serve the catalog as a read-only STAC API (core, collections, features, \
        item search with filter, sort, fields, query and free text).\n\n\
        The file is opened read-only: nothing a request does can change it, and it may be \
        written by `stacdb ingest` from another process while it is served (new items appear \
        on the next request). Stop with Ctrl-C (SIGINT) or SIGTERM.",
    after_help = "Examples:\n  \
        stacdb serve archive.stacdb\n  \
        stacdb serve archive.stacdb --host 0.0.0.0 --port 9000 --base-url https://stac.example.org\n\n\
        Then: curl http://127.0.0.1:8080/search?bbox=5.9,45.8,10.5,47.8&limit=5"
)]
struct ServeArgs {
    /// The catalog file.
    catalog: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port to listen on.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The URL links are built from (default: http:// and the request's Host header).
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// The largest request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024)]
    max_body: usize,
    /// The largest page; a larger `limit` is lowered to it.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_limit: u64,
    /// How long one search may run before the request fails (503).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    timeout: f64,
    /// How long a client may take to send a request's headers, or its body; a connection
    /// idle this long between requests is closed too.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    client_timeout: f64,
    /// The most connections served at once; more wait until one closes.
    #[arg(long, value_name = "N", default_value_t = 512)]
    max_connections: usize,
}

#[derive(Debug, Args)]
struct LockArgs {
    /// Seconds to wait while another process is writing to the catalog.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    lock_timeout: u64,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  stacdb init archive.stacdb --id archive --title \"Our archive\""
)]
struct InitArgs {
    /// The catalog file; created when missing.
    catalog: PathBuf,
    /// The root catalog's id (default: the file name without extension).
    #[arg(long)]
    id: Option<String>,
    /// The root catalog's title.
    #[arg(long)]
    title: Option<String>,
    /// The root catalog's description.
    #[arg(long)]
    description: Option<String>,
    #[command(flatten)]
    lock: LockArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// A document whose id is already stored is an error.
    Insert,
    /// Replace the stored document.
    Upsert,
    /// Keep the stored document and skip the new one.
    Ignore,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Load items and collections from files, directories or standard input.\n\n\
        The catalog file is created when missing. Each INPUT is a file, a directory (read \
        recursively for .json, .geojson, .ndjson and .jsonl files, each possibly gzipped) or \
        `-` for standard input. The format is recognised by content: a single Item, Collection \
        or Catalog, a FeatureCollection/ItemCollection, a JSON array of documents, or NDJSON \
        (one document per line, items and collections mixed). Gzip is recognised by its magic \
        bytes.\n\n\
        A run is one transaction. By default it is strict: the first invalid document (bad \
        JSON, not STAC, missing id, bad datetime, bad geometry, or a duplicate in insert mode) \
        is reported with its file, line and reason, and the catalog is left exactly as it was. \
        With --skip-invalid, invalid documents are reported and the rest are stored.\n\n\
        Collections may come before or after their items. An item whose collection is neither \
        in the catalog nor in the input is an error, unless --create-collections builds the \
        collection from its items.\n\n\
        A static catalog is imported by giving its root Catalog file: its child and item links \
        (relative, absolute or file://) are followed to any depth, in parallel, each file read \
        once, and the tree of sub-catalogs is remembered. Items without a `collection` field \
        join the collection above them. A link that cannot be followed (a missing file, an \
        http(s) URL) fails the run, naming the file, the link and the reason; with \
        --skip-invalid it is listed and the rest is imported. Linked files that are not STAC \
        are listed and not imported. A new catalog file takes the root catalog's id, title \
        and description.",
    after_help = "Examples:\n  \
        stacdb ingest archive.stacdb collection.json items.ndjson.gz\n  \
        stacdb ingest archive.stacdb ./stac/ --mode upsert\n  \
        stacdb ingest archive.stacdb path/to/catalog.json        # crawl a static catalog\n  \
        zcat items.ndjson.gz | stacdb ingest archive.stacdb - --create-collections\n\n\
        Exit codes:\n  0  every document was stored (or kept, with --mode ignore)\n  \
        1  the run failed and changed nothing\n  2  usage error\n  \
        3  --skip-invalid: the run was stored, but invalid documents or broken links were \
        skipped"
)]
struct IngestArgs {
    /// The catalog file; created when missing.
    catalog: PathBuf,
    /// Files, directories, or `-` for standard input; a static catalog's root catalog.json is
    /// crawled.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<String>,
    /// What to do when a document's id is already stored.
    #[arg(long, value_enum, default_value = "insert")]
    mode: ModeArg,
    /// Report invalid documents and broken links and store the rest (exit code 3 when any
    /// were skipped).
    #[arg(long)]
    skip_invalid: bool,
    /// Build missing collections from their items' extents instead of failing.
    #[arg(long)]
    create_collections: bool,
    /// Put items that have no `collection` field into this collection.
    #[arg(long, value_name = "ID")]
    collection: Option<String>,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    lock: LockArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stacdb get archive.stacdb naip\n  stacdb get archive.stacdb naip ne_m_4110264_sw_13_060_20220827"
)]
struct GetArgs {
    /// The catalog file.
    catalog: PathBuf,
    /// The collection id.
    collection: String,
    /// The item id; without it, the collection is printed.
    item: Option<String>,
    /// Print the collection exactly as ingested, without its current extent.
    #[arg(long)]
    as_ingested: bool,
    /// Print on one line.
    #[arg(long)]
    compact: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stacdb delete archive.stacdb naip item-1 item-2\n  stacdb delete archive.stacdb naip --all"
)]
struct DeleteArgs {
    /// The catalog file.
    catalog: PathBuf,
    /// The collection id.
    collection: String,
    /// Item ids to delete.
    #[arg(required_unless_present = "all", conflicts_with = "all", value_name = "ITEM")]
    items: Vec<String>,
    /// Delete the collection itself with all its items.
    #[arg(long)]
    all: bool,
    /// Do not fail when an item is not there.
    #[arg(long)]
    missing_ok: bool,
    #[command(flatten)]
    lock: LockArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  stacdb info archive.stacdb\n  stacdb info archive.stacdb --json | jq '.collections[].id'"
)]
struct InfoArgs {
    /// The catalog file.
    catalog: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Verify the file and that its indexes and stats agree with its items.\n\n\
    Runs SQLite's integrity and foreign-key checks and the R-tree check, then re-derives every \
    item's promoted columns, geometry, R-tree box and full-text entry from its stored document \
    and compares, and recomputes every collection's count and extent. Exits 1 on any mismatch.",
    after_help = "Examples:\n  stacdb check archive.stacdb\n  stacdb check archive.stacdb --json"
)]
struct CheckArgs {
    /// The catalog file.
    catalog: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// What to search for: the STAC API item-search parameters.
#[derive(Debug, Args)]
struct SearchFilters {
    /// Only items intersecting this box: MINX,MINY,MAXX,MAXY in degrees (or 6 numbers with
    /// elevations). MINX > MAXX crosses the antimeridian.
    #[arg(long, value_name = "MINX,MINY,MAXX,MAXY", allow_hyphen_values = true)]
    bbox: Option<String>,
    /// Only items whose geometry intersects this GeoJSON geometry (given inline, or @FILE).
    /// The test is exact, on the geometries, not on their boxes.
    #[arg(long, value_name = "GEOJSON|@FILE")]
    intersects: Option<String>,
    /// Only items whose time overlaps this instant or interval: 2021-06-01T00:00:00Z,
    /// 2021-06-01T00:00:00Z/2021-07-01T00:00:00Z, or an open interval such as
    /// 2021-06-01T00:00:00Z/.. (or with an empty side).
    #[arg(long, value_name = "DATETIME[/DATETIME]")]
    datetime: Option<String>,
    /// Only items of these collections (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    collections: Vec<String>,
    /// Only items with these ids (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    ids: Vec<String>,
    /// Free text in id, title, description and keywords: terms (any of them), "quoted
    /// phrases", AND, OR, NOT, +required, -excluded, parentheses.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    q: Option<String>,
    /// A CQL2 filter (given inline, or @FILE), such as "eo:cloud_cover < 10 AND
    /// S_INTERSECTS(geometry, POINT(1 2))".
    #[arg(long, value_name = "CQL2|@FILE", allow_hyphen_values = true)]
    filter: Option<String>,
    /// The language of --filter (by default: cql2-json when it starts with '{', else
    /// cql2-text).
    #[arg(long, value_enum, value_name = "LANG")]
    filter_lang: Option<FilterLang>,
    /// A STACQL query object (given inline, or @FILE), such as
    /// '{"eo:cloud_cover": {"lt": 10}}'.
    #[arg(long, value_name = "JSON|@FILE")]
    query: Option<String>,
    /// Give up when the search runs longer than this.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FilterLang {
    #[value(name = "cql2-text")]
    Cql2Text,
    #[value(name = "cql2-json")]
    Cql2Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One item per line: every matching item, across all pages.
    Ndjson,
    /// One page as an ItemCollection, with numberMatched and the next page's token.
    Json,
}

#[derive(Debug, Args)]
#[command(
    long_about = "Search items, as the STAC API item search does.\n\n\
        Filters combine with AND. With --format ndjson (the default) every matching item is \
        written, one per line, in order; with --format json one page is written as an \
        ItemCollection with numberMatched, numberReturned and, when there are more items, a \
        `next` token to pass to --next. The catalog is opened read-only.",
    after_help = "Examples:\n  \
        stacdb search archive.stacdb --bbox 5.9,45.8,10.5,47.8 --datetime 2021-01-01T00:00:00Z/..\n  \
        stacdb search archive.stacdb --filter \"eo:cloud_cover < 10\" --sortby -eo:cloud_cover --max-items 5\n  \
        stacdb search archive.stacdb --q 'flood AND (river OR coast)' --fields id,properties.datetime\n  \
        stacdb search archive.stacdb --collections naip --format json --limit 100 --next TOKEN\n\n\
        Exit codes:\n  0  success (also when the output pipe closes early)\n  1  failure\n  \
        2  usage error, or a search parameter that is not valid"
)]
struct SearchArgs {
    /// The catalog file.
    catalog: PathBuf,
    #[command(flatten)]
    filters: SearchFilters,
    /// The order: comma-separated fields, each with an optional + (ascending, the default)
    /// or - (descending) prefix. Default: -datetime,-id (newest first).
    #[arg(long, value_name = "[+|-]FIELD,...", allow_hyphen_values = true)]
    sortby: Option<String>,
    /// Fields to return, comma-separated: a name includes it, -name excludes it (dotted
    /// paths such as properties.datetime or assets.B01.href). With only -names, every field
    /// but those.
    #[arg(long, value_name = "[+|-]FIELD,...", allow_hyphen_values = true)]
    fields: Option<String>,
    /// Items per page with --format json (default 10).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Stop after N items (ndjson), or make the json page N items long.
    #[arg(long, value_name = "N", conflicts_with = "all")]
    max_items: Option<u64>,
    /// Every matching item (the default for ndjson; one page of all of them for json).
    #[arg(long)]
    all: bool,
    /// The output format.
    #[arg(long, value_enum, default_value = "ndjson")]
    format: Format,
    /// Start after the page this token (from a json page's `next`) continues.
    #[arg(long, value_name = "TOKEN")]
    next: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    stacdb count archive.stacdb --bbox 5.9,45.8,10.5,47.8 --datetime 2021-01-01T00:00:00Z/..")]
struct CountArgs {
    /// The catalog file.
    catalog: PathBuf,
    #[command(flatten)]
    filters: SearchFilters,
}

/// Parses the process's arguments, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    crate::logging::init();
    let code = run(std::env::args_os());
    crate::logging::flush();
    code
}

/// Runs `stacdb` with the given arguments (the first is the program name).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match execute(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if is_bad_search(&e) => {
            eprintln!("stacdb: error: {}", message(&e));
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("stacdb: error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: stacdb's errors already name their
/// cause (`PATH: what the system said`), so a cause whose text is there is not repeated.
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(io::ErrorKind::BrokenPipe))
    })
}

/// A search the client must change (not a failure of the catalog or of the time limit).
fn is_bad_search(e: &anyhow::Error) -> bool {
    use crate::search::SearchError;
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<crate::Error>(),
            Some(crate::Error::Search(s)) if !matches!(s, SearchError::Timeout(_))
        ) || matches!(
            cause.downcast_ref::<SearchError>(),
            Some(s) if !matches!(s, SearchError::Timeout(_))
        ) || cause.downcast_ref::<UsageError>().is_some()
    })
}

/// A command-line value that is not valid.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

/// Reads an argument that may be `@FILE`.
fn inline_or_file(name: &str, value: &str) -> anyhow::Result<String> {
    match value.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|e| UsageError(format!("--{name} @{file}: {e}")).into()),
        None => Ok(value.to_string()),
    }
}

/// The search body (as a STAC API client would POST it) that the command-line options say.
fn search_body(filters: &SearchFilters) -> anyhow::Result<serde_json::Value> {
    use serde_json::{Value, json};
    let mut body = serde_json::Map::new();
    if let Some(bbox) = &filters.bbox {
        body.insert("bbox".into(), json!(crate::search::request::bbox_from_text(bbox)?));
    }
    let parse_json = |name: &str, text: &str| -> anyhow::Result<Value> {
        serde_json::from_str(text)
            .map_err(|e| UsageError(format!("--{name}: not valid JSON: {e}")).into())
    };
    if let Some(intersects) = &filters.intersects {
        let text = inline_or_file("intersects", intersects)?;
        body.insert("intersects".into(), parse_json("intersects", &text)?);
    }
    if let Some(datetime) = &filters.datetime {
        body.insert("datetime".into(), json!(datetime));
    }
    if !filters.collections.is_empty() {
        body.insert("collections".into(), json!(filters.collections));
    }
    if !filters.ids.is_empty() {
        body.insert("ids".into(), json!(filters.ids));
    }
    if let Some(q) = &filters.q {
        body.insert("q".into(), json!(q));
    }
    if let Some(filter) = &filters.filter {
        let text = inline_or_file("filter", filter)?;
        let json_lang = match filters.filter_lang {
            Some(FilterLang::Cql2Json) => true,
            Some(FilterLang::Cql2Text) => false,
            None => text.trim_start().starts_with('{'),
        };
        if json_lang {
            body.insert("filter".into(), parse_json("filter", &text)?);
            body.insert("filter-lang".into(), json!("cql2-json"));
        } else {
            body.insert("filter".into(), json!(text));
            body.insert("filter-lang".into(), json!("cql2-text"));
        }
    }
    if let Some(query) = &filters.query {
        let text = inline_or_file("query", query)?;
        body.insert("query".into(), parse_json("query", &text)?);
    }
    Ok(Value::Object(body))
}

/// A duration option given in seconds: a positive, finite number.
fn seconds(flag: &str, value: f64) -> Result<Duration, UsageError> {
    if value.is_finite() && value > 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(UsageError(format!("{flag} {value}: must be a positive number of seconds")))
    }
}

fn search_options(filters: &SearchFilters) -> anyhow::Result<crate::search::SearchOptions> {
    let timeout = filters.timeout.map(|s| seconds("--timeout", s)).transpose()?;
    Ok(crate::search::SearchOptions { timeout, max_limit: u64::MAX, ..Default::default() })
}

fn search(args: SearchArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    use serde_json::json;
    let mut body = search_body(&args.filters)?;
    if let Some(sortby) = &args.sortby {
        body["sortby"] = crate::search::request::sortby_from_text(sortby);
    }
    if let Some(fields) = &args.fields {
        // As a POST body says it: with only excludes, everything but those.
        let names: Vec<&str> = fields.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
        let include: Vec<&str> = names
            .iter()
            .filter(|n| !n.starts_with('-'))
            .map(|n| n.trim_start_matches('+'))
            .collect();
        let exclude: Vec<&str> = names.iter().filter_map(|n| n.strip_prefix('-')).collect();
        body["fields"] = if include.is_empty() {
            json!({ "exclude": exclude })
        } else {
            json!({ "include": include, "exclude": exclude })
        };
    }
    if let Some(next) = &args.next {
        body["token"] = json!(next);
    }
    let limit = match (args.format, args.max_items, args.all) {
        (Format::Json, Some(n), _) => Some(n),
        (Format::Json, None, true) => Some(u64::MAX),
        (Format::Json, None, false) => args.limit,
        (Format::Ndjson, _, _) => None,
    };
    if let Some(limit) = limit {
        body["limit"] = json!(limit);
    }
    let request = crate::search::Request::from_json(&body)?;
    let options = search_options(&args.filters)?;
    let catalog = Catalog::open_read_only(&args.catalog)?;
    match args.format {
        Format::Ndjson => {
            catalog.search_each(&request, &options, args.max_items, |item| {
                out.write_all(item.as_bytes())?;
                out.write_all(b"\n")?;
                Ok(true)
            })?;
            out.flush()?;
        }
        Format::Json => {
            let page = catalog.search(&request, &options)?;
            let features: Vec<&serde_json::value::RawValue> = page
                .items
                .iter()
                .map(|item| serde_json::from_str(item))
                .collect::<Result<_, _>>()?;
            let mut collection = json!({
                "type": "FeatureCollection",
                "features": features,
                "numberMatched": page.number_matched,
                "numberReturned": page.items.len(),
            });
            if let Some(next) = page.next {
                collection["next"] = json!(next);
            }
            serde_json::to_writer_pretty(&mut *out, &collection)?;
            writeln!(out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn execute(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match cli.command {
        Command::Init(args) => {
            let existed = args.catalog.exists();
            let mut catalog = open(&args.catalog, Access::Create, &args.lock)?;
            let meta = catalog.set_metadata(
                args.id.as_deref(),
                args.title.as_deref(),
                args.description.as_deref(),
            )?;
            let verb = if existed { "updated" } else { "created" };
            writeln!(out, "{verb} {} (catalog id '{}')", args.catalog.display(), meta.id)?;
        }
        Command::Ingest(args) => return ingest(args, &mut out),
        Command::Search(args) => return search(args, &mut out),
        Command::Export(args) => return export(args, &mut out),
        Command::Serve(args) => {
            let timeout = seconds("--timeout", args.timeout)?;
            let client_timeout = seconds("--client-timeout", args.client_timeout)?;
            if args.max_limit == 0 {
                return Err(UsageError("--max-limit: must be at least 1".into()).into());
            }
            if args.max_connections == 0 {
                return Err(UsageError("--max-connections: must be at least 1".into()).into());
            }
            let options = crate::server::ServeOptions {
                base_url: args.base_url,
                max_body: args.max_body,
                max_limit: args.max_limit,
                timeout,
                client_timeout,
                max_connections: args.max_connections,
                ..Default::default()
            };
            let address = format!("{}:{}", args.host, args.port);
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let served = runtime.block_on(crate::server::serve(&args.catalog, &address, options));
            // Searches past their time limit may still be winding down on the blocking pool
            // (see `server::with_catalog`): do not wait for them to exit.
            runtime.shutdown_timeout(Duration::from_secs(1));
            served?;
        }
        Command::Count(args) => {
            let request = crate::search::Request::from_json(&search_body(&args.filters)?)?;
            let options = search_options(&args.filters)?;
            let n = Catalog::open_read_only(&args.catalog)?.count(&request, &options)?;
            writeln!(out, "{n}")?;
        }
        Command::Get(args) => {
            let catalog = open_to_read(&args.catalog)?;
            let value = match (&args.item, args.as_ingested) {
                (Some(item), _) => catalog.item(&args.collection, item)?,
                (None, false) => catalog.collection(&args.collection)?,
                (None, true) => catalog.collection_document(&args.collection)?,
            };
            if args.compact {
                serde_json::to_writer(&mut out, &value)?;
            } else {
                serde_json::to_writer_pretty(&mut out, &value)?;
            }
            writeln!(out)?;
        }
        Command::Delete(args) => {
            let mut catalog = open(&args.catalog, Access::ReadWrite, &args.lock)?;
            if args.all {
                let n = catalog.delete_collection(&args.collection)?;
                writeln!(out, "deleted collection '{}' and its {n} item(s)", args.collection)?;
            } else {
                let n = catalog.delete_items(&args.collection, &args.items, args.missing_ok)?;
                writeln!(out, "deleted {n} item(s) from '{}'", args.collection)?;
            }
        }
        Command::Info(args) => {
            let info = open_to_read(&args.catalog)?.info()?;
            if args.json {
                serde_json::to_writer_pretty(&mut out, &info)?;
                writeln!(out)?;
            } else {
                print_info(&mut out, &info)?;
            }
        }
        Command::Check(args) => {
            let report = open_to_read(&args.catalog)?.check()?;
            if args.json {
                serde_json::to_writer_pretty(&mut out, &report)?;
                writeln!(out)?;
            } else if report.is_ok() {
                writeln!(
                    out,
                    "ok: {} item(s) and {} collection(s) agree with their indexes",
                    report.items_checked, report.collections_checked
                )?;
            } else {
                for problem in &report.problems {
                    writeln!(out, "problem: {problem}")?;
                }
                writeln!(out, "{} problem(s) found", report.problem_count)?;
            }
            if !report.is_ok() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn open(path: &std::path::Path, access: Access, lock: &LockArgs) -> crate::Result<Catalog> {
    Catalog::open_with(path, access, Duration::from_secs(lock.lock_timeout))
}

/// Opens a catalog for a command that only reads (info, get, check): read-write when it can,
/// so that an older schema is upgraded, and else read-only (a read-only mount, a file without
/// write permission). The read-write error is the one reported when neither works.
fn open_to_read(path: &std::path::Path) -> crate::Result<Catalog> {
    Catalog::open(path).or_else(|e| Catalog::open_read_only(path).map_err(|_| e))
}

fn ingest(args: IngestArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let options = IngestOptions {
        mode: match args.mode {
            ModeArg::Insert => Mode::Insert,
            ModeArg::Upsert => Mode::Upsert,
            ModeArg::Ignore => Mode::Ignore,
        },
        skip_invalid: args.skip_invalid,
        create_collections: args.create_collections,
        collection: args.collection,
    };
    let inputs: Vec<Input> = args.inputs.iter().map(|a| Input::from_arg(a)).collect();
    let progress = Progress::new();
    let timeout = Duration::from_secs(args.lock.lock_timeout);
    let result = Catalog::ingest_path(&args.catalog, timeout, &inputs, &options, &progress);
    progress.bar.finish_and_clear();
    let report = result?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", summary(&report))?;
    }
    Ok(if report.failed > 0 { ExitCode::from(EXIT_SKIPPED) } else { ExitCode::SUCCESS })
}

fn export(args: ExportArgs, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    use crate::export::{CatalogType, ExportFormat, ExportOptions, Layout};
    let options = ExportOptions {
        catalog_type: match args.catalog_type {
            CatalogTypeArg::SelfContained => CatalogType::SelfContained,
            CatalogTypeArg::RelativePublished => CatalogType::RelativePublished,
            CatalogTypeArg::AbsolutePublished => CatalogType::AbsolutePublished,
        },
        base_url: args.base_url,
        layout: Layout::parse(&args.layout),
        max_links: args.max_links,
        threads: args.threads,
        incremental: args.incremental,
        overwrite: args.overwrite,
        format: match args.format {
            ExportFormatArg::Stac => ExportFormat::Stac,
            ExportFormatArg::Ndjson => ExportFormat::Ndjson,
        },
    };
    // Option errors are usage errors (exit 2), found before the catalog is opened.
    if let Err(e) = crate::export::check_options(&options) {
        return Err(UsageError(e.to_string()).into());
    }
    let catalog = Catalog::open_read_only(&args.catalog)?;
    let progress = Progress::new();
    let result = crate::export::export(&catalog, &args.out_dir, &options, &progress);
    progress.bar.finish_and_clear();
    let report = result?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        let seconds = report.elapsed.as_secs_f64();
        writeln!(
            out,
            "{} export of {} items to {}: {} item files written, {} files written, {} deleted, \
             {} catalogs; {seconds:.2} s, {:.0} items/s",
            report.kind,
            report.items,
            args.out_dir.display(),
            report.items_written,
            report.files_written,
            report.files_deleted,
            report.catalogs,
            report.items_per_second()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The export's progress: items written out of all.
impl crate::export::ExportObserver for Progress {
    fn started(&self, items: u64) {
        self.bar.set_length(items);
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} items ({per_sec}, eta {eta})",
        );
        self.bar.set_style(style.expect("valid template"));
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    fn advanced(&self, items: u64) {
        self.bar.inc(items);
    }

    fn note(&self, message: &str) {
        self.bar.suspend(|| eprintln!("stacdb: note: {message}"));
    }
}

/// The one-line summary of an ingest run.
pub fn summary(report: &IngestReport) -> String {
    let i = &report.items;
    let c = &report.collections;
    let seconds = report.elapsed.as_secs_f64();
    let mut line = format!(
        "items: {} inserted, {} updated, {} skipped, {} failed; collections: {} inserted, {} updated, {} skipped",
        i.inserted, i.updated, i.skipped, report.failed, c.inserted, c.updated, c.skipped
    );
    if report.collections_created > 0 {
        line += &format!(", {} created from items", report.collections_created);
    }
    let crawl = &report.crawl;
    if crawl.roots > 0 {
        line += &format!(
            "; crawl: {} file(s), {} sub-catalog(s), {} broken link(s), {} not STAC",
            crawl.files, crawl.catalogs, crawl.broken_link_count, crawl.not_stac_count
        );
    }
    line += &format!(
        "; {seconds:.2} s, {:.0} items/s, {:.1} MB/s",
        report.items_per_second(),
        report.bytes as f64 / 1e6 / seconds.max(1e-9)
    );
    line
}

/// A progress bar on standard error when it is a terminal; silence otherwise.
struct Progress {
    bar: ProgressBar,
}

impl Progress {
    fn new() -> Progress {
        let bar =
            if io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
        Progress { bar }
    }
}

impl Observer for Progress {
    fn started(&self, total_bytes: Option<u64>) {
        let style = match total_bytes {
            Some(total) => {
                self.bar.set_length(total);
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} (eta {eta})",
                )
            }
            None => {
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} read, {msg}")
            }
        };
        self.bar.set_style(style.expect("valid template"));
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }

    fn progress(&self, documents: u64, bytes: u64) {
        self.bar.set_position(bytes);
        self.bar.set_message(format!("{documents} documents"));
    }

    fn rejected(&self, error: &DocError) {
        self.bar.suspend(|| eprintln!("stacdb: skipped: {error}"));
    }

    fn note(&self, message: &str) {
        self.bar.suspend(|| eprintln!("stacdb: note: {message}"));
    }
}

fn print_info(out: &mut impl Write, info: &crate::Info) -> io::Result<()> {
    let c = &info.catalog;
    writeln!(
        out,
        "catalog:  {}{}",
        c.id,
        c.title.as_ref().map(|t| format!(" — {t}")).unwrap_or_default()
    )?;
    writeln!(
        out,
        "file:     {} ({:.1} MB, schema version {})",
        info.path,
        info.file_size as f64 / 1e6,
        info.schema_version
    )?;
    writeln!(out, "items:    {} in {} collection(s)", info.item_count, info.collections.len())?;
    writeln!(out, "changes:  {}", info.last_change)?;
    if info.collections.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    let width = info.collections.iter().map(|c| c.id.len()).max().unwrap_or(0).max(10);
    writeln!(out, "{:<width$}  {:>9}  {:<44}  time", "collection", "items", "bbox")?;
    for col in &info.collections {
        let bbox = col.bbox.map_or("-".to_string(), |b| {
            format!("[{:.4}, {:.4}, {:.4}, {:.4}]", b[0], b[1], b[2], b[3])
        });
        let time = match (&col.start, &col.end) {
            (Some(s), Some(e)) => format!("{s} .. {e}"),
            _ => "-".into(),
        };
        writeln!(out, "{:<width$}  {:>9}  {:<44}  {time}", col.id, col.item_count, bbox)?;
    }
    Ok(())
}
