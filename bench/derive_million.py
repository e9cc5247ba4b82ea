#!/usr/bin/env python3
"""Writes the "derived-1m" benchmark set: 1,000,000 items derived from every item file in the bench data.

Sources: every NDJSON file (`.ndjson`, `.jsonl`, optionally `.gz`) under the data directory
(default `../shared/data/bench` beside the repository), walked in sorted path order, whose
documents are all STAC Items. Files of Collections are collection sources instead, as are
`.json` files holding a Collection, a list of them or `{"collections": [...]}`. Parquet and
other files are ignored. A file `X.ndjson.gz` is skipped when `X-dedup.ndjson.gz` sits beside
it: in the bench data `openaerialmap.ndjson.gz` has 17,702 rows but only 2,387 distinct ids
(one id is repeated 1,523 times; the repeats are byte-identical), and
`openaerialmap-dedup.ndjson.gz` is exactly those 2,387 distinct rows. Using the full file would
make an ingest fail (`--mode insert`) or silently collapse rows (`upsert`), so the item count
would not be what the set says.

Items that `stacdb ingest` rejects are left out, like duplicates, so that the set ingests
whole without `--skip-invalid`: the only rule the bench data breaks is start_datetime after
end_datetime (7 items of openaerialmap-dedup, each one hour the wrong way round; shifting by
whole years keeps that order, so no copy of a valid item becomes invalid). Their ids are listed
in the summary.

An item without a `collection` is put into a collection named after its source file (the file
name without `.ndjson.gz` etc.). The same (collection, id) in two sources is kept once, from
the first source in path order (in the bench data: 20 Sentinel-2 items are in both
`rustac/100-sentinel-2-items` and `rustac/1000-sentinel-2-items`, differing only in
`stac_version`; the first file's copy is kept).

Copies: copy k = 0, 1, 2, ... writes every kept source item, sources in path order and items in
file order, until exactly --items items are written (the last copy is partial). Copy k
rewrites `id` to `<id>-d<k>` and moves properties.datetime, start_datetime and end_datetime
k years back (29 February becomes 28 February when the target year is not a leap year), and
`naip:year` with them when present: the same rules as derive_set.py, whose helpers this
imports. Other timestamps (`created`, `updated`, `s2:generation_time`, ...) are left alone.
Every other byte of the line is kept exactly as in the source: the changed values are
spliced into the original text (not re-serialised), so escapes such as `\\u00e9` and number
spellings such as `-0.0000659` survive, and derived items are exactly as heavy as the real
ones. The script checks every source item's splice against a plain JSON rewrite.

Collections: the documents of every collection the items use, one per line, written
compactly to --collections (default: OUTPUT with `.ndjson.gz` replaced by
`.collections.ndjson`). When several sources hold a document for the same id, the first in
path order wins (in the bench data: `pgstac/pc-naip.collection.json`, the full Planetary
Computer document, over the 430-byte `naip` entry of `stac-fastapi-geoparquet/collections.json`).
Collections with no document (`landsat-c2-l2`, `sentinel-1-global-mosaics` in the bench data)
are listed under `create_collections` in the summary: ingest with `--create-collections`.

The output is deterministic (gzip level 6, mtime 0, no file name), so its SHA-256 is stable
for a given zlib. Standard library only.

usage: derive_million.py OUTPUT.ndjson.gz [--data DIR] [--items 1000000] [--collections FILE]
Prints one JSON line: items, copies, per-source and per-collection counts, bytes, sha256.
"""

import argparse
import datetime
import gzip
import hashlib
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # importing derive_set must not leave bench/__pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from derive_set import DATETIME_FIELDS, derive_doc, dumps, shift_years  # noqa: E402

NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
WS = re.compile(r"[ \t\n\r]*")
DECODER = json.JSONDecoder()


def read_text(path: str) -> str:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return f.read()


def stem(path: str) -> str:
    name = os.path.basename(path)
    for suffix in NDJSON_SUFFIXES + (".json",):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def members(text: str, start: int):
    """(key, value_start, value_end) of each member of the JSON object at text[start] == '{'."""
    if text[start] != "{":
        raise ValueError("not a JSON object")
    i = WS.match(text, start + 1).end()
    if text[i] == "}":
        return
    while True:
        if text[i] != '"':
            raise ValueError(f"expected a key at offset {i}")
        key, i = json.decoder.scanstring(text, i + 1)
        i = WS.match(text, i).end()
        if text[i] != ":":
            raise ValueError(f"expected ':' at offset {i}")
        i = WS.match(text, i + 1).end()
        _, end = DECODER.raw_decode(text, i)
        yield key, i, end
        i = WS.match(text, end).end()
        if text[i] == "}":
            return
        if text[i] != ",":
            raise ValueError(f"expected ',' or '}}' at offset {i}")
        i = WS.match(text, i + 1).end()


