#!/usr/bin/env bash
# Fuzzes stacdb with cargo-fuzz and libFuzzer (fuzz/, docs/RELIABILITY.md "Fuzzing").
#
#   scripts/fuzz.sh TARGET [SECONDS]     run one target (default 600 s)
#   scripts/fuzz.sh all SECONDS          run every target in turn, SECONDS each
#   scripts/fuzz.sh seed [TARGET|all]    (re)generate the seed corpora only
#   scripts/fuzz.sh build                build the targets only
#   scripts/fuzz.sh list                 list the targets
#
# Targets: document, cql2, freetext, token, query_string.
#
# - cargo-fuzz is installed when missing (`cargo install cargo-fuzz --locked`).
# - cargo-fuzz passes nightly-only flags (-Zsanitizer=address, …). Only a stable toolchain is
#   needed: RUSTC_BOOTSTRAP=1 lets stable rustc accept them (set here).
# - Each corpus (fuzz/corpus/TARGET, git-ignored) is seeded at run time from the shared STAC
#   data (STACDB_TEST_DATA, default ../shared/data) by scripts/fuzz_seeds.py; nothing from the
#   shared data is committed. Without the data the targets run from an empty corpus, after a
#   loud warning (an error when STACDB_REQUIRE_DATA=1).
# - Crashes land in fuzz/artifacts/TARGET/; each run's libFuzzer log in fuzz/logs/. Replay a
#   crash with `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…`.
# - One libFuzzer process (one core) at a time; FUZZ_ARGS adds libFuzzer options.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TARGETS=(document cql2 freetext token query_string)
export RUSTC_BOOTSTRAP=1
# The document normaliser splits arrays with rayon: one worker is enough to find bugs.
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-1}"
DATA="${STACDB_TEST_DATA:-$ROOT/../shared/data}"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

ensure_cargo_fuzz() {
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "== installing cargo-fuzz"
        cargo install cargo-fuzz --locked
    fi
}

max_len() {
    case "$1" in
        document) echo 65536 ;;
        *) echo 4096 ;;
    esac
}

cql2_examples() {
    # The cql2 crate ships the specification's examples; find its sources through cargo.
    cargo metadata --format-version 1 --locked 2>/dev/null | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "cql2":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "examples"))
        break
' || true
}

seed() {
    local target=$1 corpus="$ROOT/fuzz/corpus/$1"
    mkdir -p "$corpus"
    if [ ! -f "$DATA/MANIFEST.md" ]; then
        if [ "${STACDB_REQUIRE_DATA:-}" = 1 ]; then
            echo "fuzz.sh: shared data folder $DATA is missing and STACDB_REQUIRE_DATA=1" >&2
            exit 1
        fi
        echo "" >&2
        echo "*** fuzz.sh: shared data folder $DATA not found (set STACDB_TEST_DATA): $target runs WITHOUT real-data seeds ***" >&2
        echo "" >&2
        return
    fi
    local extra=()
    case "$target" in
        token | query_string)
            cargo build --quiet --bin stacdb
            extra+=(--stacdb "$ROOT/target/debug/stacdb")
            ;;
        cql2)
            extra+=(--cql2-examples "$(cql2_examples)")
            ;;
    esac
    python3 "$ROOT/scripts/fuzz_seeds.py" "$DATA" "$target" "$corpus" "${extra[@]}"
}

run() {
    local target=$1 seconds=$2
    ensure_cargo_fuzz
    if [ ! -f "$ROOT/fuzz/corpus/.$target.seeded" ]; then
        seed "$target"
        touch "$ROOT/fuzz/corpus/.$target.seeded"
    fi
    mkdir -p "$ROOT/fuzz/artifacts/$target" "$ROOT/fuzz/logs"
    local log
    log="$ROOT/fuzz/logs/$target-$(date -u +%Y%m%dT%H%M%SZ).log"
    echo "== fuzzing $target for $seconds s (log: ${log#"$ROOT"/})"
    # -a: debug assertions (integer overflow checks) on, as in `cargo test`.
    local status pipe
    set +e
    # shellcheck disable=SC2086
    cargo fuzz run -a "$target" "$ROOT/fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=30 \
        -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$ROOT/fuzz/artifacts/$target/" ${FUZZ_ARGS:-} 2>&1 | tee "$log" \
        | grep -E '^(#[0-9]+ +(INITED|DONE|pulse)|Done |==[0-9]+==|SUMMARY|stat::|thread .* panicked|artifact_prefix)'
    pipe=("${PIPESTATUS[@]}")
    set -e
    status=${pipe[0]}
    local crashes
    crashes=$(find "$ROOT/fuzz/artifacts/$target" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
    echo "== $target: exit $status, $crashes artifact(s) in fuzz/artifacts/$target"
    return "$status"
}

[ $# -ge 1 ] || usage
case "$1" in
    list) printf '%s\n' "${TARGETS[@]}" ;;
    build)
        ensure_cargo_fuzz
        cargo fuzz build -a
        ;;
    seed)
        for t in $([ "${2:-all}" = all ] && echo "${TARGETS[@]}" || echo "$2"); do
            seed "$t"
            touch "$ROOT/fuzz/corpus/.$t.seeded"
        done
        ;;
    all)
        [ $# -ge 2 ] || usage
        failed=0
        for t in "${TARGETS[@]}"; do
            run "$t" "$2" || failed=1
        done
        exit $failed
        ;;
    *)
        printf '%s\n' "${TARGETS[@]}" | grep -qx "$1" || { echo "unknown target: $1" >&2; usage; }
        run "$1" "${2:-600}"
        ;;
esac
