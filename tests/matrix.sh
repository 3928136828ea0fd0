#!/usr/bin/env bash
# Every test, then the broker suites once more per transport and broker version:
#   1. all tests (unit, property, doctests, in-memory scenarios, the modern transport's own
#      suites on Kafka 3.9.1 and 4.1.2, examples compiled), broker suites on the `kafka`
#      crate transport against Kafka 3.9.1;
#   2. the producer and consumer broker suites on the modern transport, Kafka 3.9.1;
#   3. the same on the modern transport, Kafka 4.1.2.
# Every stage runs even if an earlier one failed; the exit status says whether all passed.
# Expects the brokers up (tests/broker/with-broker.sh starts them).
set -uo pipefail
suites=(--test producer_kafka --test consumer_kafka --test consumer_kill)
failed=()
stage() {
  local name="$1"
  shift
  echo
  echo "=== $name"
  if ! "$@"; then
    failed+=("$name")
  fi
}
stage "all tests; broker suites on kafka-crate / Kafka 3.9.1" \
  env KAFKA_TEST_TRANSPORT=kafka-crate KAFKA_TEST_BROKERS=127.0.0.1:9092 KAFKA_TEST_VERSION=3.9.1 \
  cargo test --no-fail-fast
stage "broker suites on modern / Kafka 3.9.1" \
  env KAFKA_TEST_TRANSPORT=modern KAFKA_TEST_BROKERS=127.0.0.1:9092 KAFKA_TEST_VERSION=3.9.1 \
  cargo test --no-fail-fast "${suites[@]}"
stage "broker suites on modern / Kafka 4.1.2" \
  env KAFKA_TEST_TRANSPORT=modern KAFKA_TEST_BROKERS=127.0.0.1:9094 KAFKA_TEST_VERSION=4.1.2 \
  cargo test --no-fail-fast "${suites[@]}"
echo
if ((${#failed[@]})); then
  printf 'matrix.sh: FAILED stage: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "matrix.sh: every stage passed"
