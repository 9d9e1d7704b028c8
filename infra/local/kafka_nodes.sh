# shellcheck shell=bash
# The local Kafka's nodes: how many, and each one's ports and files. Sourced (after lib.sh) by
# kafka.sh, topics.sh and up.sh, so the three agree on them. Source it; do not run it.
#
# KAFKA_BROKERS=1 (the default) is one combined broker+controller with today's files and ports.
# KAFKA_BROKERS=3 is three combined nodes, one controller quorum of three voters. Node I (1..N)
# takes every port of node 1 plus (I-1)*KAFKA_NODE_PORT_STEP: 9092/9093, 9192/9193, 9292/9293,
# and so on for every listener (SASL_SSL: 9094, 9194, 9294).

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_SASL_SSL_PORT="${KAFKA_SASL_SSL_PORT:-9094}"
KAFKA_NODE_PORT_STEP="${KAFKA_NODE_PORT_STEP:-100}"
# Written by kafka.sh start, removed by kafka.sh stop: how many nodes the running Kafka has, so
# `make up`, `make status` and `make down` without KAFKA_BROKERS find the cluster that runs.
KAFKA_MODE_FILE="$RUN_DIR/kafka.brokers"

# kafka_brokers: KAFKA_BROKERS if given, else the running Kafka's node count, else 1.
kafka_brokers() {
  local n="${KAFKA_BROKERS:-}"
  [[ -z $n && -s $KAFKA_MODE_FILE ]] && n="$(head -n1 "$KAFKA_MODE_FILE")"
  n="${n:-1}"
  [[ $n == 1 || $n == 3 ]] || die "KAFKA_BROKERS=$n: 1 (one node) or 3 (a three-node cluster)"
  printf '%s' "$n"
}

# node_port BASE I: node I's port for a listener whose node-1 port is BASE.
node_port() { printf '%s' "$(($1 + ($2 - 1) * KAFKA_NODE_PORT_STEP))"; }

# node_name N I: the stem of node I's files. One node keeps the names it always had.
node_name() { if (($1 == 1)); then printf 'kafka'; else printf 'kafka-node-%s' "$2"; fi; }

# node_conf_dir N I: where node I's server.properties and log4j2.properties are written.
node_conf_dir() { if (($1 == 1)); then printf '%s' "$STATE/kafka"; else printf '%s' "$STATE/kafka/node-$2"; fi; }

# kafka_bootstrap N [BASE]: every node's address on the listener whose node-1 port is BASE
# (default PLAINTEXT's), comma-separated.
kafka_bootstrap() {
  local n=$1 base=${2:-$KAFKA_PORT} i out=""
  for ((i = 1; i <= n; i++)); do out+="${out:+,}127.0.0.1:$(node_port "$base" "$i")"; done
  printf '%s' "$out"
}
