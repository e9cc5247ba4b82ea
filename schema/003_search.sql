-- stacdb schema, step 3: what search needs.

-- The key that authenticates paging tokens (HMAC-SHA256). The migrator fills it with 32 random
-- bytes; a token made with one catalog's key is refused by every other catalog.
ALTER TABLE catalog ADD COLUMN token_secret BLOB;

-- The default order is newest first, then by id; the row's fid breaks the last ties. This
-- index gives that order without sorting and serves every range on datetime_start.
CREATE INDEX items_datetime_id ON items (datetime_start, id);
DROP INDEX items_datetime_start;

-- The longest time span of any item, read as MAX() from the end of this index. A datetime
-- search looks for items whose start lies in [query start - longest span, query end], which
-- is a range scan, rather than every item that starts before the query's end.
CREATE INDEX items_time_span ON items (datetime_end - datetime_start);

-- Common STAC queryables, typed and indexed, so that `eo:cloud_cover < 10` or
-- `platform = 'sentinel-2a'` over a million items is an index range rather than a scan that
-- parses every document. Each column is the property's value when it has the column's JSON
-- type and NULL otherwise: exactly what a CQL2 comparison with a number (or a string) reads,
-- so the filter translator can use the column in its place (see `INDEXED_PROPERTIES` in
-- src/search/cql2sql.rs, which must list the same columns). The columns are VIRTUAL: they take
-- no space in the table; the partial indexes hold only items that have the property.
ALTER TABLE items ADD COLUMN p_eo_cloud_cover REAL GENERATED ALWAYS AS (
    CASE WHEN json_type(content, '$.properties."eo:cloud_cover"') IN ('integer', 'real')
    THEN json_extract(content, '$.properties."eo:cloud_cover"') END) VIRTUAL;
ALTER TABLE items ADD COLUMN p_gsd REAL GENERATED ALWAYS AS (
    CASE WHEN json_type(content, '$.properties."gsd"') IN ('integer', 'real')
    THEN json_extract(content, '$.properties."gsd"') END) VIRTUAL;
ALTER TABLE items ADD COLUMN p_platform TEXT GENERATED ALWAYS AS (
    CASE WHEN json_type(content, '$.properties."platform"') = 'text'
    THEN json_extract(content, '$.properties."platform"') END) VIRTUAL;
ALTER TABLE items ADD COLUMN p_constellation TEXT GENERATED ALWAYS AS (
    CASE WHEN json_type(content, '$.properties."constellation"') = 'text'
    THEN json_extract(content, '$.properties."constellation"') END) VIRTUAL;
CREATE INDEX items_p_eo_cloud_cover ON items (p_eo_cloud_cover) WHERE p_eo_cloud_cover IS NOT NULL;
CREATE INDEX items_p_gsd ON items (p_gsd) WHERE p_gsd IS NOT NULL;
CREATE INDEX items_p_platform ON items (p_platform) WHERE p_platform IS NOT NULL;
CREATE INDEX items_p_constellation ON items (p_constellation) WHERE p_constellation IS NOT NULL;
