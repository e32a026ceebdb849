#!/usr/bin/env bash
# Everything the tests need, then every test: README's test command, and what .ci/run runs.
#
# - RabbitMQ (deploy/rabbitmq.sh): installed from Debian's packages when missing, started when
#   not running, with its TLS listener; a machine already set up is only checked. Installing and
#   starting need root; as another user, an already running broker is enough.
# - Then `cargo test --workspace`; extra arguments go to it (`bash deploy/test.sh -- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -eq 0 ]; then
  bash deploy/rabbitmq.sh
elif ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "test: RabbitMQ does not answer on 127.0.0.1:5672 and installing it needs root;" >&2
  echo "      run this script as root once (sudo bash deploy/test.sh)" >&2
  exit 1
fi

exec cargo test --workspace "$@"
