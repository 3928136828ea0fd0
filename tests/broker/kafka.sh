#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) broker for tests. No Docker, no
# tarballs: the broker jars come from Maven Central via tests/broker/pom.xml.
#
# Usage: tests/broker/kafka.sh up|down|kill|status|wait|logs|reader-classpath
#
# Environment:
#   KAFKA_VERSION          broker version (default 3.9.1; 4.x works too)
#   KAFKA_PORT             PLAINTEXT port on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port (default KAFKA_PORT+1)
#   KAFKA_DIR              state dir (default <repo>/target/kafka/<version>-<port>)
#                          holds server.properties, log4j config, data/, logs/,
#                          broker.pid
#   KAFKA_START_TIMEOUT    seconds `up`/`wait` wait for the broker (default 90)
#   KAFKA_HEAP_OPTS        default "-Xms256m -Xmx512m"
#   KAFKA_JVM_OPTS         extra JVM flags (default: serial GC etc., see below)
#   KAFKA_NODE_ID          KRaft node id (default 1)
#   KAFKA_VOTERS           controller.quorum.voters (default: this node alone)
#   KAFKA_CLUSTER_ID       cluster id to format the storage with (default: a random one)
#   KAFKA_REPLICATION      default and internal topics' replication factor (default 1)
#   KAFKA_MIN_ISR          min.insync.replicas (default 1)
#   KAFKA_ADVERTISED_PORT  the port metadata tells clients to use (default KAFKA_PORT; the
#                          chaos suite puts a stalling TCP proxy there)
#   KAFKA_WAIT             0: `up` launches the broker and returns without waiting for it
#                          (the nodes of a cluster answer only once a quorum formed; see
#                          tests/broker/cluster.sh); default 1
#   KAFKA_SECURE           1: also listen with SASL_PLAINTEXT on KAFKA_PORT+2, SSL on +3 and
#                          SASL_SSL on +4 (see "Secure mode" below); default 0: PLAINTEXT only
#
# Secure mode (KAFKA_SECURE=1; tests/broker/with-broker.sh starts it as 3.9.1:9300:secure):
# SASL mechanisms PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, one user `alice` with password
# `alice-secret` for each (PLAIN through the listeners' JAAS config, SCRAM credentials
# written when the storage is formatted). TLS with a test CA made by keytool on first use:
# KAFKA_DIR/tls/ca.pem is the CA for clients; the broker certificate is valid for
# localhost and 127.0.0.1. The controller and the PLAINTEXT listener stay plain.
#
# Jars: <repo>/target/kafka-broker/<version>/libs (fetched once, stamped).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

KAFKA_VERSION="${KAFKA_VERSION:-3.9.1}"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_DIR="$(realpath -m "${KAFKA_DIR:-$REPO_ROOT/target/kafka/${KAFKA_VERSION}-${KAFKA_PORT}}")"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
KAFKA_SECURE="${KAFKA_SECURE:-0}"
HOST=127.0.0.1
KAFKA_NODE_ID="${KAFKA_NODE_ID:-1}"
KAFKA_VOTERS="${KAFKA_VOTERS:-$KAFKA_NODE_ID@$HOST:$KAFKA_CONTROLLER_PORT}"
KAFKA_CLUSTER_ID="${KAFKA_CLUSTER_ID:-}"
KAFKA_REPLICATION="${KAFKA_REPLICATION:-1}"
KAFKA_MIN_ISR="${KAFKA_MIN_ISR:-1}"
KAFKA_WAIT="${KAFKA_WAIT:-1}"

KAFKA_MAJOR="${KAFKA_VERSION%%.*}"
LIB_ROOT="$REPO_ROOT/target/kafka-broker/$KAFKA_VERSION"
LIBS="$LIB_ROOT/libs"
STAMP="$LIB_ROOT/.complete"
POM="$SCRIPT_DIR/pom.xml"
PROBE="$SCRIPT_DIR/kafka_probe.py"

PID_FILE="$KAFKA_DIR/broker.pid"
CONF="$KAFKA_DIR/server.properties"
DATA_DIR="$KAFKA_DIR/data"
LOG_DIR="$KAFKA_DIR/logs"
SERVER_OUT="$LOG_DIR/server.out"
SERVER_LOG="$LOG_DIR/server.log"

