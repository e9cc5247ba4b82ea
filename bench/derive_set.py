#!/usr/bin/env python3
"""Writes the "derived" benchmark set: COPIES copies of a gzip NDJSON item file, ids rewritten.

Copy k (k = 0 .. COPIES-1, written in that order, each copy in input order) rewrites every
item's `id` to `<id>-d<k>` and moves its datetimes k years back (properties.datetime,
start_datetime, end_datetime; 29 February becomes 28 February when the target year is not a
leap year), and `naip:year` with them when present. Nothing else changes: every line is
re-serialised compactly with its key order and numbers kept, and the script checks that the
unmodified input round-trips byte for byte, so the derived items are exactly as heavy as the
real ones.

The output is deterministic (gzip level 6, mtime 0, no file name), so its SHA-256 is stable.
Standard library only.

usage: derive_set.py INPUT.ndjson.gz OUTPUT.ndjson.gz [--copies 10]
Prints one JSON line: {"items": N, "uncompressed_bytes": B, "sha256": "..."}.
"""

import argparse
import gzip
import hashlib
import json
import os
import re
import sys

DATETIME_FIELDS = ("datetime", "start_datetime", "end_datetime")
YEAR = re.compile(r"^(\d{4})-(\d{2})-(\d{2})")


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def shift_years(value: str, years: int) -> str:
    m = YEAR.match(value)
    if not m:
        raise ValueError(f"not an RFC 3339 datetime: {value!r}")
    year, month, day = int(m.group(1)) - years, m.group(2), m.group(3)
    if month == "02" and day == "29" and not is_leap(year):
        day = "28"
    return f"{year:04d}-{month}-{day}" + value[10:]


def dumps(doc) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def derive_doc(doc: dict, k: int) -> dict:
    """Copy k of an item: a deep copy (key order kept) with the id and times rewritten."""
    doc = json.loads(json.dumps(doc))
    doc["id"] = f"{doc['id']}-d{k}"
    props = doc.get("properties") or {}
    for field in DATETIME_FIELDS:
        if isinstance(props.get(field), str):
            props[field] = shift_years(props[field], k)
    if isinstance(props.get("naip:year"), str) and props["naip:year"].isdigit():
        props["naip:year"] = str(int(props["naip:year"]) - k)
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--copies", type=int, default=10)
    args = parser.parse_args()

    with gzip.open(args.input, "rt", encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    docs = []
    for n, line in enumerate(lines, 1):
        doc = json.loads(line)
        if dumps(doc) != line:
            sys.exit(f"{args.input}:{n}: does not round-trip through json byte for byte")
        docs.append(doc)

    tmp = args.output + ".tmp"
    digest = hashlib.sha256()
    items = 0
    size = 0
    with open(tmp, "wb") as raw:
        with gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out:
            for k in range(args.copies):
                for doc in docs:
                    data = (dumps(derive_doc(doc, k)) + "\n").encode("utf-8")
                    out.write(data)
                    size += len(data)
                    items += 1
    with open(tmp, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    os.replace(tmp, args.output)
    print(json.dumps({"items": items, "uncompressed_bytes": size, "sha256": digest.hexdigest()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
