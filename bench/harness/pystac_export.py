"""pystac's side of the export benchmark: a self-contained static catalog of N items.

usage: pystac_export.py COLLECTION.json ITEMS.ndjson OUT_DIR N

Reads the collection and the first N items into pystac objects (untimed), then times what a
pystac user does to write them: Collection.add_items, Catalog.normalize_hrefs and
Catalog.save(CatalogType.SELF_CONTAINED). Prints {"items": N, "seconds": S}."""

import json
import sys
import time

import pystac


def main() -> None:
    collection_path, items_path, out, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    collection_doc = json.load(open(collection_path))
    collection_doc["links"] = []
    collection = pystac.Collection.from_dict(collection_doc)
    items = []
    with open(items_path) as f:
        for line in f:
            if len(items) == n:
                break
            doc = json.loads(line)
            doc["links"] = []
            items.append(pystac.Item.from_dict(doc))
    root = pystac.Catalog(id="bench", description="pystac export benchmark")
    root.add_child(collection)
    t0 = time.perf_counter()
    collection.add_items(items)
    root.normalize_hrefs(out)
    root.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    seconds = time.perf_counter() - t0
    print(json.dumps({"items": len(items), "seconds": seconds}))


if __name__ == "__main__":
    main()
