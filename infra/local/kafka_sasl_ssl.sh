# shellcheck shell=bash
# The local broker's SASL_SSL listener, sourced by kafka.sh: a CA and broker certificate made
# once with openssl, one user with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN credentials and a
# password made once, and what a client needs to connect ($KAFKA_CONF/sasl-ssl.env, rewritten on
# each start). It is always on: PLAINTEXT stays the default and the inter-broker listener.

KAFKA_TLS="$KAFKA_CONF/tls"
KAFKA_SASL_USER=lifecycle
KAFKA_SASL_ENV="$KAFKA_CONF/sasl-ssl.env"
KAFKA_SASL_CLIENT_PROPERTIES="$KAFKA_CONF/sasl-ssl-client.properties"
# In the data dir, so that a fresh data dir gets its users again: the hash of the password
# its SCRAM credentials were made with.
SCRAM_MARK=.scram-users

# sasl_ssl_listener [PORT]: the listener's address (default KAFKA_SASL_SSL_PORT; a cluster's
# node I gives its own port, KAFKA_SASL_SSL_PORT plus the node's port step).
sasl_ssl_listener() { printf 'SASL_SSL://127.0.0.1:%s' "${1:-$KAFKA_SASL_SSL_PORT}"; }

sasl_password() { head -n1 "$KAFKA_TLS/password"; }

ensure_certificates() {
  [[ -s $KAFKA_TLS/broker.pem && -s $KAFKA_TLS/ca.pem ]] && return 0
  command -v openssl >/dev/null 2>&1 || apt_install openssl
  log "making a local CA and the broker's certificate in $KAFKA_TLS"
  local ext="$KAFKA_TLS/broker.ext"
  # Python 3.13+ verifies strictly (X509_STRICT): the CA must say it is one, the leaf names its
  # issuer's key.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=e2b-lifecycle local CA" \
    -keyout "$KAFKA_TLS/ca.key" -out "$KAFKA_TLS/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>>"$LOG_DIR/kafka-tls.log"
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" >"$ext"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$KAFKA_TLS/broker.key" -out "$KAFKA_TLS/broker.csr" 2>>"$LOG_DIR/kafka-tls.log"
  openssl x509 -req -days 3650 -in "$KAFKA_TLS/broker.csr" -CA "$KAFKA_TLS/ca.pem" \
    -CAkey "$KAFKA_TLS/ca.key" -CAcreateserial -extfile "$ext" -out "$KAFKA_TLS/broker.crt" \
    2>>"$LOG_DIR/kafka-tls.log" || die "openssl could not sign the broker certificate (see $LOG_DIR/kafka-tls.log)"
  # Kafka's PEM key store: the unencrypted PKCS#8 key, then the chain.
  cat "$KAFKA_TLS/broker.key" "$KAFKA_TLS/broker.crt" "$KAFKA_TLS/ca.pem" >"$KAFKA_TLS/broker.pem"
  rm -f "$KAFKA_TLS/broker.csr" "$ext"
}

ensure_sasl_ssl_material() {
  mkdir -p "$KAFKA_TLS"
  chmod 700 "$KAFKA_TLS"
  ensure_certificates
  if [[ ! -s $KAFKA_TLS/password ]]; then
    (umask 077 && head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-32 >"$KAFKA_TLS/password")
  fi
  local password
  password="$(sasl_password)"
  (
    umask 077
    cat >"$KAFKA_SASL_ENV" <<EOF
# written by infra/local/kafka.sh on each start: the local broker's SASL_SSL listener
KAFKA_SASL_SSL_BOOTSTRAP_SERVERS=$(kafka_bootstrap "$BROKERS" "$KAFKA_SASL_SSL_PORT")
KAFKA_SASL_MECHANISM=SCRAM-SHA-512
KAFKA_SASL_USERNAME=$KAFKA_SASL_USER
KAFKA_SASL_PASSWORD=$password
KAFKA_SSL_CAFILE=$KAFKA_TLS/ca.pem
EOF
    cat >"$KAFKA_SASL_CLIENT_PROPERTIES" <<EOF
# written by infra/local/kafka.sh: the Java tools' --command-config for the SASL_SSL listener
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$KAFKA_SASL_USER" password="$password";
ssl.truststore.type=PEM
ssl.truststore.location=$KAFKA_TLS/ca.pem
EOF
  )
}

# The listener's part of server.properties (the password is in it for PLAIN: kafka.sh makes the
# file 0600).
sasl_ssl_config() {
  local password
  password="$(sasl_password)"
  cat <<EOF
ssl.keystore.type=PEM
ssl.keystore.location=$KAFKA_TLS/broker.pem
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USER="$password";
EOF
}

# SCRAM credentials live in the cluster's metadata: added through the running broker (its
# PLAINTEXT listener), once per data dir (node 1's for a cluster) and password, so a data dir
# formatted before the listener existed gets them too. One mechanism per request (Kafka refuses
# two for one user).
ensure_scram_users() {
  local mark digest password mechanism
  mark="$DATA_DIR/$(node_name "$BROKERS" 1)/$SCRAM_MARK"
  digest="$(sha256sum "$KAFKA_TLS/password" | cut -d' ' -f1)"
  [[ -f $mark && $(head -n1 "$mark") == "$digest" ]] && return 0
  password="$(sasl_password)"
  for mechanism in SCRAM-SHA-512 SCRAM-SHA-256; do
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
      -Dlog4j2.configurationFile="$KAFKA_CONF/log4j2.properties" -cp "$KAFKA_LIB/*" \
      kafka.admin.ConfigCommand --bootstrap-server "$(kafka_bootstrap "$BROKERS")" --alter \
      --entity-type users --entity-name "$KAFKA_SASL_USER" \
      --add-config "$mechanism=[password=$password]" >"$LOG_DIR/kafka-scram.log" 2>&1 || {
      cat "$LOG_DIR/kafka-scram.log" >&2
      die "could not add the $mechanism credentials of $KAFKA_SASL_USER"
    }
  done
  printf '%s\n' "$digest" >"$mark"
  log "SCRAM user $KAFKA_SASL_USER set (SASL_SSL on $(kafka_bootstrap "$BROKERS" "$KAFKA_SASL_SSL_PORT"), client settings in $KAFKA_SASL_ENV)"
}