# Listeners: PLAINTEXT and the controller; secure mode adds three more (setup_secure).
LISTENERS="PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT"
ADVERTISED="PLAINTEXT://$HOST:${KAFKA_ADVERTISED_PORT:-$KAFKA_PORT}"
PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
PORTS=("$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT")
SECURE_PORTS=()
TLS_DIR="$KAFKA_DIR/tls"
TLS_PASS=kafka-sync-test
SASL_USER=alice
SASL_PASSWORD=alice-secret

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: ERROR: $*" >&2; exit 1; }

# Secure mode's functions (setup_secure, make_certs, write_secure_config, scram_args,
# wait_secure_ports); they do nothing unless KAFKA_SECURE=1 asks for them.
# shellcheck source=tests/broker/secure.sh
source "$SCRIPT_DIR/secure.sh"

if [[ "$KAFKA_MAJOR" -ge 4 ]]; then
  PROFILE=kafka4
  LOG_CONF="$KAFKA_DIR/log4j2.properties"
  LOG_OPT="-Dlog4j2.configurationFile=$LOG_CONF"
else
  PROFILE=kafka3
  LOG_CONF="$KAFKA_DIR/log4j.properties"
  LOG_OPT="-Dlog4j.configuration=file:$LOG_CONF"
fi

# ---------------------------------------------------------------- helpers --

# pid from the pid file if it is a live kafka.Kafka process for this dir.
live_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse: must be our broker with our config file.
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
  [[ "$cmdline" == *kafka.Kafka*"$CONF"* ]] || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

probe_ready() { python3 "$PROBE" ready "$HOST" "$KAFKA_PORT" 3 >/dev/null 2>&1; }

port_owner() {
  { ss -ltnp 2>/dev/null || true; } | awk -v p=":$1" '$4 ~ p"$" {print $NF}' | head -1 || true
}

fetch_jars() {
  local want
  want="$KAFKA_VERSION $PROFILE $(sha256sum "$POM" | cut -c1-16)"
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -d "$LIBS" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed to fetch Kafka jars from Maven Central)"
  say "fetching Kafka $KAFKA_VERSION jars with Maven into ${LIBS#$REPO_ROOT/}"
  mkdir -p "$LIB_ROOT"
  local tmp="$LIB_ROOT/libs.tmp.$$" mlog="$LIB_ROOT/mvn.log"
  rm -rf "$tmp"
  if ! mvn -B -q -Dstyle.color=never -f "$POM" -P"$PROFILE" \
        -Dkafka.version="$KAFKA_VERSION" \
        dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp" >"$mlog" 2>&1; then
    tail -n 40 "$mlog" >&2 || true
    rm -rf "$tmp"
    die "mvn failed to fetch kafka_2.13:$KAFKA_VERSION (log: $mlog)"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"; }
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  echo "$want" >"$STAMP"
  say "fetched $(ls "$LIBS" | wc -l) jars"
}

write_configs() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  cat >"$CONF" <<EOF
# Generated by tests/broker/kafka.sh (Kafka $KAFKA_VERSION) - rewritten on each 'up'.
process.roles=broker,controller
node.id=$KAFKA_NODE_ID
listeners=$LISTENERS
advertised.listeners=$ADVERTISED
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$PROTOCOL_MAP
controller.quorum.voters=$KAFKA_VOTERS
log.dirs=$DATA_DIR

auto.create.topics.enable=true
delete.topic.enable=true
num.partitions=3
default.replication.factor=$KAFKA_REPLICATION
min.insync.replicas=$KAFKA_MIN_ISR
offsets.topic.replication.factor=$KAFKA_REPLICATION
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$KAFKA_REPLICATION
transaction.state.log.min.isr=$KAFKA_MIN_ISR
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0

# message.max.bytes stays at Kafka's default (1 MB), so the tests see what users see; a
# test that needs more sets the topic's max.message.bytes when it creates the topic.

# Keep it light on a 2-core box with a 512 MB heap.
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
EOF
  if [[ "$KAFKA_SECURE" == 1 ]]; then
    write_secure_config
  fi
  if [[ "$KAFKA_MAJOR" -ge 4 ]]; then
    cat >>"$CONF" <<EOF

# Kafka 4.x: internal share-group state topic on a single node.
share.coordinator.state.topic.replication.factor=$KAFKA_REPLICATION
share.coordinator.state.topic.min.isr=$KAFKA_MIN_ISR
EOF
    cat >"$LOG_CONF" <<EOF
