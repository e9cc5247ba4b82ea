#!/usr/bin/env bash
# Export benchmark: `stacdb export` (self-contained, default layout) of the 10,000 NAIP items
# and, when bench/search_data.sh has built it, the 100,000-item derived NAIP catalog
# (bench/work/naip-100k.stacdb), each with --threads 1 and --threads 2.
#
#   bench/export.sh [--out DIR] [--runs N]
#
# Prints, per catalog and thread count, the best of N runs (default 3): wall seconds, items/s,
# peak RSS (GNU time) and the 1 -> 2 thread speedup, and writes them as JSON to
# bench/work/export-<UTC time>.json. Targets: >= 30,000 items/s; >= 1.7x from 1 to 2 threads.
#
# --out DIR (default bench/work/export-out) is where exports are written; it is removed
# before each run. Writing ~100,000 small files is bound by the file system: on a slow disk,
# pass --out /dev/shm/stacdb-export to measure stacdb rather than the disk (both are worth
# reporting). The 10k catalog is built once into bench/work/naip-10k-export.stacdb from
# $STACDB_BENCH_ROOT (default ../shared/data/bench)/stac-fastapi-geoparquet.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$root/bench/work"
out="$work/export-out"
runs=3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
data_root="${STACDB_BENCH_ROOT:-$root/../shared/data/bench}"
data="$data_root/stac-fastapi-geoparquet"
[[ -f "$data/naip.ndjson.gz" ]] || { echo "missing $data/naip.ndjson.gz (set STACDB_BENCH_ROOT)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time (GNU time) is needed" >&2; exit 1; }
mkdir -p "$work"

echo "== building (release)" >&2
(cd "$root" && cargo build --release --quiet --bin stacdb)
stacdb="${CARGO_TARGET_DIR:-$root/target}/release/stacdb"

naip10k="$work/naip-10k-export.stacdb"
if [[ ! -f "$naip10k" ]]; then
    echo "== building $naip10k" >&2
    python3 - "$data/collections.json" "$work/naip-10k-export.collection.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
cols = doc["collections"] if isinstance(doc, dict) else doc
json.dump(next(c for c in cols if c["id"] == "naip"), open(sys.argv[2], "w"))
PY
    "$stacdb" ingest "$naip10k" "$work/naip-10k-export.collection.json" "$data/naip.ndjson.gz" >&2
fi
catalogs=("$naip10k")
[[ -f "$work/naip-100k.stacdb" ]] && catalogs+=("$work/naip-100k.stacdb")

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
results="$work/export-$stamp.json"
echo "[" >"$results"
first=1
printf '%-28s %7s %8s %10s %10s\n' catalog threads seconds items/s "RSS MB"
for catalog in "${catalogs[@]}"; do
    name="$(basename "$catalog" .stacdb)"
    declare -A best=()
    for threads in 1 2; do
        best_s=""
        for _ in $(seq 1 "$runs"); do
            rm -rf "$out"
            sync
            /usr/bin/time -v -o "$work/export-time.txt" \
                "$stacdb" export "$catalog" "$out" --threads "$threads" --json >"$work/export-report.json"
            line="$(python3 - "$work/export-report.json" "$work/export-time.txt" <<'PY'
import json, re, sys
r = json.load(open(sys.argv[1]))
t = open(sys.argv[2]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
s = r["elapsed"]["secs"] + r["elapsed"]["nanos"] / 1e9
print(f"{s:.3f} {r['items']} {r['items'] / s:.0f} {rss / 1024:.0f}")
PY
)"
            read -r secs items rate rss <<<"$line"
            if [[ -z $best_s ]] || python3 -c "import sys; sys.exit(0 if $secs < $best_s else 1)"; then
                best_s=$secs; best_rate=$rate; best_rss=$rss
            fi
        done
        best[$threads]=$best_s
        printf '%-28s %7s %8s %10s %10s\n' "$name" "$threads" "$best_s" "$best_rate" "$best_rss"
        [[ $first == 1 ]] || echo "," >>"$results"
        first=0
        printf '{"catalog": "%s", "items": %s, "threads": %s, "seconds": %s, "items_per_second": %s, "peak_rss_mb": %s, "out": "%s"}' \
            "$name" "$items" "$threads" "$best_s" "$best_rate" "$best_rss" "$out" >>"$results"
    done
    python3 -c "print(f'{\"$name\":<28} speedup 1 -> 2 threads: {${best[1]} / ${best[2]}:.2f}x')"
    unset best
done
echo "]" >>"$results"
rm -rf "$out"
echo "results: $results" >&2
