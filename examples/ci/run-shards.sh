#!/usr/bin/env bash
# The GitHub Actions example (github-actions.yml) for any other CI system, as two commands.
#
#   examples/ci/run-shards.sh shard K N [matrix flags...]   one CI job: shard K of N into reports/
#   examples/ci/run-shards.sh merge DIR...                  the merge job: report.html, gated
#
# Run `shard` in N parallel jobs (K = 1..N), each on its own machine (or with its own
# --base-port and --state-dir on a shared one), every job with the same matrix flags; collect
# each job's reports/matrix-*-shard-K-of-N/ directory as an artifact; run `merge` over them.
# `merge` exits 1 when any cell failed, 3 when any is unknown, incomplete or a shard is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
CHAOS=${RABBIT_CHAOS:-.venv/bin/rabbit-chaos}
REPORTS=${RABBIT_CHAOS_REPORTS:-reports}   # where `shard` writes (the artifact to collect)
OUT=${RABBIT_CHAOS_REPORT:-report.html}    # what `merge` writes

case "${1:-}" in
  shard)
    [ $# -ge 3 ] || { echo "usage: $0 shard K N [matrix flags...]" >&2; exit 2; }
    k=$2 n=$3; shift 3
    [ -x "$CHAOS" ] || bash scripts/bootstrap.sh install
    # --no-fail-exit: the verdicts are judged once, by the merge; this job only has to run its cells
    exec "$CHAOS" matrix --shard "$k/$n" --no-fail-exit --reports-dir "$REPORTS" "$@" ;;
  merge)
    shift
    [ $# -ge 1 ] || { echo "usage: $0 merge DIR..." >&2; exit 2; }
    exec "$CHAOS" report "$@" --out "$OUT" --fail-exit ;;
  *)
    echo "usage: $0 shard K N [matrix flags...] | merge DIR..." >&2; exit 2 ;;
esac
