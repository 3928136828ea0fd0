#!/usr/bin/env bash
# Runs a command with local Apache Kafka brokers up: starts each one that is not running,
# runs the command, and stops again only the brokers this script started (also when the
# command fails or is interrupted). Exit status: the command's.
#
# Usage: tests/broker/with-broker.sh <command> [args...]
# Environment:
#   KAFKA_BROKERS_UP   the brokers as version:port pairs, a `:secure` suffix for a broker with
#                      TLS and SASL listeners too (KAFKA_SECURE=1 in kafka.sh; its own ports
#                      port..port+4) (default "3.9.1:9092 4.1.2:9094 4.4.0:9096 3.9.1:9300:secure")
#   others as tests/broker/kafka.sh (KAFKA_START_TIMEOUT, KAFKA_HEAP_OPTS, ...).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=()
# Runs kafka.sh for broker entry $1 (version:port[:secure]) with the remaining arguments.
kafka() {
  local version port mode
  IFS=: read -r version port mode <<<"$1"
  shift
  KAFKA_VERSION="$version" KAFKA_PORT="$port" KAFKA_SECURE="$([[ "$mode" == secure ]] && echo 1 || echo 0)" \
    bash "$here/kafka.sh" "$@"
}
stop_started() {
  local b
  for b in ${started[@]+"${started[@]}"}; do
    kafka "$b" down || echo "with-broker.sh: could not stop Kafka $b" >&2
  done
}
trap stop_started EXIT
trap 'exit 130' INT TERM
for b in ${KAFKA_BROKERS_UP:-3.9.1:9092 4.1.2:9094 4.4.0:9096 3.9.1:9300:secure}; do
  if ! kafka "$b" status >/dev/null 2>&1; then
    kafka "$b" up || exit 1
    started+=("$b")
  fi
done
"$@"
