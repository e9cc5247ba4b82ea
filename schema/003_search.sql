-- stacdb schema, step 3: what search needs.

-- The key that authenticates paging tokens (HMAC-SHA256). The migrator fills it with 32 random
-- bytes; a token made with one catalog's key is refused by every other catalog.
ALTER TABLE catalog ADD COLUMN token_secret BLOB;

-- The items table is rebuilt with two kinds of new columns placed before the documents (a
-- column after a large `content` can only be read by following its overflow pages):
--
-- * p_eo_cloud_cover, p_gsd, p_platform, p_constellation: common STAC queryables, typed and
--   indexed, so that `eo:cloud_cover < 10` or `platform = 'sentinel-2a'` over a million items
--   is an index range rather than a scan that parses every document. Each holds the property's
--   value when it has the column's JSON type (number or string) and NULL otherwise: exactly
--   what a CQL2 comparison with a number (or a string) reads, so the filter translator uses the
--   column in its place (see INDEXED_PROPERTIES in src/search/cql2sql.rs). Ingest writes them
--   from the item it has parsed anyway; the partial indexes hold only items that have them.
-- * time_class (virtual): 0 an instant, 1 a span up to a day, 2 up to 32 days, 3 up to 367
--   days, 4 longer. An item of class c overlaps [S, E] only if it starts in
--   [S - longest span of c, E], so a datetime search is one short range scan per class of
--   items_time_class, however long the longest span in the catalog is.
CREATE TABLE items_new (
    fid            INTEGER PRIMARY KEY,
    collection     TEXT NOT NULL REFERENCES collections (id),
    id             TEXT NOT NULL,
    datetime_start INTEGER NOT NULL,
    datetime_end   INTEGER NOT NULL CHECK (datetime_end >= datetime_start),
    minx           REAL,
    miny           REAL,
    maxx           REAL,
    maxy           REAL,
    time_class     INTEGER GENERATED ALWAYS AS (
        CASE WHEN datetime_end = datetime_start THEN 0
             WHEN datetime_end - datetime_start <= 86400000000 THEN 1
             WHEN datetime_end - datetime_start <= 2764800000000 THEN 2
             WHEN datetime_end - datetime_start <= 31708800000000 THEN 3
             ELSE 4 END) VIRTUAL,
    p_eo_cloud_cover REAL,
    p_gsd            REAL,
    p_platform       TEXT,
    p_constellation  TEXT,
    geometry       BLOB,
    content        TEXT NOT NULL
);
INSERT INTO items_new (fid, collection, id, datetime_start, datetime_end, minx, miny, maxx, maxy,
                       p_eo_cloud_cover, p_gsd, p_platform, p_constellation, geometry, content)
    SELECT fid, collection, id, datetime_start, datetime_end, minx, miny, maxx, maxy,
           CASE WHEN json_type(content, '$.properties."eo:cloud_cover"') IN ('integer', 'real')
                THEN json_extract(content, '$.properties."eo:cloud_cover"') END,
           CASE WHEN json_type(content, '$.properties."gsd"') IN ('integer', 'real')
                THEN json_extract(content, '$.properties."gsd"') END,
           CASE WHEN json_type(content, '$.properties."platform"') = 'text'
                THEN json_extract(content, '$.properties."platform"') END,
           CASE WHEN json_type(content, '$.properties."constellation"') = 'text'
                THEN json_extract(content, '$.properties."constellation"') END,
           geometry, content
    FROM items;
DROP TABLE items;
ALTER TABLE items_new RENAME TO items;

CREATE UNIQUE INDEX items_collection_id ON items (collection, id);
CREATE INDEX items_datetime_end ON items (datetime_end);
-- The default order is newest first, then by id; the row's fid breaks the last ties. This
-- index gives that order without sorting and serves every range on datetime_start.
CREATE INDEX items_datetime_id ON items (datetime_start, id);
-- Item ids across collections (the `ids` search parameter without `collections`).
CREATE INDEX items_id ON items (id);
-- The longest time span of any item, read as MAX() from the end of this index.
CREATE INDEX items_time_span ON items (datetime_end - datetime_start);
-- One range per time class (see time_class above); it holds the end too, to test without
-- reading the row.
CREATE INDEX items_time_class ON items (time_class, datetime_start, datetime_end);
CREATE INDEX items_p_eo_cloud_cover ON items (p_eo_cloud_cover) WHERE p_eo_cloud_cover IS NOT NULL;
CREATE INDEX items_p_gsd ON items (p_gsd) WHERE p_gsd IS NOT NULL;
CREATE INDEX items_p_platform ON items (p_platform) WHERE p_platform IS NOT NULL;
CREATE INDEX items_p_constellation ON items (p_constellation) WHERE p_constellation IS NOT NULL;

-- Space and time in one index, for the most common search: a bbox (or geometry) and a
-- datetime. Boxes are the R-tree boxes of rtree_items_geometry; time is the item's
-- [start, end] in days since the Unix epoch. The R-tree keeps 32-bit floats rounded outward,
-- so its boxes hold the exact values and every search then tests those exactly. Items
-- without geometry have no entry, as in rtree_items_geometry (the GeoPackage index, which
-- stays as the GeoPackage specification defines it).
CREATE VIRTUAL TABLE rtree_items_spacetime USING rtree (id, minx, maxx, miny, maxy, mint, maxt);
INSERT INTO rtree_items_spacetime (id, minx, maxx, miny, maxy, mint, maxt)
    SELECT r.id, r.minx, r.maxx, r.miny, r.maxy,
           i.datetime_start / 86400000000.0, i.datetime_end / 86400000000.0
    FROM rtree_items_geometry r JOIN items i ON i.fid = r.id;
