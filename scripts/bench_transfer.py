#!/usr/bin/env python3
"""Shard transfer speed by method: three peers, one collection with a single shard of
`--points` 128-d points, moved back and forth between two peers, alternating `stream_records`
and `snapshot` (`--rounds` of each), timed from the request to every replica Active again.

Usage: QDRANT_BIN=target/release/qdrant scripts/bench_transfer.py [--points 100000] [--rounds 2]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cluster import call, cluster, wait_active  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backend", default="rocksdb")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="bench-transfer-")
    nodes = cluster(root, a.backend)
    try:
        port = nodes[0].port
        call(port, "PUT", "/collections/s",
             {"vectors": {"size": 128, "distance": "Dot"}, "shard_number": 1, "replication_factor": 1})
        for k in range(0, a.points, 1000):
            pts = [{"id": i, "vector": [((i * 7 + j) % 13) / 13 for j in range(128)], "payload": {"i": i}}
                   for i in range(k, min(a.points, k + 1000))]
            call(port, "PUT", "/collections/s/points?wait=true", {"points": pts})
        peers = [int(p) for p in call(port, "GET", "/cluster")["peers"]]
        info = call(port, "GET", "/collections/s/cluster")
        holder = info["peer_id"] if info["local_shards"] else info["remote_shards"][0]["peer_id"]
        other = next(p for p in peers if p != holder)
        vector_mb = a.points * 128 * 4 / 1e6
        for method in ["stream_records", "snapshot"] * a.rounds:
            t = time.time()
            call(port, "POST", "/collections/s/cluster",
                 {"move_shard": {"shard_id": 0, "from_peer_id": holder, "to_peer_id": other, "method": method}})
            wait_active(port, "s")
            took = time.time() - t
            print(f"{method:15s} {a.points} points: {took:.2f} s, {vector_mb / took:.1f} MB/s of vectors", flush=True)
            holder, other = other, holder
        count = call(nodes[1].port, "POST", "/collections/s/points/count", {"exact": True})["count"]
        assert count == a.points, count
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
