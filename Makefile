# kafka-sync: the two commands are `make demo` and `make test` (see README.md).
.PHONY: demo test test-unit test-memory lint bench chaos kafka-up kafka-down kafka-status

BROKER := tests/broker/kafka.sh
CLUSTER := tests/broker/cluster.sh
## NODES=3: kafka-up / kafka-down / kafka-status act on the 3-node cluster
## (127.0.0.1:9192, 9292, 9392; replication 3, min.insync.replicas 2) instead.
NODES ?= 1
WITH_BROKER := bash tests/broker/with-broker.sh

## The pipeline demo on the embedded in-memory transport (no broker needed).
demo:
	cargo run --quiet --example pipeline

## Every test (unit, property, doctests, integration against real Apache Kafka 3.9.1 and
## 4.1.2 started here if not running, per transport; TLS and SASL against a secure 3.9.1 on
## ports 9300-9304; examples compiled), then formatting and lints. Brokers started here
## are stopped again, also on failure.
test:
	$(WITH_BROKER) bash tests/matrix.sh
	$(MAKE) lint

## Tests that need no broker.
test-unit:
	cargo test --lib

## Every test that needs no broker: unit tests, doctests, the in-memory suites and the
## contract suite's in-memory half (tests/contract: `…::memory::…`). The broker address
## points at a closed port, so a test that wrongly needs a broker fails here instead of
## quietly using one.
MEMORY_TESTS := consumer_bad_input consumer_dead_letters consumer_faults consumer_memory \
  consumer_memory_lifecycle consumer_outbox consumer_properties consumer_retry_topic \
  metrics_memory pipeline_memory producer_buffer_bytes producer_memory producer_properties \
  producer_semantics readme
NO_BROKER := env KAFKA_TEST_BROKERS=127.0.0.1:1 KAFKA_BROKERS=127.0.0.1:1
test-memory:
	$(NO_BROKER) cargo test --lib $(addprefix --test ,$(MEMORY_TESTS))
	$(NO_BROKER) cargo test --doc
	$(NO_BROKER) cargo test --test contract -- memory::

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --quiet -- -D warnings
	cargo clippy --all-targets --quiet --all-features -- -D warnings

## The fault suite (tests/chaos/run.sh): a 3-node cluster (started here unless running) with
## leaders killed, brokers restarted, the network stalled, bad bootstrap lists, partitions
## added, Produce answers held; ends with
## `chaos: N scenarios, M messages acknowledged, L lost, D duplicated, E errors`.
chaos:
	bash tests/chaos/run.sh

## Throughput, latency and CPU against a local Kafka 3.9.1 (started here if not running),
## and (k) against the 3-node cluster (started here if not running), each scenario beside a
## peer in the same run: Kafka's own Java tools (kafka-tools jars
## fetched with Maven), the bare `kafka` crate. BENCH_SCALE=0.1 for a quick look;
## BENCH_PORT picks the broker's port (default 9092); BENCH_PASSES (default 2).
BENCH_PORT ?= 9092
bench:
	bash examples/bench/java-tools.sh classpath >/dev/null
	cargo build --release --quiet --example bench
	KAFKA_BROKERS_UP=3.9.1:$(BENCH_PORT) KAFKA_TEST_BROKERS=127.0.0.1:$(BENCH_PORT) \
	  $(WITH_BROKER) bash tests/broker/with-cluster.sh cargo run --release --quiet --example bench

## Start the local broker (jars fetched from Maven Central on first use); NODES=3: the
## 3-node cluster.
kafka-up:
ifeq ($(NODES),3)
	bash $(CLUSTER) up
else
	bash $(BROKER) up
endif

## Stop the broker (NODES=3: the cluster) started by kafka-up.
kafka-down:
ifeq ($(NODES),3)
	bash $(CLUSTER) down
else
	bash $(BROKER) down
endif

kafka-status:
ifeq ($(NODES),3)
	bash $(CLUSTER) status
else
	bash $(BROKER) status
endif
