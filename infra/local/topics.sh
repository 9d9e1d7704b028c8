#!/usr/bin/env bash
# Creates the project's Kafka topics (idempotent: existing topics are left untouched).
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=kafka_nodes.sh
source "$INFRA_DIR/kafka_nodes.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
KAFKA_LIB="$CACHE/kafka-$KAFKA_VERSION/lib"
BROKERS="$(kafka_brokers)"
BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-$(kafka_bootstrap "$BROKERS")}"
SECURITY=()
if [[ ${KAFKA_SECURITY:-plaintext} == sasl_ssl ]]; then
  # The local broker's SASL_SSL listener, as kafka.sh wrote it down.
  BOOTSTRAP="$(sed -n 's/^KAFKA_SASL_SSL_BOOTSTRAP_SERVERS=//p' "$STATE/kafka/sasl-ssl.env")"
  SECURITY=(--command-config "$STATE/kafka/sasl-ssl-client.properties")
fi
# Three nodes: three copies, and a write (acks=all) acknowledged once two have it.
DEFAULT_RF=1 DEFAULT_MIN_ISR=1
((BROKERS == 1)) || { DEFAULT_RF=3; DEFAULT_MIN_ISR=2; }
RF="${KAFKA_REPLICATION_FACTOR:-$DEFAULT_RF}"
MIN_ISR="${KAFKA_MIN_INSYNC_REPLICAS:-$DEFAULT_MIN_ISR}"
LIFECYCLE_PARTITIONS="${LIFECYCLE_PARTITIONS:-12}"
COMMANDS_PARTITIONS="${COMMANDS_PARTITIONS:-12}"
DLQ_PARTITIONS="${DLQ_PARTITIONS:-3}"
TOOLS_LOG4J="$STATE/kafka/tools-log4j2.properties"

[[ -f $KAFKA_LIB/kafka-tools-$KAFKA_VERSION.jar ]] || die "kafka jars missing in $KAFKA_LIB: run infra/local/kafka.sh install"

mkdir -p "$(dirname "$TOOLS_LOG4J")"
[[ -f $TOOLS_LOG4J ]] || cat >"$TOOLS_LOG4J" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
EOF

topic_cmd() {
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Dlog4j2.configurationFile="$TOOLS_LOG4J" \
    -cp "$KAFKA_LIB/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
    "${SECURITY[@]}" "$@"
}

existing="$(topic_cmd --list)" || die "cannot list topics on $BOOTSTRAP (is kafka running? infra/local/kafka.sh start)"

# ensure_topic NAME PARTITIONS CONFIG...
ensure_topic() {
  local name=$1 partitions=$2 cfg
  shift 2
  if grep -qxF -- "$name" <<<"$existing"; then
    log "topic $name already exists"
    return 0
  fi
  local -a args=(--create --if-not-exists --topic "$name" --partitions "$partitions" --replication-factor "$RF")
  for cfg in "$@"; do args+=(--config "$cfg"); done
  topic_cmd "${args[@]}" >/dev/null || die "could not create topic $name"
  log "topic $name created ($partitions partitions, rf $RF, $*)"
}

# sandbox-lifecycle is the replay source of all state: never delete its records.
ensure_topic sandbox-lifecycle "$LIFECYCLE_PARTITIONS" \
  retention.ms=-1 retention.bytes=-1 cleanup.policy=delete min.insync.replicas="$MIN_ISR"
ensure_topic sandbox-commands "$COMMANDS_PARTITIONS" \
  retention.ms=604800000 cleanup.policy=delete min.insync.replicas="$MIN_ISR"
ensure_topic sandbox-lifecycle.dlq "$DLQ_PARTITIONS" \
  retention.ms=-1 retention.bytes=-1 cleanup.policy=delete min.insync.replicas="$MIN_ISR"
ensure_topic sandbox-notifications.dlq "$DLQ_PARTITIONS" \
  retention.ms=-1 retention.bytes=-1 cleanup.policy=delete min.insync.replicas="$MIN_ISR"
# sandbox-state: each sandbox's latest state (compacted), as many partitions as sandbox-lifecycle.
ensure_topic sandbox-state "$LIFECYCLE_PARTITIONS" \
  cleanup.policy=compact segment.ms=3600000 segment.bytes=67108864 min.insync.replicas="$MIN_ISR"
