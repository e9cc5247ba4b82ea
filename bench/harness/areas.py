"""The cases of each area. Each function runs its cases and returns (markdown, raw figures)."""

import json
import os
import shutil
import statistics
import subprocess
import time
import urllib.parse
from pathlib import Path

from common import (BENCH, STACDB, TARGET, WORK, Series, fmt_ms, fmt_rate, fmt_ratio, http_json, timed_rss,
                    log, paired_ratio, run, timed, venv_bin)
from httpload import wrk
from peers import (DataSet, Postgres, pgstac_server, rustac_server, stacdb_server)

PARSE_FLOOR = TARGET / "release" / "examples" / "parse_floor"
SEARCH_BENCH = TARGET / "release" / "examples" / "search_bench"


def header(title: str, ds_label: str) -> list:
    return [f"### {title}", "", f"Data: {ds_label}.", ""]


def remove_catalog(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


# --- ingest -----------------------------------------------------------------------------------


def ingest(sets: list, pg: Postgres, settings: dict):
    lines = ["### Ingest", ""]
    lines.append(
        "Wall seconds of a whole load into an empty store. stacdb: `stacdb ingest` into a new"
        " file (the collections and the gzip NDJSON). pgstac: `pypgstac load items --method insert`"
        " of the same items as plain NDJSON into a freshly migrated database (the migration and"
        " the collections are not timed). Floor: one thread that only decompresses and parses"
        " every line with serde_json (`examples/parse_floor.rs`)."
    )
    big = [ds.name for ds in sets if ds.big]
    if big:
        lines[-1] += (f" {', '.join(big)}: {settings['big_runs']} runs without a warm-up (a pgstac load"
                      " takes minutes); the rest: a warm-up and " f"{settings['runs']} runs.")
    lines.append("")
    lines.append("| set | items | stacdb s | pgstac s | × vs pgstac | floor s | stacdb ÷ floor | stacdb items/s |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    raw = {}
    for ds in sets:
        n = ds.count()
        target = WORK / "bench-ingest.stacdb"
        a, b, f = Series(), Series(), Series()
        scratch = "bench_ingest_scratch"
        # The 1M set: each load takes minutes, so fewer runs and no warm-up.
        first = 1 if ds.big else 0
        for i in range(first, (settings["big_runs"] if ds.big else settings["runs"]) + 1):
            remove_catalog(target)
            t_a = timed([str(STACDB), "ingest", str(target), str(ds.collections_json), str(ds.items_gz)],
                        stdout=subprocess.DEVNULL)
            pg.recreate(scratch)
            t_b = pg.load(ds, scratch)
            t_f = timed([str(PARSE_FLOOR), "parse", str(ds.items_gz)], stdout=subprocess.DEVNULL)
            if i == 0:
                continue  # the warm-up
            a.add(t_a)
            b.add(t_b)
            f.add(t_f)
            log(f"ingest {ds.name} run {i}: stacdb {t_a:.2f} s, pgstac {t_b:.2f} s, floor {t_f:.2f} s")
        remove_catalog(target)
        pg.psql("postgres", f"DROP DATABASE IF EXISTS {scratch} WITH (FORCE)")
        ratio = paired_ratio(a, b, higher_is_better=False)
        floor_ratio = statistics.median(x / y for x, y in zip(a.values, f.values))
        s = lambda x: f"{x:.2f}"
        lines.append(
            f"| {ds.name} | {n:,} | {s(a.median)} ({a.span(s)}) | {s(b.median)} ({b.span(s)}) | "
            f"**{fmt_ratio(ratio)}** | {s(f.median)} | {floor_ratio:.2f} | {fmt_rate(n / a.median)} |"
        )
        raw[ds.name] = {"items": n, "stacdb": a.values, "pgstac": b.values, "floor": f.values}
    lines.append("")
    return "\n".join(lines), raw


# --- search latency ---------------------------------------------------------------------------


def _searches_file(ds: DataSet) -> Path:
    """The fixed searches of a set: bench/searches/<set>.json."""
    return BENCH / "searches" / f"{ds.name}.json"


def _cli_args(search: dict) -> list:
    """The `stacdb search` options for a STAC API search body."""
    out = []
    for key, value in search.items():
        if key == "bbox":
            out += ["--bbox", ",".join(str(v) for v in value)]
        elif key in ("datetime", "q"):
            out += [f"--{key}", value if isinstance(value, str) else " ".join(value)]
        elif key in ("ids", "collections"):
            out += [f"--{key}", ",".join(value)]
        elif key == "intersects":
            out += ["--intersects", json.dumps(value)]
        elif key == "filter":
            out += ["--filter", value if isinstance(value, str) else json.dumps(value)]
        elif key == "filter-lang":
            out += ["--filter-lang", value]
        elif key == "query":
            out += ["--query", json.dumps(value)]
        elif key == "sortby":
            out += ["--sortby", ",".join(("-" if s.get("direction") == "desc" else "+") + s["field"]
                                         for s in value)]
        elif key == "fields":
            out += ["--fields", ",".join(value.get("include", []) + ["-" + f for f in value.get("exclude", [])])]
        elif key == "limit":
            out += ["--limit", str(value)]
        else:
            raise ValueError(f"no CLI option for {key}")
    return out


def _page(url: str, body: dict, pages: int):
    """POSTs a search and follows `next` links to the page asked for; returns (the body that
    gets that page, the page)."""
    page = http_json(url + "/search", body)
    for _ in range(pages - 1):
        nxt = next((l for l in page.get("links", []) if l.get("rel") == "next"), None)
        if nxt is None:
            return None, page
        if nxt.get("method", "GET") == "POST":
            body = dict(body, **nxt.get("body", {})) if nxt.get("merge") else nxt.get("body", body)
            page = http_json(nxt["href"], body)
        else:
            # A GET next link: time that URL.
            body = {"__get__": nxt["href"]}
            page = http_json(nxt["href"])
    return body, page


def _request(url: str, body: dict):
    if "__get__" in body:
        return http_json(body["__get__"])
    return http_json(url + "/search", body)


def _time_http(url: str, body: dict, runs: int) -> Series:
    s = Series()
    _request(url, body)
    for _ in range(runs):
        t0 = time.perf_counter()
        _request(url, body)
        s.add((time.perf_counter() - t0) * 1e3)
    return s


def _as_json_filter(body: dict) -> dict:
    """The search with a cql2-text filter written as cql2-json (by the cql2 package, the same
    parser stacdb uses): stac-fastapi-pgstac takes only cql2-json in a POST body, so both
    servers get the JSON form."""
    if isinstance(body.get("filter"), str):
        import cql2

        body = dict(body)
        body["filter"] = cql2.parse_text(body["filter"]).to_json()
        body["filter-lang"] = "cql2-json"
    return body


def search(ds: DataSet, pg: Postgres, settings: dict):
    cases = json.loads(_searches_file(ds).read_text())
    runs = settings["big_search_runs"] if ds.big else settings["search_runs"]
    lib = json.loads(run([str(SEARCH_BENCH), str(ds.catalog), str(_searches_file(ds)), "--runs", str(runs),
                          "--json"], capture_output=True, text=True).stdout)
    lib = {row["name"]: row for row in lib}
    ours = stacdb_server(ds).start()
    theirs = pgstac_server(ds).start()
    lines = header("Search latency" + (f": {ds.name}" if ds.big else ""), ds.label)
    lines.append(
        f"Milliseconds for one search, median of {runs} (after one untimed), one at a time. Library:"
        " `examples/search_bench.rs` in process. CLI: a whole `stacdb search --format json`"
        " (or `stacdb count`) process. HTTP: POST /search (the page asked for reached by"
        " following `next`; a cql2-text filter sent as its cql2-json form, which is all"
        " stac-fastapi-pgstac takes in a POST) against `stacdb serve` and stac-fastapi-pgstac over the same items;"
        " × = pgstac's HTTP time ÷ stacdb's. Counts: stacdb's exact numberMatched, checked"
        " against pgstac's `search()` with context on."
    )
    lines.append("")
    lines.append("| search | matched | library ms | CLI ms | HTTP ms | pgstac HTTP ms | × | check |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---|")
    raw = {}
    try:
        for case in cases:
            name, body = case["name"], _as_json_filter(case["search"])
            count_only = case.get("count_only", False)
            pages = case.get("page", 1)
            if count_only:
                body["limit"] = 1
            matched = lib.get(name, {}).get("matched")
            # The check: same ids on the page, same count.
            check = "same ids and count"
            ok = True
            try:
                our_body, our_page = _page(ours.url, body, pages)
                their_body, their_page = _page(theirs.url, body, pages)
                our_ids = [f["id"] for f in our_page["features"]]
                their_ids = [f["id"] for f in their_page["features"]]
                their_count = pg.count(ds.database, _as_json_filter(case["search"]))
                if our_ids != their_ids:
                    ok = False
                    check = (f"ids differ ({len(set(our_ids) & set(their_ids))} of {len(our_ids)} shared; "
                             "pgstac not timed)")
                elif our_page.get("numberMatched") != their_count:
                    ok = False
                    check = f"count differs: pgstac {their_count:,} (not timed)"
            except Exception as e:  # a peer's refusal is a result too
                ok = False
                check = f"pgstac refused it: {str(e)[:80]}"
                our_body, _ = _page(ours.url, body, pages)
            cli = Series()
            argv = [str(STACDB), "count" if count_only else "search", str(ds.catalog)]
            cli_search = dict(case["search"])
            if count_only:
                cli_search.pop("limit", None)
            argv += _cli_args(cli_search) + ([] if count_only else ["--format", "json"])
            if pages == 1:
                run(argv, stdout=subprocess.DEVNULL)
                for _ in range(max(3, runs // 3)):
                    cli.add(timed(argv, stdout=subprocess.DEVNULL) * 1e3)
            a = _time_http(ours.url, our_body, runs)
            b = _time_http(theirs.url, their_body, runs) if ok else Series()
            ratio = statistics.median(b.values) / statistics.median(a.values) if ok else float("nan")
            lib_ms = lib.get(name, {}).get("p50_ms", float("nan"))
            lines.append(
                f"| {name} | {matched if matched is not None else '–':,} | {fmt_ms(lib_ms)} | "
                f"{fmt_ms(cli.median) if cli.values else '–'} | {fmt_ms(a.median)} | "
                f"{fmt_ms(b.median) if ok else '–'} | {fmt_ratio(ratio) if ok else '–'} | {check} |"
            )
            raw[name] = {"matched": matched, "library_ms": lib_ms, "cli_ms": cli.values,
                         "http_ms": a.values, "pgstac_http_ms": b.values, "check": check}
            log(f"search {name}: lib {lib_ms:.2f} ms, http {a.median:.2f} ms, pgstac {b.median:.2f} ms; {check}")
    finally:
        ours.stop()
        theirs.stop()
    lines.append("")
    return "\n".join(lines), raw


# --- the server under load --------------------------------------------------------------------


def _http_cases(ds: DataSet) -> list:
    """The four requests of the server benchmark, for this data set."""
    year = "2021" if ds.name == "naip-10k" else "2016"
    first_id = json.loads(ds.items_ndjson.open().readline())["id"]
    return [
        {"name": "GET /search bbox+datetime, limit 10", "kind": "get",
         "path": f"/search?bbox=-105.1,39.6,-104.8,39.9&datetime={year}-01-01T00:00:00Z/{year}-12-31T23:59:59Z&limit=10"},
        {"name": "POST /search CQL2 `gsd < 1`, limit 10", "kind": "post", "path": "/search",
         "body": {"filter-lang": "cql2-json", "filter": {"op": "<", "args": [{"property": "gsd"}, 1]}, "limit": 10}},
        {"name": "GET one item", "kind": "get", "path": f"/collections/{ds.collection}/items/{urllib.parse.quote(first_id)}"},
        {"name": "GET /collections/{id}/items, page 20", "kind": "deep",
         "path": f"/collections/{ds.collection}/items?limit=10", "pages": 20},
    ]


def _resolve(service, case) -> tuple:
    """The URL (and body) to load for a case on one server, and the answer it gives."""
    if case["kind"] == "deep":
        url = service.url + case["path"]
        page = http_json(url)
        for _ in range(case["pages"] - 1):
            url = next(l["href"] for l in page["links"] if l["rel"] == "next")
            page = http_json(url)
        return url, None, page
    url = service.url + case["path"]
    body = case.get("body")
    return url, body, http_json(url, body)


def _answer(page: dict):
    if page.get("type") == "Feature":
        return [page["id"]], page.get("properties")
    return [f["id"] for f in page.get("features", [])], None


def http(ds: DataSet, pg: Postgres, settings: dict):
    runs, secs, warm = settings["runs"], settings["load_seconds"], settings["warmup_seconds"]
    servers = [stacdb_server(ds), pgstac_server(ds), rustac_server(ds)]
    cold = {}
    for s in servers:
        s.start(timeout=600)
        cold[s.name] = s.ready_after
    ours = servers[0]
    cases = _http_cases(ds)
    raw = {"cold_start_s": cold, "cases": []}
    lines = header("Server under load", ds.label)
    lines.append(
        f"wrk on loopback, {secs} s per run, {runs} runs after a {warm} s warm-up, the servers"
        " taking turns run by run. req/s and p50/p99 latency in ms at 1 client (1 thread) and 8"
        " clients (2 threads). stacdb: `stacdb serve` (defaults). pgstac: stac-fastapi-pgstac 7.2"
        " on pgstac 0.10, uvicorn with one worker. rustac: `rustac serve` over the same NDJSON"
        " (its in-memory backend). × = stacdb ÷ peer for req/s, peer ÷ stacdb for p50. A peer"
        " whose answer differs from stacdb's (ids, or an error) is not timed: the row says why."
    )
    lines.append("")
    lines.append("| request | clients | stacdb req/s | p50 | p99 | pgstac req/s | p50 | p99 | × req/s | × p50 | rustac req/s | p50 | p99 | × req/s |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    notes = []
    try:
        for case in cases:
            targets = {}
            our_url, our_body, our_page = _resolve(ours, case)
            expected = _answer(our_page)
            targets[ours.name] = (our_url, our_body)
            for s in servers[1:]:
                try:
                    url, body, page = _resolve(s, case)
                    got = _answer(page)
                    if got[0] != expected[0]:
                        notes.append(f"{s.name}, {case['name']}: returns other ids "
                                     f"({got[0][:3]}… for stacdb's {expected[0][:3]}…); not timed")
                        continue
                    targets[s.name] = (url, body)
                except Exception as e:
                    notes.append(f"{s.name}, {case['name']}: {str(e)[:120]}; not timed")
            for clients in (1, 8):
                series = {name: {"rps": Series(), "p50": Series(), "p99": Series()} for name in targets}
                for name, (url, body) in targets.items():
                    wrk(url, clients, warm, body)
                for i in range(runs):
                    for name, (url, body) in targets.items():
                        load = wrk(url, clients, secs, body)
                        if load.errors:
                            raise RuntimeError(f"{name}: {load.errors} failed requests on {case['name']}")
                        series[name]["rps"].add(load.requests_per_s)
                        series[name]["p50"].add(load.p50_ms)
                        series[name]["p99"].add(load.p99_ms)
                a = series[ours.name]
                cells = [case["name"], str(clients), fmt_rate(a["rps"].median), fmt_ms(a["p50"].median),
                         fmt_ms(a["p99"].median)]
                for peer in ("stac-fastapi-pgstac", "rustac-serve"):
                    if peer in series:
                        b = series[peer]
                        cells += [fmt_rate(b["rps"].median), fmt_ms(b["p50"].median), fmt_ms(b["p99"].median),
                                  "**" + fmt_ratio(paired_ratio(a["rps"], b["rps"], True)) + "**"]
                        if peer == "stac-fastapi-pgstac":
                            cells.append("**" + fmt_ratio(paired_ratio(a["p50"], b["p50"], False)) + "**")
                    else:
                        cells += ["–", "–", "–", "–"] + (["–"] if peer == "stac-fastapi-pgstac" else [])
                lines.append("| " + " | ".join(cells) + " |")
                raw["cases"].append({"case": case["name"], "clients": clients,
                                     **{n: {k: v.values for k, v in s.items()} for n, s in series.items()}})
                log(f"http {case['name']} x{clients}: " + ", ".join(
                    f"{n} {s['rps'].median:,.0f} req/s p50 {s['p50'].median:.2f} ms" for n, s in series.items()))
        rss = {s.name: s.rss_mib() for s in servers}
        raw["rss_mib"] = rss
    finally:
        for s in servers:
            s.stop()
    lines.append("")
    for n in notes:
        lines.append(f"* {n}")
    if notes:
        lines.append("")
    lines.append("#### Cold start and memory")
    lines.append("")
    lines.append("Seconds from starting the server process to its first answered `GET /`, and its"
                 " resident memory (with its children) after the load above. pgstac's PostgreSQL"
                 " was already running; its own memory is not counted.")
    lines.append("")
    lines.append("| server | cold start s | RSS MiB |")
    lines.append("|---|---:|---:|")
    for s in servers:
        lines.append(f"| {s.name} | {cold[s.name]:.2f} | {raw['rss_mib'][s.name]:,.0f} |")
    lines.append("")
    return "\n".join(lines), raw


# --- export -----------------------------------------------------------------------------------


def export(sets: list, settings: dict):
    # Both write to memory when there is a tmpfs: on this machine's virtual disk, creating
    # 10,000 directories and files is bound by the disk at about 1,000 items/s for either
    # tool, which would measure the disk rather than the exporters.
    shm = Path("/dev/shm")
    out = (shm if shm.is_dir() and os.access(shm, os.W_OK) else WORK) / "stacdb-bench-export"
    small = sets[0]  # the 10,000 real NAIP items: pystac runs on these
    k = settings["pystac_items"]
    pystac_runs = settings["pystac_runs"]
    lines = ["### Export", ""]
    lines.append(
        f"A self-contained static catalog with the default layout, written to `{out.parent}`."
        f" stacdb: `stacdb export` of the whole catalog with all threads and with `--threads 1`,"
        f" taking turns run by run, {3 * settings['runs']} runs after a warm-up; peak RSS of the"
        " all-threads runs (median). pystac:"
        " `Collection.add_items`, `normalize_hrefs`, `save(SELF_CONTAINED)`"
        f" (bench/harness/pystac_export.py) over the first {k:,} items of {small.label},"
        f" building the catalog in memory untimed, {pystac_runs} runs, each paired with the"
        " stacdb run before it. items/s from medians; × pystac = stacdb ÷ pystac items/s;"
        " speedup = all threads ÷ 1 thread, run by run."
    )
    big = [ds.name for ds in sets if ds.big]
    if big:
        lines[-1] += f" {', '.join(big)}: {settings['big_runs']} runs of each, without a warm-up."
    lines.append("")
    lines.append("| set | system | items | items/s (min–max) | peak RSS | × pystac | speedup 1 → all threads |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    raw = {}

    def clear():
        shutil.rmtree(out, ignore_errors=True)

    for ds in sets:
        n = ds.count()
        a, one, b, rss = Series(), Series(), Series(), Series()
        with_pystac = ds is small
        # An export run takes a fraction of a second: three times the usual runs, for a
        # steadier median on this shared machine.
        # The 1M set: an export takes most of a minute, so 3 runs and no warm-up.
        first = 1 if ds.big else 0
        for i in range(first, (settings["big_runs"] if ds.big else 3 * settings["runs"]) + 1):
            clear()
            t_a, m_a = timed_rss([str(STACDB), "export", str(ds.catalog), str(out)],
                                 stdout=subprocess.DEVNULL)
            clear()
            t_1, _ = timed_rss([str(STACDB), "export", str(ds.catalog), str(out), "--threads", "1"],
                               stdout=subprocess.DEVNULL)
            clear()
            t_b = None
            if with_pystac and 1 <= i <= pystac_runs:
                res = run([venv_bin("python"), str(BENCH / "harness" / "pystac_export.py"),
                           str(ds.collection_json), str(ds.items_ndjson), str(out), str(k)],
                          capture_output=True, text=True)
                t_b = json.loads(res.stdout)["seconds"]
                clear()
            if i == 0:
                continue
            a.add(n / t_a)
            one.add(n / t_1)
            rss.add(m_a)
            if t_b is not None:
                b.add(k / t_b)
            log(f"export {ds.name} run {i}: stacdb {n / t_a:,.0f} items/s (1 thread {n / t_1:,.0f})"
                + (f", pystac {k / t_b:,.0f} items/s" if t_b else ""))
        speedup = paired_ratio(a, one, True)
        vs = f"**{fmt_ratio(paired_ratio(a, b, True))}**" if b.values else "–"
        lines.append(f"| {ds.label} | stacdb export, all threads | {n:,} | {fmt_rate(a.median)} ({a.span(fmt_rate)}) | "
                     f"{rss.median / 2**20:,.0f} MiB | {vs} | **{speedup:.2f}×** |")
        vs1 = fmt_ratio(paired_ratio(one, b, True)) if b.values else "–"
        lines.append(f"| {ds.label} | stacdb export, 1 thread | {n:,} | {fmt_rate(one.median)} ({one.span(fmt_rate)}) | "
                     f"| {vs1} | |")
        if b.values:
            lines.append(f"| {ds.label} | pystac | {k:,} | {fmt_rate(b.median)} ({b.span(fmt_rate)}) | | 1× | |")
        raw[ds.name] = {"stacdb": a.values, "stacdb_1": one.values, "rss": rss.values, "pystac": b.values}
    lines.append("")
    return "\n".join(lines), raw


# --- file size --------------------------------------------------------------------------------


def size(sets: list, pg: Postgres):
    lines = ["### File size", ""]
    lines.append(
        "Bytes per item on disk. stacdb: the catalog file (and its WAL, if any) after ingest."
        " pgstac: `pg_total_relation_size` of its items partitions (table, TOAST and indexes)."
        " Raw: the NDJSON the items came from, uncompressed."
    )
    lines.append("")
    lines.append("| set | items | stacdb B/item | pgstac B/item | raw NDJSON B/item | stacdb ÷ pgstac | stacdb ÷ raw |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|")
    raw = {}
    for ds in sets:
        n = ds.count()
        ours = sum(Path(str(ds.catalog) + s).stat().st_size for s in ("", "-wal")
                   if Path(str(ds.catalog) + s).exists())
        theirs = pg.table_bytes(ds.database)
        rawb = ds.raw_bytes()
        lines.append(f"| {ds.name} | {n:,} | {ours / n:,.0f} | {theirs / n:,.0f} | {rawb / n:,.0f} | "
                     f"{ours / theirs:.2f} | {ours / rawb:.2f} |")
        raw[ds.name] = {"items": n, "stacdb": ours, "pgstac": theirs, "raw": rawb}
    lines.append("")
    return "\n".join(lines), raw
