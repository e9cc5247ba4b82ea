-- stacdb schema, step 4: the tree of an imported static catalog.
--
-- `stacdb ingest CATALOG path/to/catalog.json` crawls a static catalog from its root and records
-- where each sub-catalog, collection and item hung in it; `stacdb export --layout as-imported`
-- reads these tables to write the same tree back. A catalog that was never imported from a
-- static tree has no rows here, and an export with another layout ignores them.
--
-- The root catalog itself is the `catalog` row (its id, title and description); it is not a
-- row here. Paths are the imported tree's own relative paths ('/'-separated, relative to the
-- root catalog's directory): untrusted text, which the exporter escapes segment by segment
-- like any id.

-- One row per sub-catalog: a Catalog document met below the root.
CREATE TABLE subcatalogs (
    node              INTEGER PRIMARY KEY,
    -- the sub-catalog it hangs from; NULL with parent_collection NULL: from the root catalog
    parent            INTEGER REFERENCES subcatalogs (node) ON DELETE CASCADE,
    -- the collection it hangs from instead, when a collection links to a child catalog
    parent_collection TEXT REFERENCES collections (id) ON DELETE CASCADE,
    -- its order among its parent's links, as imported
    position          INTEGER NOT NULL,
    -- where its catalog.json sat, relative to the root catalog's directory
    href              TEXT NOT NULL,
    -- the Catalog document as imported, with its links removed (compact JSON)
    content           TEXT NOT NULL,
    CHECK (parent IS NULL OR parent_collection IS NULL)
);
-- Two sub-catalogs never sit at one path; a re-import finds a sub-catalog's row by its href.
CREATE UNIQUE INDEX subcatalogs_href ON subcatalogs (href);
CREATE INDEX subcatalogs_parent ON subcatalogs (parent);
CREATE INDEX subcatalogs_parent_collection ON subcatalogs (parent_collection);

-- Where each imported collection hung. A collection with no row here hangs from the root.
CREATE TABLE collection_parents (
    collection        TEXT PRIMARY KEY NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    -- the sub-catalog it hangs from; NULL with parent_collection NULL: from the root catalog
    parent            INTEGER REFERENCES subcatalogs (node) ON DELETE SET NULL,
    -- the collection it hangs from instead (a collection nested in a collection)
    parent_collection TEXT REFERENCES collections (id) ON DELETE SET NULL,
    position          INTEGER NOT NULL,
    -- where its collection.json sat, relative to the root catalog's directory
    href              TEXT NOT NULL,
    CHECK (parent IS NULL OR parent_collection IS NULL)
) WITHOUT ROWID;

-- Items that hung from a sub-catalog rather than straight from their collection (for example
-- a collection/year/month tree). An item with no row here hangs from its collection. The
-- store deletes an item's row when it deletes the item.
CREATE TABLE item_parents (
    collection TEXT NOT NULL,
    id         TEXT NOT NULL,
    parent     INTEGER NOT NULL REFERENCES subcatalogs (node) ON DELETE CASCADE,
    -- where its JSON file sat, relative to the root catalog's directory
    href       TEXT NOT NULL,
    PRIMARY KEY (collection, id),
    FOREIGN KEY (collection) REFERENCES collections (id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX item_parents_parent ON item_parents (parent);
