#!/usr/bin/env bash
# Apache Kafka (KRaft) assembled from Maven Central jars: one combined broker+controller, or
# KAFKA_BROKERS=3 combined nodes (ports and files per node: kafka_nodes.sh).
# Besides PLAINTEXT each node always listens SASL_SSL (SCRAM, a local CA) on KAFKA_SASL_SSL_PORT
# (stepped per node); what a client needs to use it is in $STATE/kafka/sasl-ssl.env
# (`make up KAFKA_SECURITY=sasl_ssl`).
# Usage: kafka.sh {install|start|stop|status|config}   (config: write the nodes' configs only)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=kafka_nodes.sh
source "$INFRA_DIR/kafka_nodes.sh"

KAFKA_VERSION="${KAFKA_VERSION:-4.1.2}"
LOG4J_VERSION="${KAFKA_LOG4J_VERSION:-2.25.3}" # the log4j2 that kafka-server 4.1.2 pulls in
# Small heap, serial GC and C1-only JIT: quick start-up on a 2-core machine (full tiered JIT
# measured no cheaper per message under the ingest benchmark).
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:--Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1}"
KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
KAFKA_LIB="$KAFKA_HOME/lib"
KAFKA_CONF="$STATE/kafka" # the cluster id, shared by every node
MAIN_CLASS="kafka.Kafka"
BROKERS="$(kafka_brokers)"

java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }

ensure_toolchain() {
  if ! command -v java >/dev/null 2>&1 || (($(java_major) < 17)); then
    apt_install openjdk-17-jre-headless
  fi
  command -v mvn >/dev/null 2>&1 || apt_install maven
}

installed() { [[ -f $KAFKA_HOME/.complete ]] && [[ -f $KAFKA_LIB/kafka_2.13-$KAFKA_VERSION.jar ]]; }

cmd_install() {
  if installed; then
    log "kafka $KAFKA_VERSION jars already in $KAFKA_LIB"
    return 0
  fi
  ensure_toolchain
  log "downloading kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_LIB"
  mkdir -p "$KAFKA_HOME"
  # kafka-tools brings TopicCommand; its connect-runtime dependency (jetty, jersey) is not needed.
  cat >"$KAFKA_HOME/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.e2b-lifecycle</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version>
      <exclusions>
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
        <exclusion><groupId>com.fasterxml.jackson.jakarta.rs</groupId><artifactId>*</artifactId></exclusion>
      </exclusions>
    </dependency>
    <!-- kafka 4.1 logs through slf4j 1.7.36: route it to log4j2 (the tarball ships this binding) -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$KAFKA_HOME/lib.tmp"
  if ! (cd "$KAFKA_HOME" && mvn -B -q dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory=lib.tmp >"$KAFKA_HOME/mvn.log" 2>&1); then
    tail -n 30 "$KAFKA_HOME/mvn.log" >&2
    die "mvn could not fetch the kafka jars (full log: $KAFKA_HOME/mvn.log)"
  fi
  local jar
  for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" \
    "kafka-clients-$KAFKA_VERSION.jar" "log4j-slf4j-impl-$LOG4J_VERSION.jar" "slf4j-api-1.7.36.jar"; do
    [[ -f $KAFKA_HOME/lib.tmp/$jar ]] || die "incomplete download: $jar missing in $KAFKA_HOME/lib.tmp"
  done
  rm -rf "$KAFKA_LIB"
  mv "$KAFKA_HOME/lib.tmp" "$KAFKA_LIB"
  echo "$KAFKA_VERSION" >"$KAFKA_HOME/.complete"
  log "kafka $KAFKA_VERSION installed ($(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_LIB" | cut -f1))"
}

new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ $id != -* ]] && { printf '%s' "$id"; return; }
  done
}

