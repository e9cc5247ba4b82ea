#!/usr/bin/env bash
# Builds stacdb and runs its main job on the bundled example data (fixtures/demo):
# ingest a collection and its items into a fresh catalog file, then show what is in it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
stacdb=./target/release/stacdb
catalog=${1:-demo.stacdb}
rm -f "$catalog" "$catalog-wal" "$catalog-shm"

echo "\$ stacdb init $catalog --title 'Demo catalog'"
$stacdb init "$catalog" --id demo --title "Demo catalog"
echo
echo "\$ stacdb ingest $catalog fixtures/demo/"
$stacdb ingest "$catalog" fixtures/demo/
echo
echo "\$ stacdb info $catalog"
$stacdb info "$catalog"
echo
echo "\$ stacdb get $catalog demo-orthophotos fiji-004 --compact   # an item across the antimeridian"
$stacdb get "$catalog" demo-orthophotos fiji-004 --compact
echo
echo "\$ stacdb check $catalog"
$stacdb check "$catalog"
