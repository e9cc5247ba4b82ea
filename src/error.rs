//! The crate's error type.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in stacdb.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error from SQLite that has no more specific meaning here.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),

    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The catalog file does not exist and the operation does not create one.
    #[error("{}: no such catalog file (create one with `stacdb init` or `stacdb ingest`)", path.display())]
    NoSuchCatalog {
        /// The path that was asked for.
        path: PathBuf,
    },

    /// The file is a SQLite database, but not a stacdb catalog.
    #[error("{}: not a stacdb catalog: {reason}", path.display())]
    NotACatalog {
        /// The file.
        path: PathBuf,
        /// Why it was not recognised.
        reason: String,
    },

    /// The file was written by a newer stacdb whose schema this build does not know.
    #[error(
        "{}: written by a newer stacdb (schema version {found}; this build knows versions up to {supported}); upgrade stacdb to open it",
        path.display()
    )]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The file's schema version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// Another process held the write lock for longer than the lock timeout.
    #[error(
        "{}: another process has been writing to this catalog for more than {seconds} s; try again later or raise --lock-timeout",
        path.display()
    )]
    Locked {
        /// The file.
        path: PathBuf,
        /// How long we waited, in seconds.
        seconds: u64,
    },

    /// A document was rejected.
    #[error(transparent)]
    Document(Box<DocError>),

    /// No collection with this id is in the catalog.
    #[error("no collection '{0}' in the catalog")]
    CollectionNotFound(String),

    /// No item with this id is in the collection.
    #[error("no item '{id}' in collection '{collection}'")]
    ItemNotFound {
        /// The collection that was searched.
        collection: String,
        /// The item id that was not found.
        id: String,
    },

    /// An argument given to a library function is unusable.
    #[error("{0}")]
    InvalidArgument(String),
    /// A search the catalog cannot run as asked (see [`crate::search::SearchError`]).
    #[error(transparent)]
    Search(#[from] crate::search::SearchError),

    /// The run was interrupted (for example by a signal) and rolled back.
    #[error("interrupted; nothing was changed")]
    Interrupted,
}

impl From<DocError> for Error {
    fn from(e: DocError) -> Error {
        Error::Document(Box::new(e))
    }
}

/// A crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a document came from: a file (or standard input) and a position in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file path as given, or `<stdin>`; shared by every document of the file.
    pub source: std::sync::Arc<str>,
    /// 1-based line number: the NDJSON line, or the line of a JSON syntax error.
    pub line: Option<u64>,
    /// A JSON pointer to the document inside a larger one, e.g. `/features/3`.
    pub pointer: Option<String>,
}

impl Location {
    /// A location for a whole file.
    pub fn file(source: impl Into<std::sync::Arc<str>>) -> Location {
        Location { source: source.into(), line: None, pointer: None }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(pointer) = &self.pointer {
            write!(f, " at {pointer}")?;
        }
        Ok(())
    }
}

/// A rejected document: where it is, which document, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {}{reason}", id.as_ref().map(|id| format!("'{id}': ")).unwrap_or_default())]
pub struct DocError {
    /// Where the document is.
    pub location: Location,
    /// The document's id, when it has one.
    pub id: Option<String>,
    /// Why it was rejected.
    pub reason: DocErrorKind,
}

/// Why a document was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DocErrorKind {
    /// The text is not JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The JSON is not a STAC document stacdb can store.
    #[error("not a STAC document: {0}")]
    NotStac(String),
    /// A required field is missing or null.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A field has a value of the wrong form.
    #[error("field `{field}`: {reason}")]
    InvalidField {
        /// The field, as a dotted path (`properties.datetime`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The item has no `collection` field and no default collection was given.
    #[error(
        "item has no `collection` field (pass --collection ID to put such items in a collection)"
    )]
    NoCollection,
    /// Insert mode found the document already stored (or earlier in the same run).
    #[error("duplicate: {kind} '{id}' already exists{} (use --mode upsert to replace it or --mode ignore to keep the stored one)", collection.as_ref().map(|c| format!(" in collection '{c}'")).unwrap_or_default())]
    Duplicate {
        /// "item" or "collection".
        kind: &'static str,
        /// The collection, for items.
        collection: Option<String>,
        /// The duplicate id.
        id: String,
    },
    /// The item's collection was never given (and --create-collections was not set).
    #[error(
        "collection '{collection}' is not in the catalog and was not in the input, and {items} item(s) name it; ingest its collection too, or pass --create-collections"
    )]
    UnknownCollection {
        /// The collection id the items name.
        collection: String,
        /// How many items of the run name it.
        items: u64,
    },
    /// The input could not be read.
    #[error("{0}")]
    Unreadable(String),
    /// A Catalog that cannot be crawled: one read from standard input, or one inside a
    /// larger document (an array, NDJSON). Only a Catalog file of its own is crawled, since its
    /// links are relative to that file.
    #[error(
        "this is a STAC Catalog, which is crawled only when it is a file of its own given as an INPUT (its links are relative to that file); pass the catalog's file instead"
    )]
    CatalogNotSupported,
    /// A static catalog's `child` or `item` link that cannot be followed.
    #[error("broken {rel} link '{href}': {reason}")]
    BrokenLink {
        /// `child` or `item`.
        rel: &'static str,
        /// The link's href, as written.
        href: String,
        /// Why it cannot be followed.
        reason: String,
    },
    /// A crawled item with no `collection` field, hanging from catalogs only, and no
    /// `--collection` given.
    #[error(
        "item has no `collection` field and no collection above it in the catalog tree (pass --collection ID to put such items in a collection)"
    )]
    NoCollectionAbove,
}
