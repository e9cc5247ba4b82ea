#!/usr/bin/env bash
# The ingest benchmark. See bench/README.md for what it measures and how to read the numbers.
#
#   bench/ingest.sh [--runs N] [--only naip|derived] [--no-write]
#
# Builds the release binary and the parse-only floor (examples/parse_floor.rs), prepares the
# two input sets in bench/work/, then runs every pass N times (default 3), round-robin, each
# ingest into a fresh catalog file. Prints a table of medians and, unless --no-write, replaces
# the generated section of bench/RESULTS.md with it.
#
# Environment: STACDB_BENCH_DATA (default ../shared/data/bench/stac-fastapi-geoparquet) is
# the directory holding naip.ndjson.gz and collections.json; CARGO_TARGET_DIR as for cargo.
set -euo pipefail

runs=3
only=all
write=1
command_line="bench/ingest.sh${*:+ $*}"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --runs=*) runs="${1#--runs=}"; shift ;;
        --only) only="$2"; shift 2 ;;
        --only=*) only="${1#--only=}"; shift ;;
        --no-write) write=0; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "--runs needs a positive integer" >&2; exit 2; }
case "$only" in all|naip|derived) ;; *) echo "--only is naip or derived" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="$root/bench"
work="$bench/work"
data="${STACDB_BENCH_DATA:-$root/../shared/data/bench/stac-fastapi-geoparquet}"
target="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$work"
for f in naip.ndjson.gz collections.json; do
    [[ -f "$data/$f" ]] || { echo "missing $data/$f (set STACDB_BENCH_DATA)" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time (GNU time) is needed" >&2; exit 1; }

echo "== building (release)" >&2
(cd "$root" && cargo build --release --bin stacdb --example parse_floor)
stacdb="$target/release/stacdb"
floor="$target/release/examples/parse_floor"

echo "== preparing data in $work" >&2
naip="$data/naip.ndjson.gz"
derived="$work/naip-100k.ndjson.gz"
if [[ ! -f "$derived" || ! -f "$derived.json" ]]; then
    echo "   writing the derived 100,000-item set (takes ~10 s)" >&2
    python3 "$bench/derive_set.py" "$naip" "$derived" --copies 10 > "$derived.json.tmp"
    mv "$derived.json.tmp" "$derived.json"
fi
if [[ ! -f "$work/naip.json" ]]; then
    python3 - "$naip" > "$work/naip.json" <<'EOF'
import gzip, hashlib, json, sys
items = size = 0
with gzip.open(sys.argv[1], "rb") as f:
    for line in f:
        size += len(line)
        items += bool(line.strip())
sha = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()
print(json.dumps({"items": items, "uncompressed_bytes": size, "sha256": sha}))
EOF
fi

cases=()
[[ "$only" == all || "$only" == naip ]] && cases+=(naip)
[[ "$only" == all || "$only" == derived ]] && cases+=(derived)
passes=(gunzip parse parse-par normalize-par ingest ingest-existing)

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
tsv="$work/runs-$stamp.tsv"
meta="$work/machine-$stamp.json"
printf 'set\tpass\trun\twall\tuser\tsys\tmax_rss_kb\tinner\titems\tfile_bytes\n' > "$tsv"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
db="$work/bench.stacdb"

# Runs one pass once and appends a row to the TSV.
run_pass() {
    local set="$1" pass="$2" run="$3" input expect out t0 t1
    case "$set" in
        naip) input="$naip"; expect="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["items"])' "$work/naip.json")" ;;
        derived) input="$derived"; expect="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["items"])' "$derived.json")" ;;
    esac
    out="$work/last-$pass.json"
    rm -f "$db" "$db-wal" "$db-shm"
    if [[ "$pass" == ingest-existing ]]; then
        "$stacdb" init "$db" > /dev/null
        t0="$(date +%s.%N)"
        /usr/bin/time -f '%U %S %M' -o "$work/time.txt" \
            "$stacdb" ingest "$db" "$data/collections.json" "$input" --json > "$out"
        t1="$(date +%s.%N)"
    elif [[ "$pass" == ingest ]]; then
        t0="$(date +%s.%N)"
        /usr/bin/time -f '%U %S %M' -o "$work/time.txt" \
            "$stacdb" ingest "$db" "$data/collections.json" "$input" --json > "$out"
        t1="$(date +%s.%N)"
    else
        t0="$(date +%s.%N)"
        /usr/bin/time -f '%U %S %M' -o "$work/time.txt" "$floor" "$pass" "$input" > "$out"
        t1="$(date +%s.%N)"
    fi
    python3 - "$set" "$pass" "$run" "$t0" "$t1" "$work/time.txt" "$out" "$expect" "$db" >> "$tsv" <<'EOF'
import json, os, sys
set_, pass_, run, t0, t1, timefile, out, expect, db = sys.argv[1:]
user, sys_, rss = open(timefile).read().split()[-3:]
report = json.load(open(out))
if pass_ in ("ingest", "ingest-existing"):
    items = report["items"]["inserted"]
    inner = report["elapsed"]
    size = sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))
else:
    items, inner, size = report["items"], report["elapsed"], 0
if items != int(expect):
    sys.exit(f"{set_}/{pass_}: {items} items, expected {expect}")
wall = float(t1) - float(t0)
print(f"{set_}\t{pass_}\t{run}\t{wall:.4f}\t{user}\t{sys_}\t{rss}\t{inner:.4f}\t{items}\t{size}")
EOF
    tail -n1 "$tsv" | awk -F'\t' '{printf "   %-8s %-14s run %s: %7.3f s wall\n", $1, $2, $3, $4}' >&2
}

echo "== running: ${cases[*]} x ${passes[*]} x $runs runs (round-robin)" >&2
for run in $(seq 1 "$runs"); do
    for set in "${cases[@]}"; do
        for pass in "${passes[@]}"; do
            run_pass "$set" "$pass" "$run"
        done
    done
done
# What a finished ingest leaves on disk (the WAL should have been checkpointed away).
on_disk="$(cd "$work" && ls -l bench.stacdb* | awk '{print $5, $9}' | paste -sd';' -)"
rm -f "$db" "$db-wal" "$db-shm"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

commit="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$root" status --porcelain -- src Cargo.toml Cargo.lock schema 2>/dev/null)" ]]; then
    commit="$commit (with uncommitted changes to src/)"
fi
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
    "on_disk_after_ingest": "$on_disk",
    "sets": {
        "naip": dict(json.load(open("$work/naip.json")), file="$naip"),
        "derived": dict(json.load(open("$derived.json")), file="bench/work/naip-100k.ndjson.gz"),
    },
}, open(sys.argv[1], "w"), indent=1)
EOF

if [[ "$write" == 1 ]]; then
    python3 "$bench/report.py" "$tsv" "$meta" --write "$bench/RESULTS.md"
    echo "== wrote bench/RESULTS.md" >&2
else
    python3 "$bench/report.py" "$tsv" "$meta"
fi
echo "== raw runs: ${tsv#$root/}" >&2
