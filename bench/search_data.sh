#!/usr/bin/env bash
# Builds the catalogs the search benchmark reads. See bench/README.md ("Search data").
#
#   bench/search_data.sh [--force]
#
# Builds the release binary, writes bench/work/derived-1m.ndjson.gz (1,000,000 items derived
# from every item file in the bench data, by bench/derive_million.py) and
# bench/work/naip-100k.ndjson.gz (by bench/derive_set.py, as bench/ingest.sh does), then
# ingests each into its catalog: bench/work/derived-1m.stacdb and bench/work/naip-100k.stacdb.
# Item sets are made once. A catalog is rebuilt only when it is missing, older than one of its
# inputs, or built with another schema (schema_version and schema/*.sql); --force rebuilds both.
# Prints the ingest wall time, peak RSS and file size of every catalog it builds.
#
# Environment: STACDB_BENCH_ROOT (default ../shared/data/bench beside the repository) is the
# whole bench data directory; STACDB_BENCH_DATA (default $STACDB_BENCH_ROOT/stac-fastapi-geoparquet)
# holds naip.ndjson.gz, as for bench/ingest.sh; CARGO_TARGET_DIR as for cargo.
set -euo pipefail

force=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --force) force=1; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="$root/bench"
work="$bench/work"
data_root="${STACDB_BENCH_ROOT:-$root/../shared/data/bench}"
data="${STACDB_BENCH_DATA:-$data_root/stac-fastapi-geoparquet}"
target="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$work"
[[ -d "$data_root" ]] || { echo "missing $data_root (set STACDB_BENCH_ROOT)" >&2; exit 1; }
[[ -f "$data/naip.ndjson.gz" ]] || { echo "missing $data/naip.ndjson.gz (set STACDB_BENCH_DATA)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time (GNU time) is needed" >&2; exit 1; }

echo "== building (release)" >&2
(cd "$root" && cargo build --release --bin stacdb)
stacdb="$target/release/stacdb"

json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# --- item sets (made once; delete a file, or its .json, to remake it) ---
derived="$work/derived-1m.ndjson.gz"
derived_collections="$work/derived-1m.collections.ndjson"
if [[ ! -f "$derived" || ! -f "$derived.json" || ! -f "$derived_collections" \
      || "$bench/derive_million.py" -nt "$derived.json" || "$bench/derive_set.py" -nt "$derived.json" ]]; then
    echo "== writing the derived 1,000,000-item set (a few minutes)" >&2
    t0="$(date +%s.%N)"
    python3 "$bench/derive_million.py" "$derived" --data "$data_root" \
        --collections "$derived_collections" > "$derived.json.tmp"
    t1="$(date +%s.%N)"
    mv "$derived.json.tmp" "$derived.json"
    python3 - "$derived.json" "$t0" "$t1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"   {s['items']:,} items, {s['uncompressed_bytes'] / 1e6:,.1f} MB uncompressed, "
      f"{s['gzip_bytes'] / 1e6:,.1f} MB gzipped, {float(sys.argv[3]) - float(sys.argv[2]):.1f} s; "
      f"sha256 {s['sha256'][:16]}…", file=sys.stderr)
EOF
fi
naip100k="$work/naip-100k.ndjson.gz"
if [[ ! -f "$naip100k" || ! -f "$naip100k.json" ]]; then
    # Exactly as bench/ingest.sh makes it (the two scripts share the file).
    echo "== writing the derived 100,000-item naip set (takes ~10 s)" >&2
    python3 "$bench/derive_set.py" "$data/naip.ndjson.gz" "$naip100k" --copies 10 > "$naip100k.json.tmp"
    mv "$naip100k.json.tmp" "$naip100k.json"
fi

# --- the schema this binary writes: its version, and the schema files behind it ---
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
"$stacdb" init "$probe/probe.stacdb" > /dev/null
schema_version="$("$stacdb" info "$probe/probe.stacdb" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["schema_version"])')"
schema_sha="$(cat "$root"/schema/*.sql | sha256sum | cut -c1-16)"
schema_stamp="schema_version=$schema_version schema_sha256=$schema_sha"

