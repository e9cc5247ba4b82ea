#!/usr/bin/env bash
# The search benchmark. See bench/README.md ("Search") for what it measures and how to read it.
#
#   bench/search.sh [--runs N] [--only naip|derived] [--no-write]
#
# Builds the release binary and examples/search_bench.rs, builds or reuses the two catalogs
# (bench/search_data.sh: bench/work/naip-100k.stacdb and bench/work/derived-1m.stacdb), then
# times every search of bench/searches/CATALOG.json on its catalog, N runs each (default 20;
# a search whose entry has "runs": M gets at most M), in process. Prints a table per catalog
# and, unless --no-write, replaces the search section of bench/RESULTS.md with it (between
# its own BEGIN/END markers; the ingest section is not touched).
#
# Environment: as for bench/search_data.sh (STACDB_BENCH_ROOT, STACDB_BENCH_DATA);
# CARGO_TARGET_DIR as for cargo.
set -euo pipefail

runs=20
only=all
write=1
command_line="bench/search.sh${*:+ $*}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="${2:-}"; shift 2 ;;
        --runs=*) runs="${1#--runs=}"; shift ;;
        --only) only="${2:-}"; shift 2 ;;
        --only=*) only="${1#--only=}"; shift ;;
        --no-write) write=0; shift ;;
        -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "--runs needs a positive integer" >&2; exit 2; }
case "$only" in all|naip|derived) ;; *) echo "--only is naip or derived" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="$root/bench"
work="$bench/work"
target="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$work"
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }

echo "== building (release)" >&2
(cd "$root" && cargo build --release --bin stacdb --example search_bench --example parse_floor)
# The commit the binaries were built from (recorded now: the tree may move during the runs).
commit="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$root" status --porcelain -- src Cargo.toml Cargo.lock schema examples/search_bench.rs 2>/dev/null)" ]]; then
    commit="$commit (with uncommitted changes to src/, schema/ or the example)"
fi
search_bench="$target/release/examples/search_bench"
floor="$target/release/examples/parse_floor"

echo "== catalogs (bench/search_data.sh)" >&2
"$bench/search_data.sh"

# set name -> catalog name (bench/work/NAME.stacdb, bench/searches/NAME.json)
sets=()
[[ "$only" == all || "$only" == naip ]] && sets+=(naip)
[[ "$only" == all || "$only" == derived ]] && sets+=(derived)
catalog_of() { case "$1" in naip) echo naip-100k ;; derived) echo derived-1m ;; esac; }

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
results=()
for set in "${sets[@]}"; do
    name="$(catalog_of "$set")"
    db="$work/$name.stacdb"
    list="$bench/searches/$name.json"
    out="$work/search-$stamp-$name.json"
    [[ -f "$list" ]] || { echo "missing $list" >&2; exit 1; }
    # Searches are run in groups by their run count (the default, or an entry's smaller
    # "runs"), each group by one search_bench process; the results are put back in list order.
    python3 - "$search_bench" "$db" "$list" "$runs" "$out" "$work" <<'EOF'
import json, os, subprocess, sys, tempfile, time
bench, db, list_path, runs, out, work = sys.argv[1:]
runs = int(runs)
searches = json.load(open(list_path))
names = [s["name"] for s in searches]
if len(set(names)) != len(names):
    sys.exit(f"{list_path}: search names are not unique")
groups = {}
for n, s in enumerate(searches):
    groups.setdefault(min(runs, int(s.get("runs", runs))), []).append(n)
