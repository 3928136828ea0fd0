# Secure mode of tests/broker/kafka.sh (KAFKA_SECURE=1), sourced by it: SASL_PLAINTEXT,
# SSL and SASL_SSL listeners beside PLAINTEXT, a test CA and broker certificate made with
# keytool, PLAIN users in the listeners' JAAS config, SCRAM users written at format time.
# Uses kafka.sh's variables (HOST, KAFKA_PORT, KAFKA_DIR, TLS_DIR, CONF, ...) and helpers.

# Adds the SASL_PLAINTEXT, SSL and SASL_SSL listeners to the listener settings.
setup_secure() {
  local sasl="${KAFKA_SASL_PORT:-$((KAFKA_PORT + 2))}"
  local ssl="${KAFKA_SSL_PORT:-$((KAFKA_PORT + 3))}"
  local sasl_ssl="${KAFKA_SASL_SSL_PORT:-$((KAFKA_PORT + 4))}"
  local extra="SASL_PLAINTEXT://$HOST:$sasl,SSL://$HOST:$ssl,SASL_SSL://$HOST:$sasl_ssl"
  LISTENERS="$LISTENERS,$extra"
  ADVERTISED="$ADVERTISED,$extra"
  PROTOCOL_MAP="$PROTOCOL_MAP,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL"
  SECURE_PORTS=("$sasl" "$ssl" "$sasl_ssl")
  PORTS+=("${SECURE_PORTS[@]}")
}

# A test CA and a broker certificate signed by it (SAN localhost, 127.0.0.1), made once:
# TLS_DIR/broker.p12 for the broker, TLS_DIR/ca.pem for clients.
make_certs() {
  [[ -s "$TLS_DIR/ca.pem" && -s "$TLS_DIR/broker.p12" ]] && return 0
  command -v keytool >/dev/null || die "keytool not found (needed for the TLS listeners)"
  say "making a test CA and broker certificate in ${TLS_DIR#$REPO_ROOT/}"
  mkdir -p "$KAFKA_DIR"
  local tmp="$TLS_DIR.tmp.$$" klog="$KAFKA_DIR/keytool.log"
  rm -rf "$tmp" && mkdir -p "$tmp"
  local kt=(keytool -storetype PKCS12 -storepass "$TLS_PASS" -keypass "$TLS_PASS")
  if ! {
    "${kt[@]}" -genkeypair -alias ca -keystore "$tmp/ca.p12" -keyalg RSA -keysize 2048 \
      -validity 3650 -dname "CN=kafka-sync test CA" -ext bc:c &&
      "${kt[@]}" -exportcert -rfc -alias ca -keystore "$tmp/ca.p12" -file "$tmp/ca.pem" &&
      "${kt[@]}" -genkeypair -alias broker -keystore "$tmp/broker.p12" -keyalg RSA \
        -keysize 2048 -validity 3650 -dname "CN=localhost" &&
      "${kt[@]}" -certreq -alias broker -keystore "$tmp/broker.p12" -file "$tmp/broker.csr" &&
      "${kt[@]}" -gencert -alias ca -keystore "$tmp/ca.p12" -infile "$tmp/broker.csr" \
        -outfile "$tmp/broker.pem" -rfc -validity 3650 \
        -ext "san=dns:localhost,ip:127.0.0.1" -ext "eku=serverAuth" &&
      "${kt[@]}" -importcert -noprompt -alias ca -keystore "$tmp/broker.p12" -file "$tmp/ca.pem" &&
      "${kt[@]}" -importcert -noprompt -alias broker -keystore "$tmp/broker.p12" \
        -file "$tmp/broker.pem"
  } >"$klog" 2>&1; then
    cat "$klog" >&2
    rm -rf "$tmp"
    die "keytool failed to make the test certificates"
  fi
  rm -rf "$TLS_DIR"
  mv "$tmp" "$TLS_DIR"
}

write_secure_config() {
  local jaas_plain="org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER=\"$SASL_PASSWORD\";"
  local jaas_scram="org.apache.kafka.common.security.scram.ScramLoginModule required;"
  cat >>"$CONF" <<EOF

# Secure mode (KAFKA_SECURE=1): SASL PLAIN and SCRAM users, TLS with the test CA.
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS_DIR/broker.p12
ssl.keystore.password=$TLS_PASS
ssl.key.password=$TLS_PASS
ssl.client.auth=none
EOF
  local l m
  for l in sasl_plaintext sasl_ssl; do
    echo "listener.name.$l.plain.sasl.jaas.config=$jaas_plain" >>"$CONF"
    for m in scram-sha-256 scram-sha-512; do
      echo "listener.name.$l.$m.sasl.jaas.config=$jaas_scram" >>"$CONF"
    done
  done
}

# The StorageTool arguments that create the SCRAM users, one a line (secure mode only).
scram_args() {
  [[ "$KAFKA_SECURE" == 1 ]] || return 0
  local m
  for m in SCRAM-SHA-256 SCRAM-SHA-512; do
    printf '%s\n' --add-scram "$m=[name=$SASL_USER,password=$SASL_PASSWORD]"
  done
}

# Waits until every secure listener accepts connections (they open with the PLAINTEXT
# one, but are checked so that tests never race them).
wait_secure_ports() {
  local p deadline=$((SECONDS + KAFKA_START_TIMEOUT))
  for p in ${SECURE_PORTS[@]+"${SECURE_PORTS[@]}"}; do
    until port_open "$p"; do
      ((SECONDS < deadline)) || die "secure listener $HOST:$p not open within ${KAFKA_START_TIMEOUT}s"
      sleep 0.5
    done
  done
}
