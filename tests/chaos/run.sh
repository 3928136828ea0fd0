#!/usr/bin/env bash
# Runs every chaos scenario and adds up what they counted (`make chaos`; `CHAOS_SHORT=1`:
# the short version inside `make test`).
#
# A scenario is an #[ignore]d test in a tests/chaos_*.rs file; each prints one line
#   chaos-scenario: name=<name> acked=<N> lost=<M> duplicated=<D> errors=<E>
# and checks its own expectations. This script starts the 3-node cluster
# (tests/broker/cluster.sh) unless it runs, runs every tests/chaos_*.rs (or the space-separated
# list in CHAOS_SUITES) with --ignored, one scenario at a time, stops the cluster again if it
# started it, and ends with
#   chaos: N scenarios, M messages acknowledged, L lost, D duplicated, E errors
# (D: records on a topic beyond the first of their message id). Exit status: non-zero when
# a message acknowledged was lost, a record was written twice, a scenario failed its own
# checks, or no scenario ran.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
cluster="bash tests/broker/cluster.sh"

started=0
if ! $cluster status >/dev/null 2>&1; then
  $cluster up || { echo "chaos: the 3-node cluster did not start" >&2; exit 1; }
  started=1
fi
cleanup() {
  if ((started)); then
    $cluster down >/dev/null 2>&1 || echo "chaos: could not stop the cluster" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -n "${CHAOS_SUITES:-}" ]]; then
  read -r -a suites <<<"$CHAOS_SUITES"
else
  suites=()
  for f in tests/chaos_*.rs; do
    suites+=("$(basename "$f" .rs)")
  done
fi

log="$(mktemp)"
failed=()
for s in "${suites[@]}"; do
  echo "=== chaos suite $s${CHAOS_SHORT:+ (CHAOS_SHORT=$CHAOS_SHORT)}"
  if ! cargo test --quiet --test "$s" -- --ignored --nocapture --test-threads=1 2>&1 | tee -a "$log"; then
    failed+=("$s")
  fi
done

echo
grep -o 'chaos-scenario: .*' "$log" || true
read -r n acked lost dups errors < <(awk '
  /chaos-scenario: / {
    n++
    line = substr($0, index($0, "chaos-scenario: ") + 16)
    m = split(line, f, " ")
    for (i = 1; i <= m; i++) {
      split(f[i], kv, "=")
      if (kv[1] == "acked") a += kv[2]
      if (kv[1] == "lost") l += kv[2]
      if (kv[1] == "duplicated") d += kv[2]
      if (kv[1] == "errors") e += kv[2]
    }
  }
  END { printf "%d %d %d %d %d\n", n, a, l, d, e }' "$log")
rm -f "$log"
echo "chaos: $n scenarios, $acked messages acknowledged, $lost lost, $dups duplicated, $errors errors"
if ((${#failed[@]})); then
  printf 'chaos: FAILED suite: %s\n' "${failed[@]}" >&2
  exit 1
fi
if ((n == 0)); then
  echo "chaos: no scenario ran" >&2
  exit 1
fi
if ((lost > 0 || dups > 0)); then
  exit 1
fi
