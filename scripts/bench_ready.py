#!/usr/bin/env python3
"""Where the time to ready (upload + index) goes on the server, with the client's JSON encoding
taken out: every request body is encoded before the clock starts.

    .venv/bin/python scripts/bench_ready.py [--n 100000] [--dim 128] [--payload-bytes 0] [--batch 1000] [--no-edge]

Starts the release server (RocksDB, temp dir), creates a Cosine collection (m=16,
ef_construct=100), PUTs the pre-encoded batches with two requests in flight (wait=true), then
polls until the collection is green with every point. Prints the upload time, the server's CPU
seconds during the upload, the time to green, and the cores the server used every half second
(so idle gaps in indexing show). Then, in the same run on the same vectors and payloads, Qdrant's
engine (`qdrant-edge-py`, in this process, points built before the clock starts, 2 segments as
ours on 2 cores): upserts in batches of the same size and `optimize()`, timed.
"""

import argparse
import concurrent.futures
import json
import os
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sparse import Server  # noqa: E402


def vectors(n, dim):
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def payload(i, n, pad):
    return {"k": f"c{i % 100}", "x": i / n, "t": pad}


def edge_ready(vecs, batch, payload_bytes, workdir):
    """Seconds Qdrant's engine takes to upsert and optimise the same points."""
    import qdrant_edge as qe

    n, dim = vecs.shape
    pad = "x" * payload_bytes
    cfg = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine,
                                    hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000)),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=2),
    )
    shard = qe.EdgeShard.create(os.path.join(workdir, "edge"), cfg)
    batches = [[qe.Point(i, vecs[i].tolist(), payload(i, n, pad)) for i in range(s, min(s + batch, n))]
               for s in range(0, n, batch)]
    t = time.perf_counter()
    for pts in batches:
        shard.update(qe.UpdateOperation.upsert_points(pts))
    shard.optimize()
    return time.perf_counter() - t


def bodies(vecs, batch, payload_bytes):
    n = len(vecs)
    pad = "x" * payload_bytes
    out = []
    for s in range(0, n, batch):
        pts = [
            '{"id":%d,"vector":[%s],"payload":%s}' % (i, ",".join("%.6f" % v for v in vecs[i]), json.dumps(payload(i, n, pad)))
            for i in range(s, min(s + batch, n))
        ]
        out.append(('{"points":[' + ",".join(pts) + "]}").encode())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--payload-bytes", type=int, default=0)
    ap.add_argument("--binary", default="target/release/qdrant")
    ap.add_argument("--no-edge", action="store_true", help="skip Qdrant's engine")
    args = ap.parse_args()
    vecs = vectors(args.n, args.dim)
    encoded = bodies(vecs, args.batch, args.payload_bytes)
    print(f"encoded {sum(map(len, encoded)) / 1e6:.1f} MB of JSON", flush=True)
    srv = Server(os.path.abspath(args.binary), "rocksdb", tempfile.mkdtemp())
    try:
        srv.call("PUT", "/collections/c", {"vectors": {"size": args.dim, "distance": "Cosine"},
                                           "hnsw_config": {"m": 16, "ef_construct": 100}})
        samples, stop = [], threading.Event()

        def sample():
            last = (time.perf_counter(), srv.cpu_seconds())
            while not stop.wait(0.5):
                now = (time.perf_counter(), srv.cpu_seconds())
                samples.append(round((now[1] - last[1]) / (now[0] - last[0]), 2))
                last = now

        threading.Thread(target=sample, daemon=True).start()
        cpu0, t = srv.cpu_seconds(), time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for f in [pool.submit(srv.call, "PUT", "/collections/c/points?wait=true", None, b) for b in encoded]:
                f.result()
        upload, cpu_upload = time.perf_counter() - t, srv.cpu_seconds() - cpu0
        green, info, _ = srv.wait_green("c", args.n, 1200)
        stop.set()
        print(f"upload {upload:.2f} s (server CPU {cpu_upload:.2f} s); green {upload + green:.2f} s "
              f"(polled once a second, green twice in a row); server CPU until idle {srv.cpu_seconds() - cpu0:.2f} s; "
              f"segments {info.get('segments_count')}")
        busy = [i for i, c in enumerate(samples) if c > 0.1]
        print(f"server busy until {(busy[-1] + 1) * 0.5 if busy else 0:.1f} s; cores used per half second:", samples)
    finally:
        srv.stop()
    if not args.no_edge:
        edge = edge_ready(vecs, args.batch, args.payload_bytes, tempfile.mkdtemp())
        print(f"qdrant-edge-py: upsert + optimize {edge:.2f} s in-process")


if __name__ == "__main__":
    main()
