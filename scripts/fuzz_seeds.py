#!/usr/bin/env python3
"""Seeds a fuzz corpus from the shared STAC data, at run time (called by scripts/fuzz.sh).

    fuzz_seeds.py DATA_DIR TARGET OUT_DIR [--stacdb BIN] [--cql2-examples DIR]

Nothing here is committed: OUT_DIR is fuzz/corpus/TARGET, which git ignores. Seeds are
named by the SHA-1 of their bytes, as libFuzzer names the inputs it adds.

- document: every .json/.geojson/.ndjson/.jsonl file (gzip too) under fixtures/ and bench/:
  whole files up to 64 KiB, NDJSON lines and FeatureCollection features one by one.
- cql2: the cql2 crate's own examples (text and JSON), the filters of stacdb's tests, and
  filters made from real items (their property values, geometries and datetimes).
- freetext: titles, descriptions and keywords of real items and collections, alone and joined
  with the q operators.
- token: paging tokens made by real searches (stacdb CLI over a bench file), as text and as
  their decoded bytes (what the token target expects).
- query_string: GET /search query strings made from real ids, collections, bboxes, datetimes,
  words and filters, and with the tokens above.
"""

import argparse
import base64
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

MAX_SEED = 64 * 1024
EXTENSIONS = (".json", ".geojson", ".ndjson", ".jsonl")


def ingestible(path: Path) -> bool:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(EXTENSIONS)


def files(data: Path):
    for top in ("fixtures", "bench"):
        for root, dirs, names in os.walk(data / top):
            dirs.sort()
            for name in sorted(names):
                path = Path(root) / name
                if ingestible(path):
                    yield path


