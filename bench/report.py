#!/usr/bin/env python3
"""Summarises the runs bench/ingest.sh recorded: medians, a markdown table, RESULTS.md.

usage: report.py RUNS.tsv MACHINE.json [--write bench/RESULTS.md]

Prints the markdown section. With --write, replaces the text between the BEGIN/END markers
in RESULTS.md with it (the rest of the file is kept), or creates the file.
"""

import argparse
import csv
import json
import statistics
from collections import defaultdict
from pathlib import Path

BEGIN = "<!-- BEGIN bench/ingest.sh output: generated, edits here are overwritten -->"
END = "<!-- END bench/ingest.sh output -->"

PASSES = {
    "gunzip": "gunzip + split lines, 1 thread (input cost only)",
    "parse": "**floor**: gunzip + `serde_json::from_slice::<Value>` per line, 1 thread",
    "parse-par": "gunzip on 1 thread, parse on all cores (rayon)",
    "normalize-par": "parse + `stacdb::document::documents`, all cores (ingest minus SQLite)",
    "ingest": "**`stacdb ingest`** into a fresh file (collections.json + the set)",
    "ingest-existing": "`stacdb ingest` into an existing empty catalog (`stacdb init` first, untimed): the WAL path every later ingest takes",
}
SETS = {
    "naip": "naip: 10,000 real NAIP items (`naip.ndjson.gz`)",
    "derived": "derived: 100,000 items derived from naip (`naip-100k.ndjson.gz`, ids `<id>-d<k>`)",
}
PGSTAC_SECONDS = 11.8
PGSTAC_KB_PER_ITEM = 2.3
TARGET_ITEMS_PER_S = 50_000
TARGET_FLOOR_RATIO = 3.0


def run_header(begin: str, meta: dict) -> list:
    """The opening lines of a generated results section: the marker, the command, and what
    the run ran on (shared by bench/ingest.sh and bench/search.sh)."""
    return [
        begin,
        "",
        f"Command (from the repository root): `{meta['command']}`",
        "",
        f"* Date: {meta['date']}; commit {meta['commit']}",
        f"* Machine: {meta['cpu']}, nproc {meta['nproc']}, {meta['memory']}, Linux {meta['kernel']}",
        f"* Load average (1/5/15 min) before: {meta['load_before']}; after: {meta['load_after']}",
        f"* {meta['rustc']}; bundled SQLite {meta['sqlite']}; release profile",
    ]


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tsv")
    parser.add_argument("meta")
    parser.add_argument("--write")
    args = parser.parse_args()
    meta = json.load(open(args.meta))
    rows = defaultdict(list)
    with open(args.tsv) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            rows[(r["set"], r["pass"])].append(r)

    out = run_header(BEGIN, meta)
    w = out.append
    w(f"* {meta['runs']} runs of each pass, round-robin; each ingest into a fresh file. "
      "Times are wall-clock seconds around the whole process (`date +%s.%N`), so they include "
      "start-up, schema creation, the commit, the fsyncs and (into an existing catalog) the WAL checkpoint at close.")
    w("* MB/s = uncompressed NDJSON bytes of the item set / wall seconds (1 MB = 10^6 bytes). "
      "items/s and MB/s are computed from the median time.")
    w(f"* On disk after an ingest exits: `{meta['on_disk_after_ingest']}` (bytes, name)")
    w("")

    summary = {}
    for set_, label in SETS.items():
        if not any(k[0] == set_ for k in rows):
            continue
        info = meta["sets"][set_]
        items, size = info["items"], info["uncompressed_bytes"]
        w(f"### {label}")
        w("")
        w(f"{fmt_int(items)} items, {size / 1e6:.1f} MB uncompressed "
          f"({size / items:,.0f} bytes/item), sha256 of the .gz `{info['sha256'][:16]}…`")
        w("")
        w("| pass | what | median s | min–max s | items/s | MB/s | CPU s (user+sys) | × floor |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        floor = None
        if rows.get((set_, "parse")):
            floor = statistics.median(float(r["wall"]) for r in rows[(set_, "parse")])
        for pass_, what in PASSES.items():
            rs = rows.get((set_, pass_))
            if not rs:
                continue
            walls = [float(r["wall"]) for r in rs]
            med = statistics.median(walls)
            cpu = statistics.median(float(r["user"]) + float(r["sys"]) for r in rs)
            ratio = f"{med / floor:.2f}" if floor else "–"
            w(f"| {pass_} | {what} | {med:.3f} | {min(walls):.3f}–{max(walls):.3f} | "
              f"{fmt_int(items / med)} | {size / 1e6 / med:.0f} | {cpu:.2f} | {ratio} |")
            summary[(set_, pass_)] = med
        w("")
        ing = rows.get((set_, "ingest"))
        if ing:
            fb = statistics.median(int(r["file_bytes"]) for r in ing)
            inner = statistics.median(float(r["inner"]) for r in ing)
            rss = statistics.median(int(r["max_rss_kb"]) for r in ing)
            w(f"Ingest: file size {fb / 1e6:.1f} MB = **{fb / items / 1000:.2f} kB/item** "
              f"({fb / items:,.0f} bytes/item, 1 kB = 1000 bytes; database + WAL after exit); "
              f"the report's own `elapsed` (median) {inner:.3f} s; peak RSS {rss / 1024:.0f} MiB.")
            summary[(set_, "file_per_item")] = fb / items
            w("")

    if ("derived", "ingest") in summary:
        med = summary[("derived", "ingest")]
        ips = 100_000 / med
        w("### Targets (derived 100k set)")
        w("")
        w("| target | measured | met? |")
        w("|---|---|---|")
        w(f"| ≥ {TARGET_ITEMS_PER_S:,} items/s | {fmt_int(ips)} items/s ({med:.2f} s) | "
          f"{'yes' if ips >= TARGET_ITEMS_PER_S else '**no**'} |")
        if ("derived", "parse") in summary:
            ratio = med / summary[("derived", "parse")]
            w(f"| ingest ≤ {TARGET_FLOOR_RATIO:g}× the parse-only floor (1 thread) | "
              f"{ratio:.2f}× ({med:.2f} s vs {summary[('derived', 'parse')]:.2f} s) | "
              f"{'yes' if ratio <= TARGET_FLOOR_RATIO else '**no**'} |")
        if ("derived", "parse-par") in summary:
            ratio = med / summary[("derived", "parse-par")]
            w(f"| (for information) ingest vs the parallel parse | {ratio:.2f}× | |")
        per_item = summary.get(("derived", "file_per_item"))
        w(f"| reference: pgstac loader, from the issue (not measured here) | "
          f"{PGSTAC_SECONDS} s ≈ {fmt_int(100_000 / PGSTAC_SECONDS)} items/s, "
          f"{PGSTAC_KB_PER_ITEM} kB/item | stacdb: {PGSTAC_SECONDS / med:.1f}× pgstac's speed"
          + (f", {per_item / 1000:.2f} kB/item |" if per_item else " |"))
        w("")
    w(END)
    section = "\n".join(out) + "\n"
    print(section)

    if args.write:
        path = Path(args.write)
        if path.exists():
            text = path.read_text()
            if BEGIN in text and END in text:
                head, rest = text.split(BEGIN, 1)
                tail = rest.split(END, 1)[1].lstrip("\n")
                text = head + section + ("\n" + tail if tail else "")
            else:
                text = text.rstrip("\n") + "\n\n" + section
        else:
            text = "# Ingest benchmark results\n\n" + section
        path.write_text(text)


if __name__ == "__main__":
    main()