def unique_members(text: str, start: int) -> dict:
    found = {}
    for key, a, b in members(text, start):
        if key in found:
            raise ValueError(f"duplicate key {key!r}")
        found[key] = (a, b)
    return found


class Invalid(ValueError):
    """An item stacdb would reject; it is left out of the set."""


def start_after_end(start: str, end: str) -> bool:
    try:
        a, b = (datetime.datetime.fromisoformat(v.replace("Z", "+00:00").replace("z", "+00:00"))
                for v in (start, end))
    except ValueError:
        return False  # not for this script to judge; stacdb ingest will
    a, b = (v if v.tzinfo else v.replace(tzinfo=datetime.timezone.utc) for v in (a, b))
    return a > b


class Template:
    """A source line cut at the values a copy changes: text, slot, text, slot, ..., text."""

    def __init__(self, line: str, default_collection: str):
        top = unique_members(line, 0)
        doc = json.loads(line)
        if not isinstance(doc.get("id"), str):
            raise ValueError("the item has no string id")
        cuts = [(top["id"][0], top["id"][1], ("id", doc["id"]))]
        props = doc.get("properties")
        if isinstance(props, dict):
            start, end = props.get("start_datetime"), props.get("end_datetime")
            if isinstance(start, str) and isinstance(end, str) and start_after_end(start, end):
                raise Invalid(f"start_datetime {start} is after end_datetime {end}")
        if "properties" in top and isinstance(props, dict):
            pspans = unique_members(line, top["properties"][0])
            for field in DATETIME_FIELDS:
                if isinstance(props.get(field), str):
                    a, b = pspans[field]
                    cuts.append((a, b, ("datetime", props[field])))
            year = props.get("naip:year")
            if isinstance(year, str) and year.isdigit():
                a, b = pspans["naip:year"]
                cuts.append((a, b, ("year", year)))
        self.collection = doc.get("collection")
        if not isinstance(self.collection, str):
            if "collection" in top:
                raise ValueError("`collection` is not a string")
            self.collection = default_collection
            # Insert the member just before the closing brace.
            end = len(line) - 1
            cuts.append((end, end, ("raw", "," + dumps("collection") + ":" + dumps(self.collection))))
            doc["collection"] = self.collection
        cuts.sort()
        self.parts = []
        pos = 0
        for a, b, slot in cuts:
            self.parts.append(line[pos:a])
            self.parts.append(slot)
            pos = b
        self.parts.append(line[pos:])
        self.id = doc["id"]
        self.doc = doc

    def render(self, k: int) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            kind, value = part
            if kind == "id":
                out.append(dumps(f"{value}-d{k}"))
            elif kind == "datetime":
                out.append(dumps(shift_years(value, k)))
            elif kind == "year":
                out.append(dumps(str(int(value) - k)))
            else:
                out.append(value)
        return "".join(out)