# build NAME CREATE_COLLECTIONS(0|1) INPUT...: (re)builds bench/work/NAME.stacdb when needed.
build() {
    local name="$1" create="$2"; shift 2
    local db="$work/$name.stacdb" stamp="$work/$name.stacdb.stamp" why="" input
    if [[ "$force" == 1 ]]; then why="--force"
    elif [[ ! -f "$db" ]]; then why="missing"
    elif [[ ! -f "$stamp" ]]; then why="no stamp"
    elif [[ "$(head -n1 "$stamp")" != "$schema_stamp" ]]; then why="schema changed ($(head -n1 "$stamp") -> $schema_stamp)"
    else
        for input in "$@"; do
            [[ "$input" -nt "$db" ]] && why="older than ${input#$root/}"
        done
    fi
    if [[ -z "$why" ]]; then
        echo "== $name.stacdb is up to date ($(du -h "$db" | cut -f1), $schema_stamp)" >&2
        return
    fi
    echo "== building $name.stacdb: $why" >&2
    local tmp="$work/$name.building.stacdb" flags=(--json)
    [[ "$create" == 1 ]] && flags+=(--create-collections)
    rm -f "$db" "$db-wal" "$db-shm" "$stamp" "$tmp" "$tmp-wal" "$tmp-shm"
    local t0 t1 rc=0
    t0="$(date +%s.%N)"
    /usr/bin/time -v -o "$work/$name.time.txt" \
        "$stacdb" ingest "$tmp" "$@" "${flags[@]}" > "$work/$name.ingest.json" || rc=$?
    t1="$(date +%s.%N)"
    if [[ "$rc" != 0 ]]; then
        echo "stacdb ingest failed (exit $rc); its report: $work/$name.ingest.json, time: $work/$name.time.txt" >&2
        exit 1
    fi
    if [[ -e "$tmp-wal" ]]; then
        echo "warning: $tmp-wal is left after ingest exited" >&2
    fi
    local size
    size="$(stat -c %s "$tmp")"
    mv "$tmp" "$db"
    rm -f "$tmp-shm" "$tmp-wal"
    python3 - "$name" "$work/$name.ingest.json" "$work/$name.time.txt" "$t0" "$t1" "$size" \
        "$schema_stamp" "$(uname -n)" "$(cut -d' ' -f1-3 /proc/loadavg)" > "$stamp.tmp" <<'EOF'
import json, re, sys
name, report, timefile, t0, t1, size, schema, host, load = sys.argv[1:]
report = json.load(open(report))
timing = open(timefile).read()
def field(label):
    m = re.search(r"^\s*" + re.escape(label) + r": (.*)$", timing, re.M)
    return m.group(1).strip() if m else None
wall = float(t1) - float(t0)
rss_kb = int(field("Maximum resident set size (kbytes)"))
user, system = float(field("User time (seconds)")), float(field("System time (seconds)"))
items = report.get("items", {}).get("inserted")
summary = {
    "catalog": f"bench/work/{name}.stacdb", "wall_s": round(wall, 3), "user_s": user,
    "sys_s": system, "max_rss_kb": rss_kb, "file_bytes": int(size), "items_inserted": items,
    "load_after": load, "host": host, "ingest_report": report,
}
print(schema)  # line 1: the stamp build() compares
print(json.dumps(summary))
rate = f", {items / wall:,.0f} items/s" if items else ""
print(f"   {name}: ingest {wall:.1f} s wall ({user + system:.1f} s CPU{rate}), peak RSS "
      f"{rss_kb / 1024:,.0f} MiB, file {int(size) / 1e9:.2f} GB"
      + (f" = {int(size) / items / 1000:.2f} kB/item" if items else ""), file=sys.stderr)
EOF
    mv "$stamp.tmp" "$stamp"
}

create=0
grep -q '"create_collections": \[\]' "$derived.json" || create=1
build derived-1m "$create" "$derived_collections" "$derived"
build naip-100k 0 "$data/collections.json" "$naip100k"

echo "== catalogs in bench/work:" >&2
for name in derived-1m naip-100k; do
    "$stacdb" info "$work/$name.stacdb" --json > "$work/$name.info.json"
    python3 - "$work/$name.info.json" <<'EOF' >&2
import json, sys
i = json.load(open(sys.argv[1]))
cols = ", ".join(f"{c.get('id')} {c.get('item_count', '?'):,}" for c in i["collections"])
print(f"   {i['path']}: {i['item_count']:,} items, {i['file_size'] / 1e9:.2f} GB, schema {i['schema_version']}; {cols}")
EOF
done
