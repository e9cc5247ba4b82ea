-- stacdb schema, step 1: the catalog, its collections and items, and their indexes.
-- Applied inside one BEGIN IMMEDIATE transaction; PRAGMA user_version is set by the migrator.

-- The root catalog's own metadata. Exactly one row.
CREATE TABLE catalog (
    singleton   INTEGER PRIMARY KEY CHECK (singleton = 1),
    id          TEXT NOT NULL,
    title       TEXT,
    description TEXT
);

-- One row per collection. `content` is the document exactly as given (compact JSON text);
-- it is NULL only inside an ingest transaction, while items have named a collection whose
-- document has not arrived yet. The stats columns are kept current from the items.
CREATE TABLE collections (
    id          TEXT PRIMARY KEY NOT NULL,
    content     TEXT,
    item_count  INTEGER NOT NULL DEFAULT 0,
    -- union of the items' 2-D bboxes (NULL when no item has one)
    minx        REAL,
    miny        REAL,
    maxx        REAL,
    maxy        REAL,
    -- earliest start and latest end of the items, in microseconds since the Unix epoch (UTC)
    datetime_start INTEGER,
    datetime_end   INTEGER
);

-- One row per item. `fid` is the integer key the R-tree and FTS index use.
CREATE TABLE items (
    fid            INTEGER PRIMARY KEY,
    collection     TEXT NOT NULL REFERENCES collections (id),
    id             TEXT NOT NULL,
    -- microseconds since the Unix epoch (UTC); start = end = datetime for instant items
    datetime_start INTEGER NOT NULL,
    datetime_end   INTEGER NOT NULL CHECK (datetime_end >= datetime_start),
    -- the item's 2-D bbox as given (minx > maxx when it crosses the antimeridian)
    minx           REAL,
    miny           REAL,
    maxx           REAL,
    maxy           REAL,
    -- GeoPackage geometry blob: "GP" header with envelope, then ISO WKB; NULL for null geometry
    geometry       BLOB,
    -- the full document exactly as given (compact JSON text)
    content        TEXT NOT NULL
);
CREATE UNIQUE INDEX items_collection_id ON items (collection, id);
CREATE INDEX items_datetime_start ON items (datetime_start);
CREATE INDEX items_datetime_end ON items (datetime_end);

-- The spatial index, named and laid out as a GeoPackage R-tree (rtree_<table>_<column>).
-- id = items.fid. Items with null geometry have no entry. An item whose bbox crosses the
-- antimeridian, or whose longitudes run past +/-180, gets the full longitude range [-180, 180]
-- so that a query box on either side finds it; exact tests are done against `geometry`.
CREATE VIRTUAL TABLE rtree_items_geometry USING rtree (id, minx, maxx, miny, maxy);

-- Free text over id, title, description and keywords, rowid = items.fid.
CREATE VIRTUAL TABLE items_fts USING fts5 (id, title, description, keywords, tokenize = 'unicode61 remove_diacritics 2');

-- What the catalog has learned about each collection's item properties.
CREATE TABLE queryables (
    collection  TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    -- JSON array of the JSON types seen: "null", "boolean", "integer", "number", "string", "array", "object"
    types       TEXT NOT NULL,
    -- numeric range over every value seen
    minimum     REAL,
    maximum     REAL,
    -- JSON array of the distinct scalar values seen, while there are few; NULL once there are many
    enum_values TEXT,
    PRIMARY KEY (collection, name)
) WITHOUT ROWID;

-- Every change, in commit order. Incremental export and sync read it.
CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    op         TEXT NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    kind       TEXT NOT NULL CHECK (kind IN ('item', 'collection')),
    collection TEXT NOT NULL,
    item_id    TEXT,
    -- Unix time in seconds of the run that made the change
    changed_at INTEGER NOT NULL
);
