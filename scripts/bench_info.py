#!/usr/bin/env python3
"""Time `GET /collections/{name}` (what dashboards poll), a facet on an indexed keyword field and a
scroll ordered by an indexed integer, on a
collection of 100,000 points x 16-d with a 1 KiB payload each and keyword + integer payload indexes.

    .venv/bin/python scripts/bench_info.py [path/to/qdrant]   # default target/release/qdrant
"""

import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sparse import Server  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 100_000


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/qdrant")
    srv = Server(binary, "rocksdb", tempfile.mkdtemp(prefix="bench-info-"))
    try:
        srv.call("PUT", "/collections/f", {"vectors": {"size": 16, "distance": "Cosine"}})
        srv.call("PUT", "/collections/f/index?wait=true", {"field_name": "cat", "field_schema": "keyword"})
        srv.call("PUT", "/collections/f/index?wait=true", {"field_name": "n", "field_schema": "integer"})
        data = np.random.default_rng(0).normal(size=(N, 16)).astype(np.float32)
        text = "x" * 900
        srv.upload("f", N, lambda i: json.dumps({"id": i, "vector": data[i].tolist(),
                                                 "payload": {"cat": f"c{i % 10}", "n": i, "text": text}}), 1000)
        srv.wait_green("f", N, 600)
        lat = []
        for _ in range(20):
            t = time.perf_counter()
            srv.call("GET", "/collections/f")
            lat.append(time.perf_counter() - t)
        print(f"GET /collections/f over {N:,} points with 1 KiB payloads: p50 {np.median(lat) * 1000:.1f} ms")
        lat = []
        for _ in range(20):
            t = time.perf_counter()
            srv.call("POST", "/collections/f/facet", {"key": "cat", "limit": 10})
            lat.append(time.perf_counter() - t)
        print(f"POST /collections/f/facet on the indexed keyword \"cat\" (10 values): p50 {np.median(lat) * 1000:.1f} ms")
        lat = []
        for _ in range(20):
            t = time.perf_counter()
            srv.call("POST", "/collections/f/points/scroll", {"limit": 10, "order_by": {"key": "n", "direction": "desc"}})
            lat.append(time.perf_counter() - t)
        print(f"scroll with order_by the indexed integer \"n\" (limit 10): p50 {np.median(lat) * 1000:.1f} ms")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
