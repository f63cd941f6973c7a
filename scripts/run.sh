#!/usr/bin/env bash
# Build and run the server on the embedded default (RocksDB under ./storage, port 6333).
# Extra arguments are passed to qdrant, e.g. scripts/run.sh --storage sqlite --storage-path ./qdrant_data
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --no-python
exec cargo run --release --bin qdrant -- "$@"
