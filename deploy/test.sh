#!/usr/bin/env bash
# Everything the tests need, then every test: README's test command, and what .ci/run runs.
#
# - The tools the tests drive (openssl, systemd-analyze, dpkg-deb, binutils, adduser, chromium,
#   chromium-driver): installed from Debian's packages when missing (as root).
# - pyHanko (a venv in /opt/lienthong-test) and poppler's pdfsig, for the PDF signature test.
# - RabbitMQ (deploy/rabbitmq.sh): installed from Debian's packages when missing, started when
#   not running, with its TLS listener; a machine already set up is only checked. Installing and
#   starting need root; as another user, an already running broker is enough.
# - Then `cargo test --workspace --no-fail-fast` (a failing test binary does not hide how the
#   others fared); extra arguments go to it (`bash deploy/test.sh -- --nocapture`).
set -euo pipefail
cd "$(dirname "$0")/.."

# The command-line tools the tests drive, from Debian's packages, when missing: openssl (a real
# CA hierarchy), systemd-analyze (the packages' units), dpkg-deb and binutils (building the
# packages), adduser (their account), chromium and chromedriver (the console in a browser).
missing=()
for pair in openssl:openssl systemd-analyze:systemd dpkg-deb:dpkg strip:binutils \
  objdump:binutils adduser:adduser tar:tar chromium:chromium chromedriver:chromium-driver; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "test: installing ${missing[*]} (Debian packages)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "test: missing tools from the Debian packages ${missing[*]}; the tests that use them" >&2
    echo "      will say they were skipped (run this script as root to install them)" >&2
  fi
fi

# A real PDF signer and a second verifier for tests/tests/pdf_signatures.rs: pyHanko (pinned,
# from PyPI) in its own venv at a fixed place, and poppler's pdfsig; installed when missing (as
# root), else that test says it was skipped.
pyhanko_venv=/opt/lienthong-test/venv
pyhanko_version=0.38.0
if [ "$(id -u)" -eq 0 ]; then
  if ! command -v pdfsig >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "test: installing poppler-utils python3-venv (Debian packages)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends poppler-utils python3-venv
  fi
  if ! "$pyhanko_venv/bin/python" -c 'import sys, importlib.metadata as m
sys.exit(m.version("pyHanko") != sys.argv[1])' "$pyhanko_version" 2>/dev/null; then
    echo "test: installing pyHanko $pyhanko_version into $pyhanko_venv (PyPI)" >&2
    /usr/bin/python3 -m venv "$pyhanko_venv"
    "$pyhanko_venv/bin/pip" install -q "pyHanko==$pyhanko_version"
  fi
fi

if [ "$(id -u)" -eq 0 ]; then
  bash deploy/rabbitmq.sh
elif ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  echo "test: RabbitMQ does not answer on 127.0.0.1:5672 and installing it needs root;" >&2
  echo "      run this script as root once (sudo bash deploy/test.sh)" >&2
  exit 1
fi

exec cargo test --workspace --no-fail-fast "$@"
