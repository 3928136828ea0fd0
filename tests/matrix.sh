#!/usr/bin/env bash
# Every test, then the broker suites once more per transport and broker version:
#   1. all tests (unit, property, doctests, in-memory scenarios, the modern transport's own
#      suites on Kafka 3.9.1 and 4.1.2, examples compiled), broker suites on the `kafka`
#      crate transport against Kafka 3.9.1;
#   2. the producer and consumer broker suites on the modern transport, Kafka 3.9.1;
#   3. the same on the modern transport, Kafka 4.1.2;
#   3b. the same on the modern transport, Kafka 4.4.0 (the newest Maven serves);
#   4. built with every optional feature (lz4, zstd: C code; tls, sasl): the modern
#      transport's codec round trips with all five codecs against Kafka 3.9.1 and 4.1.2, and
#      the producer's compressed batches read back by the Java consumer on 3.9.1.
#   5. with the same build: TLS and SASL (PLAIN, SCRAM-SHA-256/512) on the modern
#      transport against the secure Kafka 3.9.1 (ports 9300-9304, KAFKA_SECURE=1 in kafka.sh).
#   6. the chaos suite's short version (tests/chaos/run.sh, CHAOS_SHORT=1): the 3-node cluster
#      on 9192/9292/9392 with faults; `make chaos` runs the full one.
# Every stage runs even if an earlier one failed; the exit status says whether all passed.
# Expects the brokers up (tests/broker/with-broker.sh starts them).
set -uo pipefail
suites=(--test producer_kafka --test consumer_kafka --test consumer_kill)
failed=()
# The optional features, built once for the last two stages.
all_features=lz4,zstd,tls,sasl
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
stage "broker tests beside the code (--ignored in cargo test --lib) on Kafka 4.1.2" \
  cargo test --no-fail-fast --lib -- --ignored
stage "the README's quick start (examples/quickstart.rs) against Kafka 3.9.1" \
  env KAFKA_BROKERS=127.0.0.1:9092 timeout 180 cargo run --quiet --example quickstart
stage "broker suites on modern / Kafka 3.9.1" \
  env KAFKA_TEST_TRANSPORT=modern KAFKA_TEST_BROKERS=127.0.0.1:9092 KAFKA_TEST_VERSION=3.9.1 \
  cargo test --no-fail-fast "${suites[@]}"
stage "broker suites on modern / Kafka 4.1.2" \
  env KAFKA_TEST_TRANSPORT=modern KAFKA_TEST_BROKERS=127.0.0.1:9094 KAFKA_TEST_VERSION=4.1.2 \
  cargo test --no-fail-fast "${suites[@]}"
stage "broker suites on modern / Kafka 4.4.0" \
  env KAFKA_TEST_TRANSPORT=modern KAFKA_TEST_BROKERS=127.0.0.1:9096 KAFKA_TEST_VERSION=4.4.0 \
  cargo test --no-fail-fast "${suites[@]}"
stage "lz4 and zstd on modern / Kafka 3.9.1 and 4.1.2" \
  env KAFKA_TEST_TRANSPORT=modern KAFKA_TEST_BROKERS=127.0.0.1:9092 KAFKA_TEST_VERSION=3.9.1 \
  cargo test --no-fail-fast --features "$all_features" --lib --test modern_wire --test producer_kafka \
  -- every_codec modern::records compressed_batches
stage "TLS and SASL on modern / secure Kafka 3.9.1" \
  env KAFKA_SECURE_TEST_BROKER=127.0.0.1:9300 \
  cargo test --no-fail-fast --features "$all_features" --lib --test modern_security
stage "chaos, short version (3-node cluster started for it; CHAOS_SHORT=1 bash tests/chaos/run.sh)" \
  env CHAOS_SHORT=1 bash tests/chaos/run.sh
echo
if ((${#failed[@]})); then
  printf 'matrix.sh: FAILED stage: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "matrix.sh: every stage passed"
