#!/usr/bin/env bash
# The long reliability runs of issue 7 (docs/RELIABILITY.md), on a release build:
# the concurrency soak for STACDB_SOAK_SECONDS (default 600), then at least 100 killed
# ingests and 100 killed deletes, and 100 killed exports (CI kills 50 of each).
#
#   scripts/soak.sh                      # 10 minutes of soak, then the crash runs
#   STACDB_SOAK_SECONDS=3600 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export STACDB_SOAK_SECONDS="${STACDB_SOAK_SECONDS:-600}"
echo "== soak: ${STACDB_SOAK_SECONDS} s (8 writers, 4 readers, serve)"
cargo test --release --test soak -- --ignored --nocapture soak_long
echo "== crash: killed ingests, deletes and exports"
STACDB_CRASH_RUNS="${STACDB_CRASH_RUNS:-100}" STACDB_CRASH_EXPORTS="${STACDB_CRASH_EXPORTS:-100}" \
    cargo test --release --test crash -- --nocapture
