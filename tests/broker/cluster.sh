#!/usr/bin/env bash
# A 3-node Apache Kafka (KRaft) cluster on loopback for the fault tests: every node is
# broker and controller, replication 3 and min.insync.replicas 2 by default, so a cluster
# with one node down still accepts acks=all writes. Each node is a tests/broker/kafka.sh
# broker with its own port, node id and data dir, all formatted with one cluster id.
#
# Usage: tests/broker/cluster.sh up|down|status|bootstrap
#        tests/broker/cluster.sh kill N | start N      (N = 1..3: kill -9 / start one node)
#        tests/broker/cluster.sh leader TOPIC PARTITION  (prints the leader's node number)
#
# Nodes: node N listens on 127.0.0.1:${CLUSTER_PORT_BASE}+100*(N-1) (9192, 9292, 9392)
# with its controller on the next port (9193, 9293, 9393).
# Environment: KAFKA_VERSION (default 3.9.1), CLUSTER_NODES (3), CLUSTER_PORT_BASE (9192),
# CLUSTER_DIR (default <repo>/target/kafka/cluster-<version>), KAFKA_HEAP_OPTS
# (default "-Xms128m -Xmx384m"), KAFKA_START_TIMEOUT (90).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="${KAFKA_VERSION:-3.9.1}"
nodes="${CLUSTER_NODES:-3}"
base="${CLUSTER_PORT_BASE:-9192}"
dir="$(realpath -m "${CLUSTER_DIR:-$root/target/kafka/cluster-$version}")"
heap="${KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}"
timeout="${KAFKA_START_TIMEOUT:-90}"
HOST=127.0.0.1

say() { echo "cluster.sh: $*"; }
die() { echo "cluster.sh: ERROR: $*" >&2; exit 1; }

port_of() { echo $((base + 100 * ($1 - 1))); }

voters() {
  local n out=""
  for ((n = 1; n <= nodes; n++)); do
    out+="${out:+,}$n@$HOST:$(($(port_of "$n") + 1))"
  done
  echo "$out"
}

cluster_id() {
  mkdir -p "$dir"
  if [[ ! -s "$dir/cluster.id" ]]; then
    python3 -c 'import base64,uuid
while True:
    s=base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"): print(s); break' >"$dir/cluster.id"
  fi
  cat "$dir/cluster.id"
}

# Runs kafka.sh for node $1 with the remaining arguments.
node() {
  local n="$1"
  shift
  KAFKA_VERSION="$version" KAFKA_PORT="$(port_of "$n")" KAFKA_NODE_ID="$n" \
    KAFKA_VOTERS="$(voters)" KAFKA_CLUSTER_ID="$(cluster_id)" \
    KAFKA_REPLICATION="$((nodes < 3 ? nodes : 3))" KAFKA_MIN_ISR="$((nodes < 2 ? 1 : 2))" \
    KAFKA_DIR="$dir/node$n" KAFKA_HEAP_OPTS="$heap" KAFKA_START_TIMEOUT="$timeout" \
    bash "$here/kafka.sh" "$@"
}

bootstrap() {
  local n out=""
  for ((n = 1; n <= nodes; n++)); do
    out+="${out:+,}$HOST:$(port_of "$n")"
  done
  echo "$out"
}

# Waits until every node answers and lists all $nodes brokers (metadata can name a broker
# a few seconds before its own listener accepts connections).
wait_all() {
  local deadline=$((SECONDS + timeout)) n ready
  while ((SECONDS < deadline)); do
    ready=0
    for ((n = 1; n <= nodes; n++)); do
      if python3 "$here/kafka_probe.py" ready "$HOST" "$(port_of "$n")" 3 "$nodes" >/dev/null 2>&1; then
        ready=$((ready + 1))
      fi
    done
    ((ready == nodes)) && return 0
    sleep 0.5
  done
  return 1
}

cmd_up() {
  local t0=$SECONDS n
  # A fresh cluster unless every node's data is there (a stopped cluster starts again).
  for ((n = 1; n <= nodes; n++)); do
    if [[ ! -f "$dir/node$n/data/meta.properties" ]]; then
      if ! node "$n" status >/dev/null 2>&1; then
        rm -rf "$dir/node$n"
      fi
    fi
  done
  for ((n = 1; n <= nodes; n++)); do
    KAFKA_WAIT=0 node "$n" up
  done
  if ! wait_all; then
    for ((n = 1; n <= nodes; n++)); do
      tail -n 20 "$dir/node$n/logs/server.log" >&2 2>/dev/null || true
    done
    die "the $nodes nodes did not form a cluster within ${timeout}s"
  fi
  say "Kafka $version cluster of $nodes nodes ready at $(bootstrap) after $((SECONDS - t0))s"
}

cmd_down() {
  local n
  for ((n = 1; n <= nodes; n++)); do
    node "$n" down || true
  done
}

cmd_status() {
  local n rc=0
  for ((n = 1; n <= nodes; n++)); do
    node "$n" status || rc=3
  done
  return $rc
}

node_arg() {
  [[ "${1:-}" =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= nodes)) || die "expected a node number 1..$nodes, got '${1:-}'"
}

cmd_leader() {
  local topic="${1:?topic}" partition="${2:?partition}" n
  for ((n = 1; n <= nodes; n++)); do
    if python3 "$here/kafka_probe.py" leader "$HOST" "$(port_of "$n")" "$topic" "$partition" 3 2>/dev/null; then
      return 0
    fi
  done
  die "no node answered for $topic/$partition"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  bootstrap) bootstrap ;;
  kill) node_arg "${2:-}"; node "$2" kill ;;
  start) node_arg "${2:-}"; node "$2" up ;;
  leader) shift; cmd_leader "$@" ;;
  *)
    echo "usage: $0 up|down|status|bootstrap|kill N|start N|leader TOPIC PARTITION" >&2
    exit 2
    ;;
esac
