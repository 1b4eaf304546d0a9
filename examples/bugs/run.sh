#!/usr/bin/env bash
# Every documented-bug case (README.md) through `rabbit-chaos run`, one at a time, one line each:
#   case | variant | expected | actual verdict | headline reasons
#
#   examples/bugs/run.sh                       # all cases
#   examples/bugs/run.sh pika-blocked 'kombu*' # the cases named (shell patterns allowed)
#
# Environment: BASE_PORT (24500), STATE_DIR (/tmp/rc-E3), REPORTS_DIR ($STATE_DIR/reports),
# RABBIT_CHAOS (the repo's .venv/bin/rabbit-chaos), EXTRA_ARGS (appended to every run, e.g.
# "--count 500"). Each run's full output goes to $STATE_DIR/run-<case>.log; exit status 0 when
# every actual verdict equals the expected one.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
BASE_PORT="${BASE_PORT:-24500}"
STATE_DIR="${STATE_DIR:-/tmp/rc-E3}"
REPORTS_DIR="${REPORTS_DIR:-$STATE_DIR/reports}"
RC="${RABBIT_CHAOS:-$root/.venv/bin/rabbit-chaos}"
EXTRA_ARGS="${EXTRA_ARGS:-}"
mkdir -p "$STATE_DIR" "$REPORTS_DIR"

"$here/setup.sh" >"$STATE_DIR/setup.log" 2>&1 || { echo "setup.sh failed: see $STATE_DIR/setup.log"; exit 2; }

B=examples/bugs
PIKA="$root/.venv/bin/python $B"
ALARM=(--fault memory-alarm --fault-for 20)
# name | variant | expected | client command | run arguments
CASES=(
  "pika-threaded-ack|job in a thread, 30 s job, hb 10|pass|$PIKA/pika_threaded_ack.py|--param job_s=30"
  "pika-inline-slow|30 s job inline, hb 10, reconnect|fail|$PIKA/pika_inline_slow.py|--param job_s=30"
  "pika-inline-slow-60|60 s job inline, hb 10, reconnect|fail|$PIKA/pika_inline_slow.py|--param job_s=60"
  "pika-inline-slow-exit|30 s job inline, hb 10, no reconnect|fail|$PIKA/pika_inline_slow.py|--param job_s=30 --param reconnect=0"
  "pika-blocked|no blocked_connection_timeout, alarm 20 s|fail|$PIKA/pika_blocked_publisher.py|${ALARM[*]}"
  "pika-blocked-fixed|blocked_connection_timeout=5, alarm 20 s|pass|$PIKA/pika_blocked_publisher.py|${ALARM[*]} --param blocked_timeout=5"
  "kombu54|kombu 5.4.2 confirm_publish, no deadline, alarm 20 s|fail|$B/.venv-kombu54/bin/python $B/kombu54_confirm_publish.py|${ALARM[*]}"
  "kombu54-fixed|kombu 5.4.2 publish(timeout=5), alarm 20 s|pass|$B/.venv-kombu54/bin/python $B/kombu54_confirm_publish.py|${ALARM[*]} --param confirm_timeout=5"
  "kombu55-fixed|kombu 5.5.0 publish(confirm_timeout=5), alarm 20 s|pass|$B/.venv-kombu55/bin/python $B/kombu54_confirm_publish.py|${ALARM[*]} --param confirm_timeout=5"
  "aio-pika-9.4.3|connect_robust, queue not kept, force-close|fail|$B/.venv-aiopika943/bin/python $B/aio_pika_943_robust.py|--fault force-close:target=consumer"
  "aio-pika-9.5.5|same code on 9.5.5, force-close|pass|$B/.venv-aiopika955/bin/python $B/aio_pika_943_robust.py|--fault force-close:target=consumer"
)

selected() {  # selected NAME: true when no filter given or NAME matches one of them (a shell pattern)
  [[ $# -eq 1 && ${#FILTERS[@]} -eq 0 ]] && return 0
  local f
  for f in "${FILTERS[@]}"; do [[ "$1" == $f ]] && return 0; done  # unquoted: a pattern
  return 1
}
FILTERS=("$@")

summary() {  # summary RESULTS_JSON EXPECTED -> "verdict<TAB>reasons"
  python3 - "$1" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
def text(x):
    if isinstance(x, dict):
        return x.get("headline") and f"{x['headline']}: {x.get('text', '')}" or x.get("text") or json.dumps(x)
    return str(x)
reasons = [text(x)[:140] for x in r.get("reasons") or []]
c, t = r.get("counts", {}), r.get("timing", {})
extra = (f"lost={c.get('lost')} stranded={c.get('stranded')} dup={c.get('duplicated')} "
         f"det={t.get('detection_s')} rec={t.get('recovery_s')}")
print(f"{r.get('verdict')}\t{' | '.join(reasons) or '-'}  [{extra}]")
EOF
}

status=0
printf '%-22s %-48s %-8s %-8s %s\n' case variant expected actual reasons
for spec in "${CASES[@]}"; do
  IFS='|' read -r name variant expected cmd args <<<"$spec"
  selected "$name" || continue
  marker="$STATE_DIR/.run-$name.marker"
  : >"$marker"
  # shellcheck disable=SC2086  # args and EXTRA_ARGS are word lists on purpose
  "$RC" run --client-cmd "$cmd" --client "$name" $args $EXTRA_ARGS \
      --base-port "$BASE_PORT" --state-dir "$STATE_DIR" --reports-dir "$REPORTS_DIR" \
      >"$STATE_DIR/run-$name.log" 2>&1
  result="$(find "$REPORTS_DIR" -mindepth 2 -maxdepth 2 -name results.json -newer "$marker" -path "*-$name-*" 2>/dev/null | sort | tail -1)"
  if [[ -z "$result" ]]; then
    line=$'no-result\tsee '"$STATE_DIR/run-$name.log"
  else
    line="$(summary "$result" "$expected")"
  fi
  actual="${line%%$'\t'*}"
  [[ "$actual" == "$expected" ]] || status=1
  printf '%-22s %-48s %-8s %-8s %s\n' "$name" "$variant" "$expected" "$actual" "${line#*$'\t'}"
done
exit $status