# log4j2 config for Kafka $KAFKA_VERSION (generated by kafka.sh)
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $SERVER_LOG
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
EOF
  else
    cat >"$LOG_CONF" <<EOF
# log4j 1.x (reload4j) config for Kafka $KAFKA_VERSION (generated by kafka.sh)
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$SERVER_LOG
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
  fi
}

random_cluster_id() {
  python3 - <<'EOF'
import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s)
        break
EOF
}

format_storage() {
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    return 0
  fi
  local cid="$KAFKA_CLUSTER_ID"
  [[ -n "$cid" ]] || cid="$(random_cluster_id)"
  say "formatting storage in ${DATA_DIR#$REPO_ROOT/} (cluster id $cid)"
  local flog="$LOG_DIR/format.out" scram=()
  mapfile -t scram < <(scram_args)
  if ! java $LOG_OPT -cp "$LIBS/*" kafka.tools.StorageTool format \
        -t "$cid" -c "$CONF" ${scram[@]+"${scram[@]}"} >"$flog" 2>&1; then
    cat "$flog" >&2
    die "storage format failed"
  fi
}

# Wait until the broker answers Metadata with itself listed.
# $1 = pid to watch (optional): give up early if it dies.
wait_ready() {
  local pid="${1:-}" deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if probe_ready; then
      return 0
    fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      return 2
    fi
    sleep 0.5
  done
  return 1
}

show_log_tail() {
  local f
  for f in "$SERVER_LOG" "$SERVER_OUT"; do
    if [[ -s "$f" ]]; then
      echo "----- last 40 lines of $f -----" >&2
      tail -n 40 "$f" >&2
    fi
  done
}

stop_pid() {
  local pid="$1" i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 60; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  say "broker pid $pid did not stop in 30s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 20; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.25
  done
}

# --------------------------------------------------------------- commands --