def read(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except OSError:
            pass
    return raw


def documents(data: Path, per_file: int = 20):
    """(path, parsed JSON) of items and collections, a few per file."""
    for path in files(data):
        raw = read(path)
        try:
            values = [json.loads(raw)]
        except ValueError:
            values = []
            for line in raw.splitlines()[:per_file]:
                try:
                    values.append(json.loads(line))
                except ValueError:
                    pass
        out = []
        for value in values:
            if isinstance(value, dict) and isinstance(value.get("features"), list):
                out.extend(value["features"][:per_file])
            elif isinstance(value, dict) and isinstance(value.get("collections"), list):
                out.extend(value["collections"][:per_file])
            elif isinstance(value, list):
                out.extend(value[:per_file])
            else:
                out.append(value)
        for value in out[:per_file]:
            if isinstance(value, dict):
                yield path, value


class Corpus:
    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def add(self, seed):
        if isinstance(seed, str):
            seed = seed.encode("utf-8")
        if not seed or len(seed) > MAX_SEED:
            return
        name = self.out / hashlib.sha1(seed).hexdigest()
        if not name.exists():
            name.write_bytes(seed)
            self.count += 1


def seed_document(data: Path, corpus: Corpus):
    for path in files(data):
        raw = read(path)
        if len(raw) <= MAX_SEED:
            corpus.add(raw)
        lines = raw.splitlines()
        if len(lines) > 1:
            for line in lines[:20]:
                corpus.add(line)
        elif len(raw) > MAX_SEED:
            try:
                value = json.loads(raw)
            except ValueError:
                continue
            parts = value.get("features") if isinstance(value, dict) else value
            if isinstance(parts, list):
                for part in parts[:20]:
                    corpus.add(json.dumps(part))


def rust_strings(tests: list, calls):
    """First string literal of each call to one of `calls` in stacdb's test sources."""
    names = "|".join(calls)
    plain = re.compile(r'\b(?:%s)\(\s*"((?:[^"\\]|\\.)*)"' % names)
    raw = re.compile(r'\b(?:%s)\(\s*r#"(.*?)"#' % names, re.S)
    for top in tests:
        for path in sorted(top.rglob("*.rs")):
            text = path.read_text(encoding="utf-8", errors="replace")
            for m in plain.finditer(text):
                yield m.group(1).replace('\\"', '"').replace("\\\\", "\\").replace("\\n", "\n")
            for m in raw.finditer(text):
                yield m.group(1)


def quote_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def cql2_from_items(data: Path):
    rng = random.Random(7)
    for _, doc in documents(data, per_file=3):
        props = doc.get("properties")
        if not isinstance(props, dict):
            continue
        names = sorted(props)
        rng.shuffle(names)
        for name in names[:4]:
            value = props[name]
            prop = '"' + name.replace('"', '""') + '"'
            if isinstance(value, bool):
                yield f"{prop} = {str(value).upper()}"
            elif isinstance(value, (int, float)):
                yield f"{prop} >= {value} AND {prop} < {value * 2 + 1}"
                yield json.dumps({"op": "between", "args": [{"property": name}, value - 1, value + 1]})
            elif isinstance(value, str) and len(value) < 200:
                if name.endswith("datetime"):
                    yield f"{prop} >= TIMESTAMP({quote_text(value)})"
                    yield json.dumps({"op": "t_intersects", "args": [{"property": name}, {"interval": [value, ".."]}]})
                else:
                    yield f"{prop} = {quote_text(value)} OR {prop} LIKE {quote_text(value[:3] + '%')}"
                    yield json.dumps({"op": "=", "args": [{"op": "casei", "args": [{"property": name}]}, {"op": "casei", "args": [value]}]})
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                items = ", ".join(quote_text(v) for v in value[:5])
                yield f"A_OVERLAPS({prop}, ({items}))"
                yield f"{prop} IN ({items})"
        geometry = doc.get("geometry")
        if isinstance(geometry, dict):
            text = json.dumps({"op": "s_intersects", "args": [{"property": "geometry"}, geometry]})
            if len(text) < 4096:
                yield text
        bbox = doc.get("bbox")
        if isinstance(bbox, list) and len(bbox) in (4, 6):
            yield "S_INTERSECTS(geometry, BBOX(%s))" % ", ".join(str(v) for v in bbox)


def seed_cql2(data: Path, corpus: Corpus, examples: Path | None, tests: list):
    if examples and examples.is_dir():
        for path in sorted(examples.rglob("*")):
            if path.is_file() and path.suffix in (".txt", ".json"):
                corpus.add(path.read_bytes().strip())
    for text in rust_strings(tests, ["case", "ids", "error_of", "parse_text"]):
        corpus.add(text)
    for text in cql2_from_items(data):
        corpus.add(text)


def words_from_items(data: Path):
    for _, doc in documents(data, per_file=3):
        props = doc.get("properties") if isinstance(doc.get("properties"), dict) else doc
        for name in ("title", "description"):
            value = props.get(name)
            if isinstance(value, str) and value.strip():
                yield value[:200]
        keywords = props.get("keywords") or doc.get("keywords")
        if isinstance(keywords, list):
            yield from (k for k in keywords[:5] if isinstance(k, str))
        if isinstance(doc.get("id"), str):
            yield doc["id"]


def seed_freetext(data: Path, corpus: Corpus, tests: list):
    rng = random.Random(11)
    words = sorted(set(words_from_items(data)))
    for text in words:
        corpus.add(text)
    single = sorted({w for text in words for w in re.findall(r"\w+", text)})
    forms = ['"{a} {b}"', "{a} AND {b}", "{a} OR ({b} AND NOT {c})", "+{a} -{b}", "{a}, {b}",
             "({a} OR {b}) -{c}", '"{a}" AND ({b} OR {c})']
    for _ in range(300):
        if len(single) < 3:
            break
        a, b, c = rng.sample(single, 3)
        corpus.add(rng.choice(forms).format(a=a, b=b, c=c))
    for text in rust_strings(tests, ["to_fts5", "ok", "err", "error"]):
        corpus.add(text)


def real_tokens(data: Path, stacdb: str):
    """Paging tokens of real searches over a bench file."""
    if not stacdb or not Path(stacdb).exists():
        print(f"fuzz_seeds: no stacdb binary at {stacdb!r}: no token seeds", file=sys.stderr)
        return []
    bench = data / "bench" / "rustac"
    tokens = []
    with tempfile.TemporaryDirectory() as tmp:
        catalog = os.path.join(tmp, "seeds.stacdb")
        subprocess.run([stacdb, "ingest", catalog, str(bench / "sentinel-2-l2a.collection.json"),
                        str(bench / "100-sentinel-2-items.ndjson.gz"), "--create-collections"],
                       check=True, capture_output=True)
        searches = [
            [],
            ["--sortby", "-eo:cloud_cover,id"],
            ["--sortby", "+properties.s2:mgrs_tile", "--filter", "eo:cloud_cover < 50"],
            ["--sortby", "datetime", "--bbox", "-180,-90,180,90"],
            ["--sortby", "-gsd,+platform,-s2:processing_baseline", "--fields", "id"],
            ["--datetime", "2000-01-01T00:00:00Z/..", "--sortby", "-view:sun_elevation"],
        ]
        for extra in searches:
            for limit in ("1", "7"):
                out = subprocess.run([stacdb, "search", catalog, "--format", "json", "--limit", limit]
                                     + extra, check=True, capture_output=True, text=True).stdout
                token = json.loads(out).get("next")
                if token:
                    tokens.append(token)
    return tokens


def seed_token(data: Path, corpus: Corpus, stacdb: str):
    for token in real_tokens(data, stacdb):
        corpus.add(token)
        corpus.add(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def seed_query_string(data: Path, corpus: Corpus, stacdb: str, tests: list):
    rng = random.Random(13)
    enc = urllib.parse.quote
    params = []
    for _, doc in documents(data, per_file=2):
        if isinstance(doc.get("id"), str):
            params.append(("ids", doc["id"]))
        if isinstance(doc.get("collection"), str):
            params.append(("collections", doc["collection"]))
        bbox = doc.get("bbox")
        if isinstance(bbox, list) and len(bbox) in (4, 6):
            params.append(("bbox", ",".join(str(v) for v in bbox)))
        props = doc.get("properties")
        if isinstance(props, dict):
            for name in ("datetime", "start_datetime"):
                if isinstance(props.get(name), str):
                    params.append(("datetime", props[name] + "/.."))
            numbers = [k for k, v in props.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if numbers:
                params.append(("sortby", "-" + numbers[0]))
                params.append(("fields", f"id,properties.{numbers[0]},-assets"))
                params.append(("query", json.dumps({numbers[0]: {"gte": props[numbers[0]]}})))
        geometry = doc.get("geometry")
        if isinstance(geometry, dict) and len(json.dumps(geometry)) < 1000:
            params.append(("intersects", json.dumps(geometry)))
    for text in list(cql2_from_items(data))[:200]:
        params.append(("filter", text))
    for text in list(words_from_items(data))[:100]:
        params.append(("q", text))
    for token in real_tokens(data, stacdb)[:4]:
        params.append(("token", token))
    params += [("limit", "5"), ("limit", "0"), ("limit", "-1"), ("filter-lang", "cql2-text"),
               ("filter-lang", "cql2-json"), ("filter-crs", "http://www.opengis.net/def/crs/OGC/1.3/CRS84")]
    for name, value in params:
        corpus.add(f"{name}={enc(value, safe=',:')}")
    by_name = {}
    for name, value in params:
        by_name.setdefault(name, []).append(value)
    names = sorted(by_name)
    for _ in range(300):
        # A parameter given twice is refused: each combination names each parameter once.
        chosen = rng.sample(names, min(len(names), rng.randint(2, 4)))
        corpus.add("&".join(f"{n}={enc(rng.choice(by_name[n]), safe=',:')}" for n in chosen))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("target")
    parser.add_argument("out", type=Path)
    parser.add_argument("--stacdb", default="")
    parser.add_argument("--cql2-examples", type=Path)
    root = Path(__file__).resolve().parent.parent
    args = parser.parse_args()
    corpus = Corpus(args.out)
    tests = [root / "src", root / "tests"]
    if args.target == "document":
        seed_document(args.data, corpus)
    elif args.target == "cql2":
        seed_cql2(args.data, corpus, args.cql2_examples, tests)
    elif args.target == "freetext":
        seed_freetext(args.data, corpus, tests)
    elif args.target == "token":
        seed_token(args.data, corpus, args.stacdb)
    elif args.target == "query_string":
        seed_query_string(args.data, corpus, args.stacdb, tests)
    else:
        sys.exit(f"fuzz_seeds: unknown target {args.target}")
    print(f"fuzz_seeds: {args.target}: {corpus.count} new seed(s) in {args.out}")


if __name__ == "__main__":
    main()
