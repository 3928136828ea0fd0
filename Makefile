# kafka-sync: the two commands are `make demo` and `make test` (see README.md).
.PHONY: demo test test-unit lint bench kafka-up kafka-down kafka-status

BROKER := tests/broker/kafka.sh
WITH_BROKER := bash tests/broker/with-broker.sh

## The pipeline demo on the embedded in-memory transport (no broker needed).
demo:
	cargo run --quiet --example pipeline

## Every test (unit, property, doctests, integration against a real Apache Kafka started
## here if none runs, examples compiled), then formatting and lints.
test:
	$(WITH_BROKER) cargo test --no-fail-fast
	$(MAKE) lint

## Tests that need no broker.
test-unit:
	cargo test --lib

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --quiet -- -D warnings

## Throughput and latency against the local broker (release build).
bench:
	$(WITH_BROKER) cargo run --release --quiet --example bench

## Start the local broker (jars fetched from Maven Central on first use).
kafka-up:
	bash $(BROKER) up

## Stop the broker started by kafka-up.
kafka-down:
	bash $(BROKER) down

kafka-status:
	bash $(BROKER) status