rows = [None] * len(searches)
for group_runs, members in sorted(groups.items(), reverse=True):
    label = ", ".join(names[n] for n in members) if len(members) <= 3 else f"{len(members)} searches"
    print(f"   {os.path.basename(db)}: {label} x {group_runs} runs", file=sys.stderr, flush=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=work, delete=False) as f:
        json.dump([searches[n] for n in members], f)
    t0 = time.monotonic()
    try:
        result = subprocess.run([bench, db, f.name, "--runs", str(group_runs), "--json"],
                                check=True, stdout=subprocess.PIPE, text=True)
    finally:
        os.unlink(f.name)
    for n, row in zip(members, json.loads(result.stdout)):
        assert row["name"] == names[n], (row["name"], names[n])
        row["about"] = searches[n].get("about", "")
        row["page"] = searches[n].get("page", 1)
        rows[n] = row
    print(f"   … {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
json.dump(rows, open(out, "w"), indent=1)
EOF
    results+=("$set=$out")
done
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

meta="$work/search-$stamp-machine.json"
python3 - "$meta" <<EOF
import json, sys
json.dump({
    "command": "$command_line",
    "date": "$(date -u '+%Y-%m-%d %H:%M UTC')",
    "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')",
    "nproc": "$(nproc)",
    "memory": "$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)",
    "kernel": "$(uname -r)",
    "load_before": "$load_before",
    "load_after": "$load_after",
    "commit": "$commit",
    "rustc": "$(rustc -V)",
    "sqlite": "$("$floor" --sqlite-version)",
    "runs": $runs,
}, open(sys.argv[1], "w"), indent=1)
EOF

# The report: a markdown section, printed, and (unless --no-write) put into RESULTS.md.
PYTHONPATH="$bench" PYTHONDONTWRITEBYTECODE=1 \
python3 - "$meta" "$work" "$bench/RESULTS.md" "$write" "${results[@]}" <<'EOF'
import json, sys
from pathlib import Path
from report import run_header

BEGIN = "<!-- BEGIN bench/search.sh output: generated, edits here are overwritten -->"
END = "<!-- END bench/search.sh output -->"
HEADING = (
    "## Search: latest run\n\n"
    "How to run the search benchmark and how to read its table: [README.md](README.md)\n"
    "(\"Search\"). The section between the markers below is rewritten by every\n"
    "`bench/search.sh` run.\n\n"
)
SETS = {
    "naip": ("naip-100k", "naip-100k: 100,000 NAIP items (10 time-shifted copies of 10,000 real ones)"),
    "derived": ("derived-1m", "derived-1m: 1,000,000 items derived from every item file of the bench data "
                "(naip, openaerialmap, modis, sentinel-2, landsat, sentinel-1 mosaics)"),
}
# (set, search name, statistic, bound in ms, what the target says)
TARGETS = [
    ("derived", "bbox-datetime", "p50_ms", 5.0, "1M: bbox + datetime, limit 10: p50 ≤ 5 ms"),
    ("derived", "bbox-datetime-count", "p50_ms", 100.0, "1M: exact count of bbox + datetime: p50 ≤ 100 ms"),
]

meta_path, work, results_md, write, *pairs = sys.argv[1:]
meta = json.load(open(meta_path))
results = {}
for pair in pairs:
    set_, path = pair.split("=", 1)
    results[set_] = json.load(open(path))


def ms(x):
    if x < 10:
        return f"{x:.2f}"
    if x < 1000:
        return f"{x:.1f}"
    return f"{x:,.0f}"


out = run_header(BEGIN, meta)
w = out.append
w(f"* In process (`examples/search_bench.rs`, catalog opened read-only, default search options, "
  f"no time limit): one warm-up pass over the list, then {meta['runs']} run{'s' if meta['runs'] != 1 else ''} "
  "of each search (fewer where the runs column says so: the entry's `runs` in the list), round-robin. p50/p95 in milliseconds of wall clock. "
  "A search (not `count`) also computes the exact numberMatched, so its time includes that count.")
w("")
for set_, (name, label) in SETS.items():
    if set_ not in results:
        continue
    info = json.load(open(f"{work}/{name}.info.json"))
    stamp = open(f"{work}/{name}.stacdb.stamp").readline().strip()
    w(f"### {label}")
    w("")
    w(f"`bench/work/{name}.stacdb`: {info['item_count']:,} items, {info['file_size'] / 1e9:.2f} GB, "
      f"{stamp}; searches: `bench/searches/{name}.json`")
    w("")
    w("| search | what | matched | returned | p50 ms | p95 ms | runs |")
    w("|---|---|---:|---:|---:|---:|---:|")
    for r in results[set_]:
        returned = "(count)" if r["count_only"] else f"{r['returned']:,}"
        w(f"| {r['name']} | {r['about']} | {r['matched']:,} | {returned} | "
          f"{ms(r['p50_ms'])} | {ms(r['p95_ms'])} | {r['runs']} |")
    w("")
targets = [t for t in TARGETS if t[0] in results]
if targets:
    w("### Targets")
    w("")
    w("| target | measured | met? |")
    w("|---|---|---|")
    for set_, search, stat, bound, what in targets:
        row = next(r for r in results[set_] if r["name"] == search)
        ok = row[stat] <= bound
        w(f"| {what} | `{search}`: p50 {ms(row['p50_ms'])} ms, p95 {ms(row['p95_ms'])} ms "
          f"({row['matched']:,} matched) | {'PASS' if ok else '**FAIL**'} |")
    w("")
w(END)
section = "\n".join(out) + "\n"
print(section)

if write == "1":
    path = Path(results_md)
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + HEADING + section
    path.write_text(text)
    print("== wrote bench/RESULTS.md (search section)", file=sys.stderr)
EOF
echo "== raw results: bench/work/search-$stamp-*.json" >&2
