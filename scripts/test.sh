#!/usr/bin/env bash
# Every test: Rust unit + integration tests (real binary, both backends), then the Python suite
# that drives the real server through the official qdrant-client, then the Docker deployment
# (tests/docker/test_docker.sh; skipped without a Docker engine).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

# One profile for everything (release): the tests, the Python suite and the Docker image all use
# the same build, so a clean run compiles the workspace once.
echo "== cargo test (workspace, release profile)"
cargo test --release --workspace --all-targets

echo "== python tests (qdrant-client against the real server)"
cargo build --release --bin qdrant
QDRANT_BIN="$PWD/target/release/qdrant" .venv/bin/python -m pytest tests/python -q -p no:cacheprovider

echo "== REST fuzzing (schemathesis over Qdrant's OpenAPI document, both backends; FUZZ_EXAMPLES/FUZZ_SECONDS for longer)"
QDRANT_BIN="$PWD/target/release/qdrant" tests/fuzz/run.sh

echo "== single-node soak, small (writes in both wait modes, kills, snapshots, index changes; scripts/soak.py --minutes 10 for the long one)"
for backend in sqlite rocksdb; do
  QDRANT_BIN="$PWD/target/release/qdrant" python3 scripts/soak.py --minutes 0.3 --backend "$backend"
done

echo "== cluster soak, small (kills, freezes, shard moves under writes; scripts/soak_cluster.py --minutes 10 for the long one)"
QDRANT_BIN="$PWD/target/release/qdrant" python3 scripts/soak_cluster.py --minutes 0.5

echo "== dashboard end to end (headless Chromium; skips when chromium is absent)"
QDRANT_BIN="$PWD/target/release/qdrant" .venv/bin/python -m pytest tests/dashboard -q -p no:cacheprovider -rs

echo "== docker tests (skipped when no Docker engine is reachable)"
tests/docker/test_docker.sh
