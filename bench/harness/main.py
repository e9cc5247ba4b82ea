"""bench/run: stacdb side by side with its peers, on the same data, in the same run.

Started by bench/run (which builds stacdb in release mode and installs the peers); see
bench/README.md ("The harness"). Writes the generated part of bench/RESULTS.md and the raw
figures to bench/work/harness-<date>.json."""

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import areas
from common import BENCH, WORK, log, machine, load_average, stop_all
from peers import Postgres, data_sets, ensure_catalog, prepare

BEGIN = "<!-- BEGIN bench/run output: generated, edits here are overwritten -->"
END = "<!-- END bench/run output -->"
AREAS = ["ingest", "search", "http", "export", "size"]


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="the 10k set only, fewer and shorter runs (under 10 minutes)")
    parser.add_argument("--only", action="append", choices=AREAS,
                        help="run only this area (repeatable); the other tables keep their last figures")
    parser.add_argument("--million", action="store_true",
                        help="also the derived 1,000,000-item set, in ingest, search, export and"
                             " size (3 runs of each figure, no warm-up: about 30 minutes more)")
    parser.add_argument("--runs", type=int, help="timed runs per figure (default 5, quick 3)")
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave RESULTS.md alone")
    args = parser.parse_args()

    quick = args.quick
    settings = {
        "quick": quick,
        "runs": args.runs or (3 if quick else 5),
        # wrk: seconds per timed run and for the warm-up
        "load_seconds": 3 if quick else 8,
        "warmup_seconds": 1 if quick else 3,
        "search_runs": 10 if quick else 30,
        "pystac_items": 2000 if quick else 10000,
        # pystac needs minutes for 10,000 items: fewer runs of it
        "pystac_runs": 2 if quick else 3,
        # the 1M set: a load takes minutes, so 3 runs and no warm-up
        "big_runs": 3,
        "big_search_runs": 10,
    }
    if args.million and quick:
        parser.error("--million and --quick do not go together")
    only = args.only or AREAS
    command = ("bench/run" + (" --quick" if quick else "") + (" --million" if args.million else "")
               + "".join(f" --only {a}" for a in args.only or []))
    meta = machine()
    meta["command"] = command
    log(f"{command}: {meta['cpu']}, load {meta['load_before']}")

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    pg = Postgres()
    sections = {}
    raw = {"meta": meta, "settings": settings, "areas": {}}
    try:
        pg.start()
        sets = data_sets(quick, args.million)
        for ds in sets.values():
            prepare(ds)
            ensure_catalog(ds)
            pg.ensure_loaded(ds)
        # The big set serves the search and server cases when there is one.
        serving = sets.get("naip-100k") or sets["naip-10k"]
        small = sets["naip-10k"]
        for area in only:
            t0 = time.monotonic()
            log(f"== {area}")
            if area == "ingest":
                md, data = areas.ingest(list(sets.values()), pg, settings)
            elif area == "search":
                md, data = areas.search(serving, pg, settings)
                big = sets.get("derived-1m")
                if big is not None:
                    md_big, data_big = areas.search(big, pg, settings)
                    md, data = md + "\n" + md_big, {serving.name: data, big.name: data_big}
            elif area == "http":
                md, data = areas.http(serving, pg, settings)
            elif area == "export":
                md, data = areas.export(list(sets.values()), settings)
            elif area == "size":
                md, data = areas.size(list(sets.values()), pg)
            # Each table says which run made it, since --only keeps the others' tables.
            sections[area] = (f"_From `{command}` on {meta['date']}, commit {meta['commit']}"
                              f"{' (with local changes)' if meta['dirty'] else ''}, on {meta['cpu']}"
                              f" ({meta['nproc']} cores, {meta['memory']}), load before"
                              f" {meta['load_before']}._\n\n" + md)
            raw["areas"][area] = data
            log(f"== {area} done in {time.monotonic() - t0:.0f} s")
    except KeyboardInterrupt:
        log("interrupted: stopping everything started")
        return 130
    finally:
        stop_all()
        pg.stop()

    meta["load_after"] = load_average()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (WORK / f"harness-{stamp}.json").write_text(json.dumps(raw, indent=1))
    text = render(meta, settings, sections, previous=read_previous())
    print(text)
    if not args.no_write:
        write(text)
    return 0


def read_previous() -> dict:
    """The tables of the last run, by area, so that --only keeps the others."""
    path = BENCH / "RESULTS.md"
    if not path.exists():
        return {}
    text = path.read_text()
    if BEGIN not in text:
        return {}
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    out = {}
    for part in body.split("<!-- area: ")[1:]:
        name, rest = part.split(" -->", 1)
        out[name] = rest.strip("\n")
    return out


def render(meta, settings, sections, previous) -> str:
    lines = [
        BEGIN,
        "",
        f"Command (from the repository root): `{meta['command']}`",
        "",
        f"* Date: {meta['date']}; commit {meta['commit']}{' (with local changes)' if meta['dirty'] else ''}",
        f"* Machine: {meta['cpu']}, nproc {meta['nproc']}, {meta['memory']}, Linux {meta['kernel']}; {meta['rustc']}",
        f"* Load average (1/5/15 min) before: {meta['load_before']}; after: {meta['load_after']}",
        f"* Method: a warm-up, then {settings['runs']} timed runs of every figure, the systems"
        " alternating run by run (A then B); the table gives medians and min–max, and each"
        " ratio is the median of the run-by-run ratios. Every search is checked first: the"
        " peer must return the same ids (and counts) as stacdb, or the row says how it differs"
        " and the peer is not timed.",
        "",
    ]
    for area in AREAS:
        body = sections.get(area)
        if body is None and area in previous:
            body = previous[area]
            body = body.replace("(kept from an earlier run)\n\n", "")
        if body is None:
            continue
        lines.append(f"<!-- area: {area} -->")
        lines.append(body)
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write(text: str) -> None:
    path = BENCH / "RESULTS.md"
    old = path.read_text() if path.exists() else "# Benchmark results\n\n"
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        new = head + text + tail
    else:
        # The harness's tables come first, after the title.
        first, _, rest = old.partition("\n")
        new = first + "\n\n" + text + "\n\n" + rest.lstrip("\n")
    path.write_text(new)
    log(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
