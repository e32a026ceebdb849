#!/usr/bin/env bash
# Make sure a local RabbitMQ answers on 127.0.0.1:5672 (guest/guest) and, with TLS, on
# 127.0.0.1:5671, for the tests and for trying amqps:// out. Used by developers and by .ci/run.
#
# - Installs Debian's rabbitmq-server if it is missing.
# - Makes a test CA and a server certificate (SAN DNS:localhost, IP:127.0.0.1) with the openssl
#   CLI in $TLS_DIR, once; they are made again only when missing or when the server
#   certificate expires within 30 days. $TLS_DIR/ca.pem is what a relay's [amqp].ca points at.
# - Writes the TLS listener into /etc/rabbitmq/rabbitmq.conf between two marker lines, keeping
#   the rest of the file; a re-run replaces that block instead of adding another.
# - Starts the broker if it is not running; restarts it if it runs without the TLS listener or
#   with an older configuration or certificate, or answers on its port but cannot serve (for
#   example its database was damaged when the disk filled up). Then waits until both ports
#   answer and the broker lists its virtual hosts.
# - If it still cannot serve after a restart, its database is moved aside (kept, renamed with
#   the date under /var/lib/rabbitmq) and it starts with an empty one: this broker is for tests,
#   which declare their own queues.
#
# Needs root for the first run (it writes under /etc); a re-run on a machine already set up
# only checks.
set -euo pipefail

TLS_DIR=/etc/rabbitmq/lienthong-test-tls
CONF=/etc/rabbitmq/rabbitmq.conf
BEGIN_MARK="# BEGIN lienthong test TLS listener (deploy/rabbitmq.sh)"
END_MARK="# END lienthong test TLS listener"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The broker serves: it answers and can read its own database.
healthy() { rabbitmqctl -q list_vhosts >/dev/null 2>&1; }

stop_broker() {
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
    systemctl stop rabbitmq-server || true
  else
    rabbitmqctl stop >/dev/null 2>&1 || true
  fi
  for _ in $(seq 1 60); do
    if ! port_open 5672 && ! rabbitmqctl -q status >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
}

# Starts it and waits until both ports answer and it serves; returns 1 if it does not in 120 s.
start_and_wait() {
  if ! port_open 5672; then
    echo "rabbitmq: starting"
    rabbitmq-server -detached || true
  fi
  for _ in $(seq 1 120); do
    if port_open 5672 && port_open 5671 && healthy; then return 0; fi
    sleep 1
  done
  return 1
}

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "rabbitmq: $1 needs root; run this script as root" >&2
    exit 1
  fi
}

conf_block() {
  cat <<EOF
$BEGIN_MARK
listeners.ssl.default = 127.0.0.1:5671
ssl_options.cacertfile = $TLS_DIR/ca.pem
ssl_options.certfile = $TLS_DIR/server.pem
ssl_options.keyfile = $TLS_DIR/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
$END_MARK
EOF
}

# The file as it should be: whatever it had outside our block, then our block.
desired_conf() {
  if [ -f "$CONF" ]; then
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$CONF"
  fi
  conf_block
}

certs_ok() {
  [ -r "$TLS_DIR/ca.pem" ] && [ -r "$TLS_DIR/server.pem" ] && [ -f "$TLS_DIR/server.key" ] &&
    openssl x509 -in "$TLS_DIR/server.pem" -noout -checkend $((30 * 24 * 3600)) >/dev/null 2>&1
}

conf_ok() { [ -f "$CONF" ] && cmp -s <(desired_conf) "$CONF"; }

make_certs() {
  echo "rabbitmq: making a test CA and server certificate in $TLS_DIR"
  local tmp
  tmp=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=lienthong test broker CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.pem" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=localhost" -keyout "$tmp/server.key" -out "$tmp/server.csr" 2>/dev/null
  cat >"$tmp/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
EOF
  openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" \
    -CAcreateserial -days 825 -extfile "$tmp/server.ext" -out "$tmp/server.pem" 2>/dev/null
  mkdir -p "$TLS_DIR"
  chmod 755 "$TLS_DIR"
  install -m 644 "$tmp/ca.pem" "$TLS_DIR/ca.pem"
  install -m 644 "$tmp/server.pem" "$TLS_DIR/server.pem"
  install -m 640 -g rabbitmq "$tmp/server.key" "$TLS_DIR/server.key"
  # The CA key is not kept: nothing else is ever signed with it.
  rm -rf "$tmp"
}

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  need_root "installing rabbitmq-server"
  echo "rabbitmq: not installed; installing Debian's rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq rabbitmq-server openssl >/dev/null
fi
if ! command -v openssl >/dev/null 2>&1; then
  need_root "installing openssl"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq openssl >/dev/null
fi

changed=no
if ! certs_ok; then
  need_root "making the test certificates"
  make_certs
  changed=yes
fi
if ! conf_ok; then
  need_root "writing $CONF"
  echo "rabbitmq: writing the TLS listener into $CONF"
  desired_conf >"$CONF.lienthong-new"
  chmod 644 "$CONF.lienthong-new"
  if getent group rabbitmq >/dev/null; then chgrp rabbitmq "$CONF.lienthong-new"; fi
  mv "$CONF.lienthong-new" "$CONF"
  changed=yes
fi

if port_open 5672 && port_open 5671 && [ "$changed" = no ] && healthy; then
  echo "rabbitmq: already answering on 127.0.0.1:5672 and 127.0.0.1:5671 (TLS)"
  exit 0
fi

if port_open 5672 || rabbitmqctl -q status >/dev/null 2>&1; then
  if [ "$changed" = yes ]; then
    # The listener and certificates are read at boot.
    echo "rabbitmq: restarting to take up the TLS listener"
  else
    echo "rabbitmq: running but not serving (rabbitmqctl list_vhosts fails); restarting"
  fi
  stop_broker
fi

if start_and_wait; then
  echo "rabbitmq: answering on 127.0.0.1:5672 and 127.0.0.1:5671 (TLS, CA $TLS_DIR/ca.pem)"
  exit 0
fi
if port_open 5672 && ! healthy; then
  need_root "repairing the broker's database"
  data=/var/lib/rabbitmq/mnesia
  aside="$data.damaged-$(date +%Y%m%d-%H%M%S)"
  echo "rabbitmq: still not serving after a restart: its database looks damaged; moving $data to $aside and starting with an empty one" >&2
  stop_broker
  pkill -u rabbitmq -f beam >/dev/null 2>&1 || true
  sleep 2
  if [ -d "$data" ]; then mv "$data" "$aside"; fi
  if start_and_wait; then
    echo "rabbitmq: answering on 127.0.0.1:5672 and 127.0.0.1:5671 (TLS, CA $TLS_DIR/ca.pem), with a new database"
    exit 0
  fi
fi
if port_open 5672; then
  echo "rabbitmq: 127.0.0.1:5672 answers but the broker does not serve or its TLS listener 127.0.0.1:5671 does not answer; see the broker's log in /var/log/rabbitmq/" >&2
else
  echo "rabbitmq: did not answer on 127.0.0.1:5672 within 120 s" >&2
fi
exit 1
