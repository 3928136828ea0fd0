#!/usr/bin/env bash
# Runs a command with the local Apache Kafka broker up: starts it if it is not running,
# runs the command, and stops the broker again only if this script started it (also when
# the command fails or is interrupted). Exit status: the command's.
#
# Usage: tests/broker/with-broker.sh <command> [args...]
# Environment: as tests/broker/kafka.sh (KAFKA_VERSION, KAFKA_PORT, ...).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
started=0
stop_if_started() {
  if [[ $started == 1 ]]; then
    bash "$here/kafka.sh" down || echo "with-broker.sh: could not stop the broker it started" >&2
  fi
}
trap stop_if_started EXIT
trap 'exit 130' INT TERM
if ! bash "$here/kafka.sh" status >/dev/null 2>&1; then
  bash "$here/kafka.sh" up || exit 1
  started=1
fi
export KAFKA_TEST_BROKERS="${KAFKA_TEST_BROKERS:-127.0.0.1:${KAFKA_PORT:-9092}}"
"$@"
