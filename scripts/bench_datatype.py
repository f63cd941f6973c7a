#!/usr/bin/env python3
"""Vector `datatype` (float32 / float16 / uint8): memory, speed and recall beside Qdrant's own
engine, on the same data in the same run.

    .venv/bin/python scripts/bench_datatype.py                 # 100k x 384-d (default)
    .venv/bin/python scripts/bench_datatype.py --n 20000 --dim 128 --queries 100   # quick
    .venv/bin/python scripts/bench_datatype.py --kinds uint8-Cosine,uint8-Cosine-disk

Data: `--n` clustered unit vectors (100 centres, each spread along 8 random directions, like
scripts/bench_filter.py). float32 and float16 collections use them with Cosine; the uint8 ones
take `round((v + 1) * 127.5)` (uint8 embeddings are whole numbers) with Euclid and with Cosine.
The `-disk` kinds are the same collections with `on_disk: true` vectors (memory-mapped files of
the sealed segments; their size is reported). Ground truth is the exact top-10 over the values
each type stores (numpy).

Reference: `qdrant-edge-py` in this process (EdgeShard with the same `datatype`, m=16,
ef_construct=100, `optimize()` into one segment, one search thread); its memory is the growth
of this process's RSS while the shard is built. Ours: `target/release/qdrant`, one fresh server
per datatype, points over REST, queries one at a time over REST; memory is the vectors' RAM the
server reports (`ram_vectors_bytes`, summed over shards) and the process RSS after indexing.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_filter import clustered  # noqa: E402
from bench_sparse import Server, cpu_model, lat_stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 10
KINDS = ["float32-Cosine", "float16-Cosine", "uint8-Euclid", "uint8-Cosine",
         "float32-Cosine-disk", "float16-Cosine-disk", "uint8-Cosine-disk"]


def kind(name):
    """(datatype, distance, on_disk) of a kind's name."""
    parts = name.split("-")
    return parts[0], parts[1], parts[2:] == ["disk"]


