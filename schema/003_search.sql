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
