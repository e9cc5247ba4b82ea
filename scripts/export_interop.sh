#!/usr/bin/env bash
# Interop check of `stacdb export` with pystac (called by .ci/run after scripts/interop.sh):
#   1. the venv scripts/interop.sh made (target/interop-venv: pystac, and the STAC v1.0.0
#      schemas taken from the pystac 1.10.1 wheel); it is made by running interop.sh when
#      missing;
#   2. a catalog of the 1,000 Sentinel-2 items and joplin (30 items) from the shared data
#      ($STACDB_TEST_DATA, default ../shared/data), as interop.sh builds it;
#   3. `stacdb export` of it in each catalog type (self-contained, relative-published,
#      absolute-published), with the default layout split into parts (--max-links 300), and
#      once more with --layout '${collection}/${year}/${month}';
#   4. scripts/export_interop.py on each: pystac.Catalog.from_file, a walk counting every item
#      (1,030 expected), and validate_all(); and once with a wrong count, which must fail.
# Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=${STACDB_TEST_DATA:-$root/../shared/data}
data=$(cd "$data" && pwd)
work=$root/target/export-interop
venv=$root/target/interop-venv
base=https://example.org/stac/

step() { echo; echo "== export interop: $*"; }

if [[ ! -x $venv/bin/python || ! -d $venv/stac-schemas-v1.0.0 ]]; then
    step "no venv at $venv: running scripts/interop.sh to make it"
    bash scripts/interop.sh
fi
py=$venv/bin/python
echo "pystac $("$py" -c 'import pystac; print(pystac.__version__)')"

step "build stacdb and the catalog"
if [[ -n ${STACDB_BIN:-} ]]; then
    stacdb=$STACDB_BIN
else
    cargo build --quiet
    stacdb=$root/target/debug/stacdb
fi
rm -rf "$work"
mkdir -p "$work"
catalog=$work/interop.stacdb
"$stacdb" init "$catalog" --id stacdb-export-interop --title "stacdb export interop check" \
    --description "Sentinel-2 L2A (1,000 items) and joplin (30 items)" >/dev/null
"$stacdb" ingest "$catalog" \
    "$data/bench/rustac/sentinel-2-l2a.collection.json" \
    "$data/bench/rustac/1000-sentinel-2-items.ndjson.gz" \
    "$data/fixtures/stac-fastapi-pgstac/testdata/joplin/collection.json" \
    "$data/fixtures/stac-fastapi-pgstac/testdata/joplin/index.geojson"

check() { # DIR [EXTRA ARGS...]
    local dir=$1
    shift
    "$py" scripts/export_interop.py "$dir" 1030 --schemas "$venv/stac-schemas-v1.0.0" "$@"
}

for type in self-contained relative-published absolute-published; do
    step "--catalog-type $type"
    out=$work/out-$type
    args=(--catalog-type "$type" --max-links 300)
    [[ $type != self-contained ]] && args+=(--base-url "$base")
    "$stacdb" export "$catalog" "$out" "${args[@]}"
    if [[ $type == absolute-published ]]; then
        check "$out" --base-url "$base"
    else
        check "$out"
    fi
done

step "--layout '\${collection}/\${year}/\${month}'"
"$stacdb" export "$catalog" "$work/out-months" --layout '${collection}/${year}/${month}'
check "$work/out-months"

step "a wrong count must fail"
if "$py" scripts/export_interop.py "$work/out-months" 1031 \
        --schemas "$venv/stac-schemas-v1.0.0" >/dev/null 2>&1; then
    echo "export interop: the check passed with a wrong item count" >&2
    exit 1
fi
echo "failed as it should"
step "all passed"