def file_bytes(root):
    """Bytes of memory-mapped vector files under `root`."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs if f.endswith(".vec"))


def self_rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def typed(datatype, v):
    """The values a collection of `datatype` stores for unit vectors `v`, as float32."""
    if datatype == "float16":
        return v.astype(np.float16).astype(np.float32)
    if datatype == "uint8":
        return np.round((v + 1.0) * 127.5).astype(np.uint8).astype(np.float32)
    return v


def exact_top(data, queries, distance):
    out = []
    if distance == "Cosine":
        data = data / np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-30)
    for q in queries:
        s = data @ (q / max(np.linalg.norm(q), 1e-30)) if distance == "Cosine" else -((data - q) ** 2).sum(axis=1)
        out.append(set(np.argsort(-s, kind="stable")[:K].tolist()))
    return out


def recall(ids, tru):
    return sum(len(set(a) & t) for a, t in zip(ids, tru)) / max(1, sum(len(t) for t in tru))


def run_reference(args, name, data, queries, tru, workdir):
    import qdrant_edge as qe

    datatype, distance, on_disk = kind(name)
    path = os.path.join(workdir, f"edge-{name}")
    rss0 = self_rss()
    cfg = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=args.dim, distance=getattr(qe.Distance, distance),
                                    datatype={"float32": qe.VectorStorageDatatype.Float32,
                                              "float16": qe.VectorStorageDatatype.Float16,
                                              "uint8": qe.VectorStorageDatatype.Uint8}[datatype],
                                    on_disk=on_disk,
                                    hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000)),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, max_segment_size=1 << 30),
        max_search_threads=1,
        wal_enabled=False,
    )
    shard = qe.EdgeShard.create(path, cfg)
    t0 = time.perf_counter()
    for start in range(0, args.n, 1000):
        shard.update(qe.UpdateOperation.upsert_points(
            [qe.Point(i, data[i].tolist(), {}) for i in range(start, min(start + 1000, args.n))]))
    shard.optimize()
    res = {"ready_s": time.perf_counter() - t0, "rss_growth": self_rss() - rss0, "cases": {}}
    for ef in args.ef:
        reqs = [qe.QueryRequest(limit=K, query=qe.Query.Nearest(q.tolist()), params=qe.SearchParams(hnsw_ef=ef))
                for q in queries]
        for r in reqs[:args.warmup]:
            shard.query(r)
        lat, ids = [], []
        for r in reqs:
            t = time.perf_counter()
            out = shard.query(r)
            lat.append(time.perf_counter() - t)
            ids.append([p.id for p in out])
        res["cases"][ef] = {**lat_stats(lat), "recall_at_10": recall(ids, tru)}
        print(f"[edge] {name} ef {ef}: {res['cases'][ef]}", flush=True)
    shard.close()
    shutil.rmtree(path, ignore_errors=True)
    return res


def run_server(args, name, data, queries, tru, workdir):
    datatype, distance, on_disk = kind(name)
    own = os.path.join(workdir, f"ours-{name}")
    os.makedirs(own, exist_ok=True)
    srv = Server(args.binary, args.storage, own)
    try:
        srv.call("PUT", "/collections/d", {"vectors": {"size": args.dim, "distance": distance, "datatype": datatype,
                                                       "on_disk": on_disk},
                                           "hnsw_config": {"m": 16, "ef_construct": 100}})
        t0 = time.perf_counter()
        srv.upload("d", args.n, lambda i: json.dumps({"id": i, "vector": data[i].tolist()}), 1000)
        _, info, _ = srv.wait_green("d", args.n, args.green_timeout)
        vec = sum(s.get("ram_vectors_bytes", 0) for s in info.get("shards", []))
        res = {"ready_s": time.perf_counter() - t0, "ram_vectors_bytes": vec, "rss": srv.rss(),
               "file_bytes": file_bytes(own), "cases": {}}
        for ef in args.ef:
            bodies = [{"query": q.tolist(), "limit": K, "params": {"hnsw_ef": ef}} for q in queries]
            lat, ids, _ = srv.timed_queries("d", bodies, args.warmup)
            res["cases"][ef] = {**lat_stats(lat), **srv.last_inside, "recall_at_10": recall(ids, tru)}
            print(f"[ours] {name} ef {ef}: {res['cases'][ef]}", flush=True)
        return res
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")], default=[64, 128])
    ap.add_argument("--storage", default="rocksdb", choices=["rocksdb", "sqlite"])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/qdrant"))
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--green-timeout", type=int, default=1800)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--kinds", type=lambda s: s.split(","), default=KINDS, help=f"some of {','.join(KINDS)}")
    args = ap.parse_args()
    start, load0 = time.time(), os.getloadavg()[0]
    rng = np.random.default_rng(args.seed)
    centres = rng.uniform(-1, 1, (100, args.dim))
    dirs = rng.uniform(-0.5, 0.5, (100, 8, args.dim))
    unit = clustered(rng, args.n, args.dim, centres, dirs)
    unit_q = clustered(rng, args.queries, args.dim, centres, dirs)
    workdir = tempfile.mkdtemp(prefix="bench-datatype-")
    results = {}
    try:
        for name in args.kinds:
            datatype, distance, _ = kind(name)
            data, queries = typed(datatype, unit), typed(datatype, unit_q)
            tru = exact_top(data, queries, distance)
            ref = None if args.skip_reference else run_reference(args, name, data, queries, tru, workdir)
            ours = run_server(args, name, data, queries, tru, workdir)
            results[name] = {"reference": ref, "ours": ours}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    raw = args.n * args.dim * 4 / 2**20
    print(f"\nn={args.n:,} x {args.dim}-d ({raw:.0f} MiB as float32), {args.queries} queries, storage {args.storage}; "
          f"{os.cpu_count()} cores ({cpu_model()}); load average at start {load0:.2f}; total {time.time() - start:.0f} s\n")
    print("| kind | ours vectors in RAM | ours vector files | ours RSS | edge RSS growth | ready ours / edge s |")
    print("|---|---|---|---|---|---|")
    for dt, r in results.items():
        o, e = r["ours"], r["reference"]
        print(f"| {dt} | {o['ram_vectors_bytes'] / 2**20:.1f} MiB | {o['file_bytes'] / 2**20:.1f} MiB | "
              f"{o['rss'] / 2**20:.0f} MiB | "
              + (f"{e['rss_growth'] / 2**20:.0f} MiB | {o['ready_s']:.1f} / {e['ready_s']:.1f} |" if e else
                 f"| {o['ready_s']:.1f} / |"))
    print("\n| datatype | ef | ours QPS (REST) | ours p50 / inside the server ms | ours recall@10 | edge QPS | "
          "edge p50 ms | edge recall@10 | QPS ours / edge |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dt, r in results.items():
        for ef, o in r["ours"]["cases"].items():
            e = r["reference"]["cases"][ef] if r["reference"] else None
            print(f"| {dt} | {ef} | {o['qps']:,.0f} | {o['p50_ms']:.2f} / {o['server_time_p50_ms']:.2f} | "
                  f"{o['recall_at_10']:.3f} | " + (f"{e['qps']:,.0f} | {e['p50_ms']:.2f} | {e['recall_at_10']:.3f} | "
                                                   f"{o['qps'] / e['qps']:.2f}x |" if e else "| | | |"))
    out = os.path.join(ROOT, "target", "bench", f"datatype-{args.n}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump({"args": vars(args), "results": results}, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
