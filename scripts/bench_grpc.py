#!/usr/bin/env python3
"""Upload and search through gRPC and through REST with the official Python client, on one
server and the same data, in one run. Prints a markdown table (paste into docs/benchmarks.md)
and writes the raw numbers as JSON to target/bench/grpc-N.json.

    .venv/bin/python scripts/bench_grpc.py [--n 100000] [--dim 768] [--queries 1000]
                                          [--batch 256] [--storage rocksdb|sqlite]

Data (deterministic for --seed): random normal vectors, --dim wide, float32, with a small
payload ({"i": id, "group": id % 10}); queries drawn the same way.

Measured, on a server started here (release binary, temp dir, free ports):
1. upload: `client.upsert(points=models.Batch(...), wait=True)` in batches of --batch, once with
   `prefer_grpc=False` into collection `rest`, once with `prefer_grpc=True` into `grpc` (same
   points; indexing is off until both are in): points/s, wall clock of the whole upload at the
   client, the client's own request encoding included;
2. search: when both collections are green (HNSW built), the same --queries queries
   (`query_points`, limit 10, no payload) one after another from one client, over REST and over
   gRPC, against the same collection: QPS and p50/p99 latency at the client.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import numpy as np
from qdrant_client import QdrantClient, models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, storage, workdir):
        self.http, self.grpc = free_port(), free_port()
        self.log = open(os.path.join(workdir, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--storage", storage, "--storage-path", os.path.join(workdir, "storage"),
             "--snapshots-path", os.path.join(workdir, "snapshots"), "--http-port", str(self.http),
             "--grpc-port", str(self.grpc), "--host", "127.0.0.1"],
            cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                QdrantClient(url=f"http://127.0.0.1:{self.http}", timeout=5).get_collections()
                return
            except Exception:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("server did not start")
                time.sleep(0.1)

    def client(self, grpc):
        return QdrantClient(url=f"http://127.0.0.1:{self.http}", grpc_port=self.grpc, prefer_grpc=grpc,
                            timeout=600)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def upload(client, name, vectors, batch):
    # Indexing off while uploading, so that building one collection's graph does not slow the
    # other's upload; it is turned on once both are in.
    client.create_collection(name, vectors_config=models.VectorParams(size=vectors.shape[1],
                                                                      distance=models.Distance.COSINE),
                             optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0))
    t = time.perf_counter()
    for start in range(0, len(vectors), batch):
        ids = list(range(start, min(start + batch, len(vectors))))
        client.upsert(name, points=models.Batch(ids=ids, vectors=vectors[start:start + len(ids)].tolist(),
                                                payloads=[{"i": i, "group": i % 10} for i in ids]), wait=True)
    return time.perf_counter() - t


def wait_green(client, name, timeout=3600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = client.get_collection(name)
        if info.status == models.CollectionStatus.GREEN and info.indexed_vectors_count > 0:
            return
        time.sleep(1)
    raise RuntimeError(f"{name} not green")


def search(client, name, queries):
    lat = []
    t = time.perf_counter()
    for q in queries:
        s = time.perf_counter()
        client.query_points(name, query=q, limit=10)
        lat.append(time.perf_counter() - s)
    total = time.perf_counter() - t
    lat.sort()
    return {"qps": len(queries) / total, "p50_ms": lat[len(lat) // 2] * 1e3,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--storage", default="rocksdb")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "qdrant"))
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    vectors = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32).tolist()

    work = tempfile.mkdtemp(prefix="bench-grpc-")
    server = Server(args.binary, args.storage, work)
    try:
        rest, grpc = server.client(False), server.client(True)
        up = {"rest": upload(rest, "rest", vectors, args.batch), "grpc": upload(grpc, "grpc", vectors, args.batch)}
        for name in ("rest", "grpc"):
            rest.update_collection(name, optimizers_config=models.OptimizersConfigDiff(indexing_threshold=20_000))
        wait_green(rest, "rest")
        wait_green(rest, "grpc")
        time.sleep(5)  # let flushes after green settle
        # Warm-up, then the measured runs on the same collection.
        search(rest, "rest", queries[:50])
        search(grpc, "rest", queries[:50])
        found = {"rest": search(rest, "rest", queries), "grpc": search(grpc, "rest", queries)}
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    result = {"n": args.n, "dim": args.dim, "batch": args.batch, "queries": args.queries,
              "storage": args.storage,
              "upload_points_per_s": {k: args.n / v for k, v in up.items()},
              "upload_seconds": up, "search": found}
    os.makedirs(os.path.join(ROOT, "target", "bench"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench", f"grpc-{args.n}.json"), "w") as f:
        json.dump(result, f, indent=2)
    r, g = result["upload_points_per_s"], found
    print(f"| | REST | gRPC | gRPC / REST |\n|---|---|---|---|")
    print(f"| upload {args.n:,} × {args.dim}-d, batches of {args.batch} (points/s) | {r['rest']:,.0f} | "
          f"{r['grpc']:,.0f} | {r['grpc'] / r['rest']:.2f}× |")
    print(f"| search, {args.queries:,} queries one at a time (QPS) | {g['rest']['qps']:,.0f} | "
          f"{g['grpc']['qps']:,.0f} | {g['grpc']['qps'] / g['rest']['qps']:.2f}× |")
    print(f"| search p50 / p99 (ms) | {g['rest']['p50_ms']:.2f} / {g['rest']['p99_ms']:.2f} | "
          f"{g['grpc']['p50_ms']:.2f} / {g['grpc']['p99_ms']:.2f} | |")


if __name__ == "__main__":
    main()
