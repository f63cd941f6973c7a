#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine; safe to run again.
#   - libclang-dev: bindgen for the RocksDB bindings
#   - librocksdb-dev: the RocksDB library we link (a clean build then takes seconds, not ~12 min)
#   - chromium: the dashboard's end-to-end test (headless)
#   - openssl: certificates for the https:// snapshot download test
#   - a Python venv in .venv with the official qdrant-client for the compatibility tests
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libclang-dev librocksdb-dev pkg-config chromium openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "${1:-}" != "--no-python" ]; then
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import qdrant_client, pytest, prometheus_client, qdrant_edge, langchain_qdrant, schemathesis, h2" 2>/dev/null; then
    echo "creating .venv with the Python test requirements"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -r tests/python/requirements.txt
  fi
fi