cmd_up() {
  local t0=$SECONDS pid
  if pid="$(live_pid)"; then
    if probe_ready; then
      say "Kafka $KAFKA_VERSION already running on $HOST:$KAFKA_PORT (pid $pid); reusing it"
      return 0
    fi
    say "Kafka $KAFKA_VERSION process $pid exists but not answering yet; waiting"
    if wait_ready "$pid"; then
      say "Kafka $KAFKA_VERSION ready on $HOST:$KAFKA_PORT (pid $pid)"
      return 0
    fi
    show_log_tail
    die "existing broker pid $pid did not become ready within ${KAFKA_START_TIMEOUT}s (not killed; use 'down')"
  fi
  rm -f "$PID_FILE"

  if port_open "$KAFKA_PORT" && probe_ready; then
    say "a Kafka broker not started from ${KAFKA_DIR#$REPO_ROOT/} already answers on $HOST:$KAFKA_PORT; using it as it is ('down' will leave it running)"
    return 0
  fi

  local p owner
  for p in "${PORTS[@]}"; do
    if port_open "$p"; then
      owner="$(port_owner "$p")"
      die "port $HOST:$p is already in use by another process${owner:+ ($owner)}, not started by this script for $KAFKA_DIR; pick another KAFKA_PORT / KAFKA_CONTROLLER_PORT"
    fi
  done

  command -v java >/dev/null || die "java not found"
  command -v python3 >/dev/null || die "python3 not found"
  fetch_jars
  if [[ "$KAFKA_SECURE" == 1 ]]; then
    make_certs
  fi
  write_configs
  format_storage

  say "starting Kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), dir ${KAFKA_DIR#$REPO_ROOT/}"
  : >"$SERVER_OUT"
  # The inner bash records its own pid and then execs java, so the pid file
  # names the broker JVM itself. setsid detaches it from our session/tty.
  # shellcheck disable=SC2086
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS "$LOG_OPT" \
    -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$LIBS/*" kafka.Kafka "$CONF" \
    >>"$SERVER_OUT" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s "$PID_FILE" ]] && break
    sleep 0.1
  done
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [[ -n "$pid" ]] || die "failed to launch broker (no pid written)"
  if [[ "$KAFKA_WAIT" == 0 ]]; then
    say "launched Kafka $KAFKA_VERSION node $KAFKA_NODE_ID on $HOST:$KAFKA_PORT (pid $pid); not waiting"
    return 0
  fi

  local rc=0
  wait_ready "$pid" || rc=$?
  if ((rc == 0)); then
    wait_secure_ports
    say "Kafka $KAFKA_VERSION ready on $HOST:$KAFKA_PORT (pid $pid) after $((SECONDS - t0))s; logs: ${LOG_DIR#$REPO_ROOT/}"
    return 0
  fi
  if ((rc == 2)); then
    echo "kafka.sh: ERROR: broker process $pid exited during startup" >&2
  else
    echo "kafka.sh: ERROR: broker did not answer on $HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s; stopping pid $pid" >&2
    stop_pid "$pid"
  fi
  rm -f "$PID_FILE"
  show_log_tail
  exit 1
}

cmd_down() {
  local pid
  if pid="$(live_pid)"; then
    say "stopping Kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (pid $pid)"
    stop_pid "$pid"
    rm -f "$PID_FILE"
    say "stopped"
  else
    if [[ -f "$PID_FILE" ]]; then
      rm -f "$PID_FILE"
      say "stale pid file removed; Kafka $KAFKA_VERSION on port $KAFKA_PORT was not running"
    else
      say "Kafka $KAFKA_VERSION on port $KAFKA_PORT is not running (no pid file in ${KAFKA_DIR#$REPO_ROOT/})"
    fi
  fi
}

cmd_status() {
  local pid
  if pid="$(live_pid)"; then
    if probe_ready; then
      say "running: Kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (pid $pid), ready"
    else
      say "running: Kafka $KAFKA_VERSION (pid $pid) but not answering on $HOST:$KAFKA_PORT yet"
    fi
    return 0
  fi
  if port_open "$KAFKA_PORT"; then
    say "not running (from this dir), but port $HOST:$KAFKA_PORT is in use by another process"
  else
    say "not running: Kafka $KAFKA_VERSION on port $KAFKA_PORT"
  fi
  return 3
}

cmd_wait() {
  local pid=""
  pid="$(live_pid || true)"
  if wait_ready "$pid"; then
    say "Kafka on $HOST:$KAFKA_PORT is ready"
    return 0
  fi
  show_log_tail
  die "Kafka on $HOST:$KAFKA_PORT not ready within ${KAFKA_START_TIMEOUT}s"
}

# kill -9 of the broker (a crash: no controlled shutdown); the data stays for a restart.
cmd_kill() {
  local pid
  if pid="$(live_pid)"; then
    say "kill -9 Kafka node $KAFKA_NODE_ID on $HOST:$KAFKA_PORT (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    rm -f "$PID_FILE"
  else
    say "Kafka on port $KAFKA_PORT is not running; nothing to kill"
  fi
}

cmd_logs() {
  tail -n "${1:-100}" "$SERVER_LOG"
}

# Compiles tests/broker/ReadBack.java (the tests' independent reader, Kafka's own Java
# consumer) against this version's jars, fetching them if needed; prints the classpath.
cmd_reader_classpath() {
  local out="$LIB_ROOT/reader" src="$SCRIPT_DIR/ReadBack.java"
  fetch_jars >&2
  if [[ ! -f "$out/ReadBack.class" || "$src" -nt "$out/ReadBack.class" ]]; then
    local tmp
    tmp="$(mktemp -d "$LIB_ROOT/reader.XXXXXX")"
    javac -nowarn -d "$tmp" -cp "$LIBS/*" "$src" >&2 || die "javac ReadBack.java failed"
    rm -rf "$out"
    mv "$tmp" "$out" 2>/dev/null || rm -rf "$tmp"
  fi
  echo "$LIBS/*:$out"
}

if [[ "$KAFKA_SECURE" == 1 ]]; then
  setup_secure
fi

case "${1:-}" in
  up) cmd_up ;;
  reader-classpath) cmd_reader_classpath ;;
  down) cmd_down ;;
  kill) cmd_kill ;;
  status) cmd_status ;;
  wait) cmd_wait ;;
  logs) shift; cmd_logs "$@" ;;
  *)
    echo "usage: $0 up|down|kill|status|wait|logs [N]|reader-classpath" >&2
    echo "  env: KAFKA_VERSION=$KAFKA_VERSION KAFKA_PORT=$KAFKA_PORT KAFKA_DIR=$KAFKA_DIR" >&2
    exit 2
    ;;
esac
