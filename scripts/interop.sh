#!/usr/bin/env bash
# Interop check of `stacdb serve` with the Python STAC tools (called by .ci/run):
#   1. a venv at target/interop-venv (kept between runs) with stac-api-validator and
#      pystac-client from PyPI;
#   2. a fresh catalog of the 1,000 Sentinel-2 items and the joplin collection (30 items)
#      from the shared data ($STACDB_TEST_DATA, default ../shared/data);
#   3. `stacdb serve` on a free port (stopped on exit);
#   4. stac-api-validator, through ../shared/tools/stac_api_validator_offline.py, for three
#      sets of conformance classes: each output must say "Errors: none";
#   5. scripts/interop_client.py: pystac-client searches (paged, GET and POST) compared with
#      `stacdb search`, and the collections compared with `stacdb info`.
# Exits non-zero when anything fails. Needs python3 (with venv) and network access to PyPI
# the first time.
#
# Offline limits: STAC v1.0.0 core schemas come from the pystac 1.10.1 wheel (the pystac
# that stac-api-validator needs bundles only v1.1.0); extension schemas are not available
# offline and are answered with an accept-all schema (see interop_client.py).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)

data=${STACDB_TEST_DATA:-$root/../shared/data}
data=$(cd "$data" && pwd)
tools=${STACDB_SHARED_TOOLS:-$(cd "$data/../tools" && pwd)}
work=$root/target/interop
venv=$root/target/interop-venv
# Pinned so that a new release cannot change the verdict unseen; raise them on purpose.
# (Last checked: stac-api-validator 0.6.8 pulls stac-check 1.14.0, stac-validator 4.1.0 and
# stac-valid 4.2.2, pystac 1.15.2.)
validator_req=${INTEROP_VALIDATOR:-stac-api-validator==0.6.8}
client_req=${INTEROP_CLIENT:-pystac-client==0.9.1}
schemas_req=pystac==1.10.1

step() { echo; echo "== interop: $*"; }

# 1. The venv.
step "python venv ($venv)"
stamp="$venv/.installed"
want="$validator_req $client_req $schemas_req"
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$validator_req" "$client_req"
    # The STAC v1.0.0 core schemas, from an older pystac wheel (not installed, only read).
    "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
        --dest "$venv/downloads" "$schemas_req"
    "$venv/bin/python" - "$venv" <<'EOF'
import sys, zipfile, glob, os
venv = sys.argv[1]
wheel = glob.glob(os.path.join(venv, "downloads", "pystac-1.10.1-*.whl"))[0]
out = os.path.join(venv, "stac-schemas-v1.0.0")
os.makedirs(out, exist_ok=True)
prefix = "pystac/validation/jsonschemas/stac-spec/v1.0.0/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and name.endswith(".json"):
            with open(os.path.join(out, os.path.basename(name)), "wb") as f:
                f.write(z.read(name))
EOF
    echo "$want" >"$stamp"
else
    echo "reusing $venv"
fi
py=$venv/bin/python
echo "installed: $("$py" -m pip list --disable-pip-version-check 2>/dev/null \
    | awk '$1 ~ /^(stac-api-validator|pystac-client|pystac|stac-check|stac[-_]validator|stac[-_]valid)$/ {printf "%s %s, ", $1, $2}')"

# 2. The binary (debug: the profile `cargo test` in .ci/run builds) and the catalog.
step "build stacdb and the catalog"
if [[ -n ${STACDB_BIN:-} ]]; then
    stacdb=$STACDB_BIN
else
    cargo build --quiet
    stacdb=$root/target/debug/stacdb
fi
mkdir -p "$work"
catalog=$work/interop.stacdb
rm -f "$catalog" "$catalog-wal" "$catalog-shm"
"$stacdb" init "$catalog" --id stacdb-interop --title "stacdb interop check" \
    --description "Sentinel-2 L2A (1,000 items) and joplin (30 items)"
"$stacdb" ingest "$catalog" \
    "$data/bench/rustac/sentinel-2-l2a.collection.json" \
    "$data/bench/rustac/1000-sentinel-2-items.ndjson.gz" \
    "$data/fixtures/stac-fastapi-pgstac/testdata/joplin/collection.json" \
    "$data/fixtures/stac-fastapi-pgstac/testdata/joplin/index.geojson"

# 3. The server.
step "stacdb serve"
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port/
"$stacdb" serve "$catalog" --port "$port" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
up=0
for _ in $(seq 1 100); do
    if "$py" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" "$url" 2>/dev/null; then
        up=1
        break
    fi
    if ! kill -0 "$server" 2>/dev/null; then break; fi
    sleep 0.1
done
if [[ $up != 1 ]]; then
    echo "interop: stacdb serve did not answer at $url; its log:" >&2
    cat "$work/serve.log" >&2
    exit 1
fi
echo "serving at $url"

# 4. stac-api-validator.
geometry='{"type":"Polygon","coordinates":[[[-106,38],[-105,38],[-105,39],[-106,39],[-106,38]]]}'
query_options=(
    --query-comparison-field eo:cloud_cover
    --query-eq-value 0 --query-neq-value 0 --query-lt-value 10 --query-lte-value 10
    --query-gt-value 10 --query-gte-value 10
    --query-substring-field s2:mgrs_tile
    --query-starts-with-value 13T --query-ends-with-value EF --query-contains-value TE
    --query-in-field instruments --query-in-values msi
    --fields-nested-property properties.eo:cloud_cover
)
sets=(
    "core features item-search collections filter"
    "item-search#sort item-search#fields item-search#query"
    "features#sort features#fields features#query"
)
failed=()
passed=0
for set in "${sets[@]}"; do
    step "stac-api-validator: $set"
    args=()
    for class in $set; do args+=(--conformance "$class"); done
    out=$work/validator-${set%% *}.txt
    out=${out//#/-}
    status=0
    "$py" scripts/interop_client.py validate "$venv/stac-schemas-v1.0.0" \
        "$tools/stac_api_validator_offline.py" \
        --root-url "$url" --collection sentinel-2-l2a --geometry "$geometry" \
        "${query_options[@]}" "${args[@]}" >"$out" 2>&1 || status=$?
    # The validator's INFO log lines are noise here; the verdict is in the rest.
    grep -v -E '^INFO:' "$out" || true
    if grep -q -x 'Errors: none' "$out" && [[ $status == 0 ]]; then
        passed=$((passed + 1))
    else
        failed+=("stac-api-validator ($set)")
    fi
done

# 5. pystac-client against the CLI.
step "pystac-client against stacdb search"
if "$py" scripts/interop_client.py compare "$url" "$stacdb" "$catalog"; then
    passed=$((passed + 1))
else
    failed+=("pystac-client comparison")
fi

# 6. The verdict.
elapsed=$(($(date +%s) - start))
echo
if ((${#failed[@]})); then
    echo "interop: failed: ${failed[*]} (${elapsed}s; server log: $work/serve.log," \
        "validator outputs: $work/validator-*.txt)"
    echo "interop: $passed passed, ${#failed[@]} failed"
    exit 1
fi
echo "interop: all checks passed in ${elapsed}s"
echo "interop: $passed passed, 0 failed"
