#!/usr/bin/env bash
# Make sure a local RabbitMQ answers on 127.0.0.1:5672 (guest/guest).
# Installs Debian's rabbitmq-server if it is missing, starts it if it is not running,
# then waits until the AMQP port answers. Used by developers and by .ci/run alike.
set -euo pipefail

port_open() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

if port_open; then
  echo "rabbitmq: already answering on 127.0.0.1:5672"
  exit 0
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "rabbitmq: not installed; installing Debian's rabbitmq-server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq rabbitmq-server >/dev/null
fi

# The Debian package may have started it through its init script; if not, start it detached.
if ! port_open; then
  echo "rabbitmq: starting"
  rabbitmq-server -detached || true
fi

for _ in $(seq 1 120); do
  if port_open && rabbitmqctl -q status >/dev/null 2>&1; then
    echo "rabbitmq: answering on 127.0.0.1:5672"
    exit 0
  fi
  sleep 1
done
echo "rabbitmq: did not answer on 127.0.0.1:5672 within 120 s" >&2
exit 1
