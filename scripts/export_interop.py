"""Checks a `stacdb export` directory with pystac (1.10 or later).

    python scripts/export_interop.py EXPORT_DIR EXPECTED_ITEMS [--schemas DIR] [--base-url URL]

1. `pystac.Catalog.from_file(EXPORT_DIR/catalog.json)` (for an absolute-published export,
   whose hrefs all start with --base-url, reads of that URL are served from EXPORT_DIR);
2. walks the whole tree (`walk()`), counting catalogs, collections and items, and checks that
   every item was reached exactly once and the count equals EXPECTED_ITEMS, and that every
   item's collection is the collection above it;
3. `validate_all()`: every catalog, collection and item against the STAC JSON schemas.

Offline: the STAC v1.1.0 core schemas come with pystac; the v1.0.0 ones are read from
--schemas (the copies scripts/interop.sh takes from the pystac 1.10.1 wheel); extension schemas
(https://stac-extensions.github.io/...) are answered with an accept-all schema, since no
package ships them, so extension fields are NOT validated. Any other schema URL fails.

Exits 1 on any failure, printing what failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pystac
import pystac.stac_io
import pystac.validation
from pystac.validation.stac_validator import JsonSchemaSTACValidator

V100 = "https://schemas.stacspec.org/v1.0.0"
V100_FILES = {
    f"{V100}/item-spec/json-schema/item.json": "item.json",
    f"{V100}/catalog-spec/json-schema/catalog.json": "catalog.json",
    f"{V100}/collection-spec/json-schema/collection.json": "collection.json",
    **{
        f"{V100}/item-spec/json-schema/{name}.json": f"{name}.json"
        for name in ("basics", "datetime", "instrument", "licensing", "provider")
    },
}
EXTENSIONS = "https://stac-extensions.github.io/"


def offline(schema_dir: Path | None, root: Path, base_url: str | None) -> None:
    """Serves schemas (and an absolute-published export's URLs) without the network."""
    read = pystac.stac_io.DefaultStacIO.read_text_from_href

    def read_text(self: Any, href: str) -> str:
        if href.startswith(EXTENSIONS) and href.endswith(".json"):
            return json.dumps({"$schema": "http://json-schema.org/draft-07/schema#", "$id": href})
        if base_url and href.startswith(base_url):
            return (root / href[len(base_url):]).read_text()
        return read(self, href)

    pystac.stac_io.DefaultStacIO.read_text_from_href = read_text
    validator = JsonSchemaSTACValidator()
    if schema_dir is not None:
        for url, name in V100_FILES.items():
            validator.schema_cache[url] = json.loads((schema_dir / name).read_text())
    pystac.validation.set_validator(validator)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("expected_items", type=int)
    parser.add_argument("--schemas", type=Path, help="directory of the STAC v1.0.0 schemas")
    parser.add_argument("--base-url", help="the base URL of an absolute-published export")
    args = parser.parse_args()
    root = args.export_dir.resolve()
    offline(args.schemas, root, args.base_url)

    failures: list[str] = []
    catalog = pystac.Catalog.from_file(str(root / "catalog.json"))
    counts = {"catalogs": 0, "collections": 0, "items": 0}
    seen: set[tuple[str | None, str]] = set()
    for node, _children, items in catalog.walk():
        kind = "collections" if isinstance(node, pystac.Collection) else "catalogs"
        counts[kind] += 1
        owner = node if isinstance(node, pystac.Collection) else None
        for item in items:
            counts["items"] += 1
            key = (item.collection_id, item.id)
            if key in seen:
                failures.append(f"item {key} reached twice")
            seen.add(key)
            collection = item.get_collection()
            if collection is None or collection.id != item.collection_id:
                failures.append(f"item {key}: its collection link does not lead to its collection")
            if owner is not None and owner.id != item.collection_id:
                failures.append(f"item {key} listed by collection {owner.id}")
    print(
        f"{root}: {counts['catalogs']} catalogs, {counts['collections']} collections, "
        f"{counts['items']} items"
    )
    if counts["items"] != args.expected_items:
        failures.append(f"{counts['items']} items reached, {args.expected_items} expected")
    try:
        validated = catalog.validate_all(recursive=True)
        print(f"validate_all: {validated} items valid (and every catalog and collection)")
    except pystac.errors.STACValidationError as e:
        failures.append(f"validate_all: {e}")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