# select_node I: points the NODE_* globals at node I's ports and files.
select_node() {
  NODE=$1
  NODE_NAME="$(node_name "$BROKERS" "$1")"
  NODE_LABEL="kafka"
  ((BROKERS == 1)) || NODE_LABEL="kafka node $1"
  NODE_CONF="$(node_conf_dir "$BROKERS" "$1")"
  NODE_DATA="$DATA_DIR/$NODE_NAME"
  NODE_LOG="$LOG_DIR/$NODE_NAME.log"
  NODE_OUT="$LOG_DIR/$NODE_NAME.out"
  NODE_PID="$RUN_DIR/$NODE_NAME.pid"
  NODE_PORT="$(node_port "$KAFKA_PORT" "$1")"
  NODE_CONTROLLER_PORT="$(node_port "$KAFKA_CONTROLLER_PORT" "$1")"
  NODE_SASL_SSL_PORT="$(node_port "$KAFKA_SASL_SSL_PORT" "$1")"
}

quorum_voters() {
  local i out=""
  for ((i = 1; i <= BROKERS; i++)); do
    out+="${out:+,}$i@127.0.0.1:$(node_port "$KAFKA_CONTROLLER_PORT" "$i")"
  done
  printf '%s' "$out"
}

# listener_properties: the selected node's listeners, the one place they are generated. A
# listener added here takes node_port of its node-1 port, like these two.
listener_properties() {
  local sasl_ssl
  sasl_ssl="$(sasl_ssl_listener "$NODE_SASL_SSL_PORT")"
  cat <<PROPS
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:$NODE_PORT,CONTROLLER://127.0.0.1:$NODE_CONTROLLER_PORT,$sasl_ssl
advertised.listeners=PLAINTEXT://127.0.0.1:$NODE_PORT,$sasl_ssl
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL
PROPS
}

# replication_properties: one node keeps every record once; three keep three copies and
# acknowledge a write (acks=all) only once two of them have it.
replication_properties() {
  local rf=1 isr=1
  ((BROKERS == 1)) || { rf=3; isr=2; }
  cat <<PROPS
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
PROPS
  ((BROKERS == 1)) && return 0
  # A killed node is fenced, and leaves the leaders and in-sync sets of its partitions, once
  # its session expires: 3 s instead of 9 s, so writes to its partitions stall that long.
  cat <<PROPS
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
PROPS
}

# write_config: the selected node's server.properties and log4j2.properties.
write_config() {
  mkdir -p "$NODE_CONF" "$NODE_DATA"
  # 0600: the SASL_SSL listener's part holds the password (for PLAIN).
  touch "$NODE_CONF/server.properties"
  chmod 600 "$NODE_CONF/server.properties"
  {
    cat <<PROPS
# generated by infra/local/kafka.sh; edits are overwritten on start
process.roles=broker,controller
node.id=$NODE
controller.quorum.voters=$(quorum_voters)
PROPS
    listener_properties
    cat <<PROPS
log.dirs=$NODE_DATA
num.partitions=12
auto.create.topics.enable=false
offsets.topic.num.partitions=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=2097152
PROPS
    replication_properties
    sasl_ssl_config
  } >"$NODE_CONF/server.properties"
  cat >"$NODE_CONF/log4j2.properties" <<PROPS
# generated by infra/local/kafka.sh
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $NODE_LOG
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
PROPS
}

# ensure_cluster_id: CLUSTER_ID is the one formatted on disk (every node's must agree), else the
# one kept in cluster.id, else a new one; cluster.id keeps it.
ensure_cluster_id() {
  local idfile="$KAFKA_CONF/cluster.id" i found
  CLUSTER_ID=""
  for ((i = 1; i <= BROKERS; i++)); do
    select_node "$i"
    [[ -f $NODE_DATA/meta.properties ]] || continue
    found="$(sed -n 's/^cluster.id=//p' "$NODE_DATA/meta.properties")"
    [[ -z $CLUSTER_ID || -z $found || $found == "$CLUSTER_ID" ]] ||
      die "kafka data dirs of two clusters ($CLUSTER_ID, $found in $NODE_DATA): remove the stale one"
    CLUSTER_ID="${CLUSTER_ID:-$found}"
  done
  [[ -z $CLUSTER_ID && -s $idfile ]] && CLUSTER_ID="$(head -n1 "$idfile")"
  [[ -n $CLUSTER_ID ]] || CLUSTER_ID="$(new_cluster_id)"
  mkdir -p "$KAFKA_CONF"
  printf '%s\n' "$CLUSTER_ID" >"$idfile"
}

