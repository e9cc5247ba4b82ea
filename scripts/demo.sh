#!/usr/bin/env bash
# Builds stacdb and runs its main job on the bundled example data (fixtures/demo):
# ingest a collection and its items into a fresh catalog file, show what is in it, search it.
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
echo
echo "\$ stacdb search $catalog --bbox 170,-20,-170,-10 --fields id   # a box across the antimeridian"
$stacdb search "$catalog" --bbox 170,-20,-170,-10 --fields id
echo
echo "\$ stacdb search $catalog --filter \"eo:cloud_cover < 3\" --sortby eo:cloud_cover --fields id,properties.eo:cloud_cover"
$stacdb search "$catalog" --filter "eo:cloud_cover < 3" --sortby eo:cloud_cover --fields id,properties.eo:cloud_cover
echo
echo "\$ stacdb count $catalog --datetime 2021-03-01T00:00:00Z/2021-06-30T23:59:59Z"
$stacdb count "$catalog" --datetime 2021-03-01T00:00:00Z/2021-06-30T23:59:59Z