def collection_docs(path: str, text: str) -> list:
    """The Collection documents in a .json file, or None when it holds none."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("collections"), list):
        value = value["collections"]
    if isinstance(value, dict):
        value = [value]
    if isinstance(value, list) and value and all(
        isinstance(c, dict) and c.get("type") == "Collection" for c in value
    ):
        return value
    return None


def scan(data: str):
    """(item sources, collection documents by id, skipped files) under data, in path order."""
    paths = []
    for dirpath, dirnames, filenames in os.walk(data):
        dirnames.sort()
        paths.extend(os.path.join(dirpath, name) for name in sorted(filenames))
    paths.sort(key=lambda p: os.path.relpath(p, data))
    names = set(paths)
    item_sources = []
    collections = {}
    skipped = {}
    for path in paths:
        rel = os.path.relpath(path, data)
        name = os.path.basename(path)
        if name.endswith(NDJSON_SUFFIXES):
            suffix = next(s for s in NDJSON_SUFFIXES if name.endswith(s))
            dedup = path[: -len(suffix)] + "-dedup" + suffix
            if dedup in names:
                skipped[rel] = f"superseded by {os.path.relpath(dedup, data)} (duplicate ids)"
                continue
            lines = [line.strip() for line in read_text(path).split("\n")]
            lines = [line for line in lines if line]
            types = {json.loads(line).get("type") for line in lines}
            if types == {"Feature"}:
                item_sources.append((rel, lines))
            elif types == {"Collection"}:
                for line in lines:
                    doc = json.loads(line)
                    collections.setdefault(doc["id"], (rel, doc))
            else:
                sys.exit(f"{rel}: documents of types {sorted(map(str, types))}; expected Items or Collections")
        elif name.endswith((".json", ".json.gz")):
            docs = collection_docs(path, read_text(path))
            if docs is None:
                skipped[rel] = "not a collection document"
                continue
            for doc in docs:
                collections.setdefault(doc["id"], (rel, doc))
    return item_sources, collections, skipped


def main() -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the item file to write (.ndjson.gz)")
    parser.add_argument(
        "--data",
        default=os.environ.get("STACDB_BENCH_ROOT", os.path.join(root, "..", "shared", "data", "bench")),
        help="the bench data directory (default: $STACDB_BENCH_ROOT or ../shared/data/bench)",
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--collections", help="the collections file to write (NDJSON)")
    args = parser.parse_args()
    if args.items < 1:
        sys.exit("--items must be positive")
    collections_out = args.collections or re.sub(r"(\.ndjson)?(\.gz)?$", "", args.output) + ".collections.ndjson"

    sources, collection_by_id, skipped = scan(args.data)
    if not sources:
        sys.exit(f"no item files under {args.data}")

    seen = set()
    templates = []  # (source, Template), in output order within a copy
    per_source = {}
    for rel, lines in sources:
        kept = dropped = 0
        invalid = {}
        for n, line in enumerate(lines, 1):
            try:
                t = Template(line, stem(rel))
            except Invalid as e:
                invalid[json.loads(line)["id"]] = str(e)
                continue
            except ValueError as e:
                sys.exit(f"{rel}:{n}: {e}")
            if (t.collection, t.id) in seen:
                dropped += 1
                continue
            seen.add((t.collection, t.id))
            templates.append((rel, t))
            kept += 1
        per_source[rel] = {"rows": len(lines), "kept": kept, "duplicates_dropped": dropped,
                         "invalid_dropped": invalid, "written": 0}

    copies = -(-args.items // len(templates))
    # Check every splice against the plain rewrite, for the first and the last copy.
    for rel, t in templates:
        for k in sorted({1, copies - 1}):
            if json.loads(t.render(k)) != derive_doc(t.doc, k):
                sys.exit(f"{rel}: item {t.id!r}: the spliced copy {k} differs from the JSON rewrite")

    per_collection = {}
    tmp = args.output + ".tmp"
    digest = hashlib.sha256()
    items = size = 0
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out:
            for k in range(copies):
                batch = []
                for rel, t in templates:
                    if items == args.items:
                        break
                    batch.append(t.render(k))
                    batch.append("\n")
                    per_source[rel]["written"] += 1
                    per_collection[t.collection] = per_collection.get(t.collection, 0) + 1
                    items += 1
                data = "".join(batch).encode("utf-8")
                out.write(data)
                size += len(data)
    with open(tmp, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    os.replace(tmp, args.output)

    used = sorted(per_collection)
    missing = [c for c in used if c not in collection_by_id]
    lines = "".join(dumps(collection_by_id[c][1]) + "\n" for c in used if c in collection_by_id)
    with open(collections_out + ".tmp", "w", encoding="utf-8") as f:
        f.write(lines)
    os.replace(collections_out + ".tmp", collections_out)

    print(json.dumps({
        "items": items,
        "uncompressed_bytes": size,
        "gzip_bytes": os.path.getsize(args.output),
        "sha256": digest.hexdigest(),
        "copies": copies,
        "items_per_copy": len(templates),
        "last_copy_items": items - (copies - 1) * len(templates),
        "years_shifted": [0, copies - 1],
        "sources": per_source,
        "skipped_files": skipped,
        "collections": {
            c: {"items": per_collection[c], "document": collection_by_id[c][0] if c in collection_by_id else None}
            for c in used
        },
        "collections_file": collections_out,
        "collections_sha256": hashlib.sha256(lines.encode("utf-8")).hexdigest(),
        "create_collections": missing,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