# ensure_formatted: formats the selected node's log dir with CLUSTER_ID unless it is already.
ensure_formatted() {
  [[ -f $NODE_DATA/meta.properties ]] && return 0
  log "formatting $NODE_LABEL storage in $NODE_DATA (cluster id $CLUSTER_ID)"
  java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$NODE_CONF/log4j2.properties" -cp "$KAFKA_LIB/*" \
    kafka.tools.StorageTool format -t "$CLUSTER_ID" -c "$NODE_CONF/server.properties" --ignore-formatted \
    >"$LOG_DIR/$NODE_NAME-format.log" 2>&1 ||
    { cat "$LOG_DIR/$NODE_NAME-format.log" >&2; die "$NODE_LABEL storage format failed"; }
}

launch() {
  [[ -f $NODE_LOG ]] && mv -f "$NODE_LOG" "$NODE_LOG.1" # keep one previous run; readiness greps a fresh log
  log "starting $NODE_LABEL ($KAFKA_VERSION) on 127.0.0.1:$NODE_PORT (controller :$NODE_CONTROLLER_PORT)"
  # shellcheck disable=SC2086 # KAFKA_JVM_OPTS is a list of options
  setsid nohup java $KAFKA_JVM_OPTS -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$NODE_CONF/log4j2.properties" -cp "$KAFKA_LIB/*" \
    "$MAIN_CLASS" "$NODE_CONF/server.properties" >"$NODE_OUT" 2>&1 </dev/null &
  echo $! >"$NODE_PID"
}

# wait_started I...: until each node logged 'Kafka Server started'. A node of a cluster waits
# for a quorum of controllers: all are launched before any is waited for.
wait_started() {
  local deadline=$((SECONDS + 90)) i waiting=("$@") left
  while ((${#waiting[@]})); do
    left=()
    for i in "${waiting[@]}"; do
      select_node "$i"
      grep -q 'Kafka Server started' "$NODE_LOG" 2>/dev/null && continue
      if ! pid_alive "$NODE_PID"; then
        tail -n 30 "$NODE_LOG" "$NODE_OUT" >&2 2>/dev/null || true
        rm -f "$NODE_PID"
        die "$NODE_LABEL exited during startup (logs: $NODE_LOG, $NODE_OUT)"
      fi
      if ((SECONDS >= deadline)); then
        tail -n 30 "$NODE_LOG" >&2 2>/dev/null || true
        die "$NODE_LABEL did not report 'Kafka Server started' within 90s (pid $(read_pid "$NODE_PID") left running; see $NODE_LOG)"
      fi
      left+=("$i")
    done
    waiting=("${left[@]}")
    ((${#waiting[@]} == 0)) || sleep 0.5
  done
}

# The other size's nodes use the same ports: say so rather than report a port taken.
refuse_other_size() {
  local f others
  if ((BROKERS == 1)); then others=("$RUN_DIR"/kafka-node-*.pid); else others=("$RUN_DIR/kafka.pid"); fi
  for f in "${others[@]}"; do
    if [[ -e $f ]] && pid_alive "$f" "$MAIN_CLASS"; then
      die "a Kafka of another size runs ($(basename "$f" .pid)); stop it first (make down), or set KAFKA_BROKERS to its size"
    fi
  done
}

cmd_config() {
  local i
  ensure_state_dirs
  ensure_sasl_ssl_material
  for ((i = 1; i <= BROKERS; i++)); do
    select_node "$i"
    write_config
    log "$NODE_LABEL: $NODE_CONF/server.properties"
  done
}

cmd_start() {
  ensure_state_dirs
  refuse_other_size
  local i down=()
  for ((i = 1; i <= BROKERS; i++)); do
    select_node "$i"
    pid_alive "$NODE_PID" "$MAIN_CLASS" && continue
    rm -f "$NODE_PID"
    port_open 127.0.0.1 "$NODE_PORT" && fail_port_taken "$NODE_LABEL" 127.0.0.1 "$NODE_PORT" KAFKA_PORT
    port_open 127.0.0.1 "$NODE_CONTROLLER_PORT" &&
      fail_port_taken "$NODE_LABEL controller" 127.0.0.1 "$NODE_CONTROLLER_PORT" KAFKA_CONTROLLER_PORT
    port_open 127.0.0.1 "$NODE_SASL_SSL_PORT" &&
      fail_port_taken "$NODE_LABEL SASL_SSL" 127.0.0.1 "$NODE_SASL_SSL_PORT" KAFKA_SASL_SSL_PORT
    down+=("$i")
  done
  if ((${#down[@]} == 0)); then
    for ((i = 1; i <= BROKERS; i++)); do
      select_node "$i"
      wait_for_port 127.0.0.1 "$NODE_PORT" 90 || die "$NODE_LABEL (pid $(read_pid "$NODE_PID")) runs but 127.0.0.1:$NODE_PORT does not answer; see $NODE_LOG"
      log "$NODE_LABEL already running (pid $(read_pid "$NODE_PID"), 127.0.0.1:$NODE_PORT)"
      grep -q '^listeners=.*SASL_SSL' "$NODE_CONF/server.properties" 2>/dev/null ||
        warn "$NODE_LABEL runs without its SASL_SSL listener: restart it (kafka.sh stop, then start)"
    done
    return 0
  fi
  installed || cmd_install
  ensure_sasl_ssl_material
  ensure_cluster_id
  for i in "${down[@]}"; do
    select_node "$i"
    write_config
    ensure_formatted
  done
  for i in "${down[@]}"; do
    select_node "$i"
    launch
  done
  printf '%s\n' "$BROKERS" >"$KAFKA_MODE_FILE"
  wait_started "${down[@]}"
  for i in "${down[@]}"; do
    select_node "$i"
    wait_for_port 127.0.0.1 "$NODE_PORT" 10 || die "$NODE_LABEL started but 127.0.0.1:$NODE_PORT does not answer"
    log "$NODE_LABEL ready (pid $(read_pid "$NODE_PID"), 127.0.0.1:$NODE_PORT, cluster id $CLUSTER_ID)"
  done
  ensure_scram_users
}

# Every node either size left running is stopped, all at once: one by one, the last nodes of a
# cluster would wait for a controller quorum that is already gone.
cmd_stop() {
  local f stopping=()
  for f in "$RUN_DIR/kafka.pid" "$RUN_DIR"/kafka-node-*.pid; do
    [[ -e $f ]] || continue
    if pid_alive "$f" "$MAIN_CLASS"; then
      stop_pid "$f" "$(basename "$f" .pid)" &
      stopping+=("$!")
    else
      rm -f "$f"
    fi
  done
  for f in "${stopping[@]}"; do wait "$f" || true; done
  rm -f "$KAFKA_MODE_FILE"
  ((${#stopping[@]})) || log "kafka not running (nothing to stop)"
}

cmd_status() {
  local i rc=0
  for ((i = 1; i <= BROKERS; i++)); do
    select_node "$i"
    if pid_alive "$NODE_PID" "$MAIN_CLASS" && port_open 127.0.0.1 "$NODE_PORT"; then
      log "$NODE_LABEL: running (pid $(read_pid "$NODE_PID"), 127.0.0.1:$NODE_PORT)"
    elif pid_alive "$NODE_PID" "$MAIN_CLASS"; then
      log "$NODE_LABEL: starting or unhealthy (pid $(read_pid "$NODE_PID"), port $NODE_PORT not answering)"
    else
      log "$NODE_LABEL: stopped"
      rc=3
    fi
  done
  return "$rc"
}

# shellcheck source=kafka_sasl_ssl.sh
source "$INFRA_DIR/kafka_sasl_ssl.sh"
case "${1:-}" in
  config) cmd_config ;;
  *) run_command "$@" ;;
esac
