#!/usr/bin/env bash
# Apache Kafka's own performance tools (ProducerPerformance, ConsumerPerformance,
# EndToEndLatency from org.apache.kafka:kafka-tools), the peers `make bench` runs beside
# kafka-sync. The jars come from Maven Central via tests/broker/tools-pom.xml, fetched once
# into target/kafka-tools/<version>/libs (stamped, like the broker's in tests/broker/kafka.sh).
#
# Usage: examples/bench/java-tools.sh classpath   fetch if needed; print the classpath
#        examples/bench/java-tools.sh run CLASS ARGS...   run org.apache.kafka.tools.CLASS
# Environment: KAFKA_TOOLS_VERSION (default 3.9.1).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="${KAFKA_TOOLS_VERSION:-3.9.1}"
pom="$root/tests/broker/tools-pom.xml"
dir="$root/target/kafka-tools/$version"
libs="$dir/libs"
stamp="$dir/.complete"

die() { echo "java-tools.sh: ERROR: $*" >&2; exit 1; }

fetch() {
  local want
  want="$version $(sha256sum "$pom" | cut -c1-16)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -d "$libs" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (needed to fetch kafka-tools $version from Maven Central)"
  echo "java-tools.sh: fetching kafka-tools $version with Maven into ${libs#"$root"/}" >&2
  mkdir -p "$dir"
  local tmp="$dir/libs.tmp.$$" log="$dir/mvn.log"
  rm -rf "$tmp"
  if ! mvn -B -q -Dstyle.color=never -f "$pom" -Dkafka.version="$version" \
        dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$tmp" >"$log" 2>&1; then
    tail -n 40 "$log" >&2 || true
    rm -rf "$tmp"
    die "mvn failed to fetch kafka-tools $version (log: $log)"
  fi
  [[ -f "$tmp/kafka-tools-$version.jar" ]] || { rm -rf "$tmp"; die "kafka-tools-$version.jar missing after mvn"; }
  rm -rf "$libs"
  mv "$tmp" "$libs"
  echo "$want" >"$stamp"
}

case "${1:-}" in
  classpath)
    fetch
    echo "$libs/*"
    ;;
  run)
    shift
    [[ $# -ge 1 ]] || die "run needs a tool class name"
    command -v java >/dev/null || die "java not found"
    fetch
    class="$1"
    shift
    # The heap and GC flags kafka-run-class.sh gives the perf tools.
    exec java -Xmx512M -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
      -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
      -Djava.awt.headless=true -cp "$libs/*" "org.apache.kafka.tools.$class" "$@"
    ;;
  *)
    echo "usage: $0 classpath | run CLASS ARGS..." >&2
    exit 2
    ;;
esac
