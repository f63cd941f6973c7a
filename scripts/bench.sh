#!/usr/bin/env bash
# The HNSW benchmark: our graph and hnswlib on the same generated data, same parameters, same
# machine, one run. Prints a markdown table (paste into docs/benchmarks.md) and keeps the raw
# JSON under target/bench/.
#   scripts/bench.sh [N=100000] [DIM=128] [QUERIES=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}; DIM=${2:-128}; Q=${3:-1000}
OUT=target/bench/hnsw-$N-$DIM
mkdir -p "$OUT"
scripts/install-deps.sh >/dev/null
[ -x .venv/bin/python ] && .venv/bin/python -c "import hnswlib" 2>/dev/null || .venv/bin/pip install -q hnswlib numpy
cargo build --release -p qd-bench >/dev/null
target/release/qd-bench hnsw --n "$N" --dim "$DIM" --queries "$Q" --out "$OUT" > "$OUT/ours.json"
.venv/bin/python scripts/bench_hnswlib.py "$OUT" > "$OUT/hnswlib.json"
.venv/bin/python - "$OUT" <<'PY'
import json, sys
d = sys.argv[1]
ours, ref = json.load(open(f"{d}/ours.json")), json.load(open(f"{d}/hnswlib.json"))
print(f"n={ours['n']} dim={ours['dim']} m={ours['m']} ef_construct={ours['ef_construct']} threads={ours['threads']}")
print(f"build: ours {ours['build_secs']:.1f}s, hnswlib {ref['build_secs']:.1f}s (ratio {ours['build_secs']/ref['build_secs']:.2f}); "
      f"graph {ours['graph_bytes']/2**20:.1f} MiB, vectors {ours['vector_bytes']/2**20:.1f} MiB, memory ratio {ours['memory_ratio']:.2f}")
print()
print("| ef | recall@10 ours | recall@10 hnswlib | QPS 1 thread ours | QPS 1 thread hnswlib | QPS all threads ours | QPS all threads hnswlib |")
print("|---|---|---|---|---|---|---|")
for a, b in zip(ours["search"], ref["search"]):
    print(f"| {a['ef']} | {a['recall_at_10']:.4f} | {b['recall_at_10']:.4f} | {a['qps_1_thread']:.0f} | {b['qps_1_thread']:.0f} | {a['qps_all_threads']:.0f} | {b['qps_all_threads']:.0f} |")
PY
