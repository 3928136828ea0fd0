#!/usr/bin/env bash
# Runs a command with local Apache Kafka brokers up: starts each one that is not running,
# runs the command, and stops again only the brokers this script started (also when the
# command fails or is interrupted). Exit status: the command's.
#
# Usage: tests/broker/with-broker.sh <command> [args...]
# Environment:
#   KAFKA_BROKERS_UP   the brokers as version:port pairs (default "3.9.1:9092 4.1.2:9094")
#   others as tests/broker/kafka.sh (KAFKA_START_TIMEOUT, KAFKA_HEAP_OPTS, ...).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=()
stop_started() {
  local b
  for b in ${started[@]+"${started[@]}"}; do
    KAFKA_VERSION="${b%%:*}" KAFKA_PORT="${b##*:}" bash "$here/kafka.sh" down ||
      echo "with-broker.sh: could not stop Kafka $b" >&2
  done
}
trap stop_started EXIT
trap 'exit 130' INT TERM
for b in ${KAFKA_BROKERS_UP:-3.9.1:9092 4.1.2:9094}; do
  version="${b%%:*}" port="${b##*:}"
  if ! KAFKA_VERSION="$version" KAFKA_PORT="$port" bash "$here/kafka.sh" status >/dev/null 2>&1; then
    KAFKA_VERSION="$version" KAFKA_PORT="$port" bash "$here/kafka.sh" up || exit 1
    started+=("$b")
  fi
done
"$@"
