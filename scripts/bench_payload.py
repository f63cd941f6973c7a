#!/usr/bin/env python3
"""Payloads in RAM against payloads on disk (`on_disk_payload`), beside Qdrant's own engine, on
the same data in the same run.

    .venv/bin/python scripts/bench_payload.py                  # 100k x 128-d, 1 KiB payloads
    .venv/bin/python scripts/bench_payload.py --n 1000000 --storage sqlite

Data: `--n` clustered unit vectors (Cosine; as scripts/bench_filter.py makes them) and per point a payload of about 1 KiB: {"tenant": one
of 100 keywords (keyword index declared), "bucket": 0..9 (no index), "body": 1,000 characters}.
Three query cases, `--queries` each, ef 128: no filter returning payloads; the indexed keyword
(1 %) returning payloads; the unindexed integer (10 %, read from the payloads) returning none.
Ground truth is the exact filtered top-10 (numpy).

Reference: `qdrant-edge-py` in this process (EdgeShard, m=16, ef_construct=100, the same index,
`optimize()` into one segment, `max_search_threads=1`), once with `on_disk_payload` false and
once true; its RSS growth over the load is reported. Ours: `target/release/qdrant` on a temp
dir, a fresh server per setting, points sent over REST, queried one at a time over REST; after
indexing it reports RSS, the payload bytes the server holds in RAM (`ram_payload_bytes`, summed
over shards) and the disk it uses.
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
from bench_sparse import Server, cpu_model, lat_stats  # noqa: E402
from bench_datatype import self_rss  # noqa: E402
from bench_filter import clustered, edge_timed, recall, truth  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 10
EF = 128
TENANTS = 100
BUCKETS = 10


def body_text(i):
    word = f"w{i % 997:03d} "
    return (word * (1000 // len(word) + 1))[:1000]


def payload(i):
    return {"tenant": f"t{i % TENANTS}", "bucket": int(i % BUCKETS), "body": body_text(i)}


def generate(args):
    rng = np.random.default_rng(args.seed)
    centres = rng.uniform(-1, 1, (100, args.dim))
    dirs = rng.uniform(-0.5, 0.5, (100, 8, args.dim))
    return clustered(rng, args.n, args.dim, centres, dirs), clustered(rng, args.queries, args.dim, centres, dirs)


def cases(args, rng):
    """(label, with payload, per query: (REST filter JSON or None, mask or None))."""
    ids = np.arange(args.n)
    keyword, unindexed = [], []
    for _ in range(args.queries):
        t = int(rng.integers(0, TENANTS))
        keyword.append(({"must": [{"key": "tenant", "match": {"value": f"t{t}"}}]}, ids % TENANTS == t))
        b = int(rng.integers(0, BUCKETS))
        unindexed.append(({"must": [{"key": "bucket", "match": {"value": b}}]}, ids % BUCKETS == b))
    return [("no filter, with payload", True, [(None, None)] * args.queries),
            ("indexed keyword 1 %, with payload", True, keyword),
            ("unindexed integer 10 %", False, unindexed)]


def run_reference(args, data, queries, all_cases, truths, workdir, on_disk):
    import qdrant_edge as qe
    from importlib.metadata import version

    path = os.path.join(workdir, f"edge-{on_disk}")
    cfg = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=args.dim, distance=qe.Distance.Cosine,
                                    hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10_000)),
        on_disk_payload=on_disk,
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, max_segment_size=1 << 30),
        max_search_threads=1,
        wal_enabled=False,
    )
    rss0 = self_rss()
    shard = qe.EdgeShard.create(path, cfg)
    shard.update(qe.UpdateOperation.create_field_index("tenant", qe.PayloadSchemaType.Keyword))
    t0 = time.perf_counter()
    for start in range(0, args.n, 1000):
        pts = [qe.Point(i, data[i].tolist(), payload(i)) for i in range(start, min(start + 1000, args.n))]
        shard.update(qe.UpdateOperation.upsert_points(pts))
    shard.optimize()
    res = {"engine": f"qdrant-edge-py {version('qdrant-edge-py')}", "ready_s": time.perf_counter() - t0,
           "rss_growth": self_rss() - rss0, "cases": {}}
    for (label, with_payload, per), tru in zip(all_cases, truths):
        reqs = []
        for qi, (f, _) in enumerate(per):
            flt = None
            if f:
                c = f["must"][0]
                flt = qe.Filter(must=[qe.FieldCondition(c["key"], match=qe.MatchValue(c["match"]["value"]))])
            reqs.append(qe.QueryRequest(limit=K, query=qe.Query.Nearest(queries[qi].tolist()), filter=flt,
                                        with_payload=with_payload, params=qe.SearchParams(hnsw_ef=EF)))
        lat, outs = edge_timed(shard, reqs, args.warmup)
        if with_payload and any(out and not out[0].payload for out in outs):
            raise RuntimeError("edge answered without payloads")
        ids = [[p.id for p in out] for out in outs]
        res["cases"][label] = {**lat_stats(lat), "recall_at_10": recall(ids, tru)}
        print(f"[edge on_disk_payload={on_disk}] {label}: {res['cases'][label]}", flush=True)
    shard.close()
    shutil.rmtree(path, ignore_errors=True)
    return res


def disk_bytes(root):
    total = 0
    for d, _, files in os.walk(root):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


def run_server(args, data, queries, all_cases, truths, workdir, on_disk):
    wd = os.path.join(workdir, f"ours-{on_disk}")
    os.makedirs(wd)
    srv = Server(args.binary, args.storage, wd)
    try:
        srv.call("PUT", "/collections/p", {"vectors": {"size": args.dim, "distance": "Cosine"},
                                           "hnsw_config": {"m": 16, "ef_construct": 100},
                                           "on_disk_payload": on_disk})
        srv.call("PUT", "/collections/p/index?wait=true", {"field_name": "tenant", "field_schema": "keyword"})
        t0 = time.perf_counter()
        srv.upload("p", args.n, lambda i: json.dumps({"id": i, "vector": data[i].tolist(), "payload": payload(i)}),
                   500)
        _, info, _ = srv.wait_green("p", args.n, args.green_timeout)
        ready = time.perf_counter() - t0
        tele = srv.call("GET", "/telemetry?details_level=2")
        shards = [s["local"] for c in tele["collections"]["collections"] if c["id"] == "p" for s in c["shards"]]
        res = {"ready_s": ready, "segments": info.get("segments_count"), "rss": srv.rss(),
               "ram_payload_bytes": sum(s["ram_payload_bytes"] for s in shards),
               "ram_vectors_bytes": sum(s["ram_vectors_bytes"] for s in shards),
               "ram_index_bytes": sum(s["ram_index_bytes"] for s in shards),
               "disk_bytes": disk_bytes(os.path.join(wd, "storage")), "cases": {}}
        for (label, with_payload, per), tru in zip(all_cases, truths):
            bodies = []
            for qi, (f, _) in enumerate(per):
                b = {"query": queries[qi].tolist(), "limit": K, "params": {"hnsw_ef": EF}, "with_payload": with_payload}
                if f:
                    b["filter"] = f
                bodies.append(b)
            lat, ids, _ = srv.timed_queries("p", bodies, args.warmup)
            res["cases"][label] = {**lat_stats(lat), **srv.last_inside, "recall_at_10": recall(ids, tru)}
            print(f"[ours on_disk_payload={on_disk}] {label}: {res['cases'][label]}", flush=True)
        return res
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--storage", default="rocksdb", choices=["rocksdb", "sqlite"])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/qdrant"))
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--green-timeout", type=int, default=1800)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--settings", default="both", choices=["both", "disk", "ram"],
                    help="which on_disk_payload settings to run (disk: true only, ram: false only)")
    args = ap.parse_args()
    settings = {"both": (False, True), "disk": (True,), "ram": (False,)}[args.settings]
    start, load0 = time.time(), os.getloadavg()[0]
    data, queries = generate(args)
    all_cases = cases(args, np.random.default_rng(args.seed + 1))
    truths = [truth(data, queries, per) for _, _, per in all_cases]
    workdir = tempfile.mkdtemp(prefix="bench-payload-")
    results = {}
    try:
        for on_disk in settings:
            if not args.skip_reference:
                results[f"edge-{on_disk}"] = run_reference(args, data, queries, all_cases, truths, workdir, on_disk)
            results[f"ours-{on_disk}"] = run_server(args, data, queries, all_cases, truths, workdir, on_disk)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    mib = 2**20
    print(f"\nn={args.n:,} x {args.dim}-d, ~1 KiB payloads, {args.queries} queries per case, ef {EF}, storage "
          f"{args.storage}; {os.cpu_count()} cores ({cpu_model()}); load average at start {load0:.2f}; "
          f"total {time.time() - start:.0f} s\n")
    print("| on_disk_payload | ours RSS | ours payload in RAM | ours vectors + index in RAM | ours disk | "
          "edge RSS growth | ready ours / edge s |")
    print("|---|---|---|---|---|---|---|")
    for on_disk in settings:
        o, e = results[f"ours-{on_disk}"], results.get(f"edge-{on_disk}")
        print(f"| {str(on_disk).lower()} | {o['rss'] / mib:.0f} MiB | {o['ram_payload_bytes'] / mib:.1f} MiB | "
              f"{(o['ram_vectors_bytes'] + o['ram_index_bytes']) / mib:.0f} MiB | {o['disk_bytes'] / mib:.0f} MiB | "
              + (f"{e['rss_growth'] / mib:.0f} MiB | {o['ready_s']:.0f} / {e['ready_s']:.0f} |" if e else
                 f"| {o['ready_s']:.0f} / |"))
    print("\n| case | on_disk_payload | ours QPS (REST) | ours p50 ms / inside the server | ours recall@10 | "
          "edge QPS (in-process) | edge p50 ms | edge recall@10 |")
    print("|---|---|---|---|---|---|---|---|")
    for label, _, _ in all_cases:
        for on_disk in settings:
            o = results[f"ours-{on_disk}"]["cases"][label]
            e = results.get(f"edge-{on_disk}", {}).get("cases", {}).get(label)
            print(f"| {label} | {str(on_disk).lower()} | {o['qps']:,.0f} | {o['p50_ms']:.2f} / "
                  f"{o['server_time_p50_ms']:.2f} | {o['recall_at_10']:.3f} | "
                  + (f"{e['qps']:,.0f} | {e['p50_ms']:.2f} | {e['recall_at_10']:.3f} |" if e else "| | |"))
    out = os.path.join(ROOT, "target", "bench", f"payload-{args.n}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump({"args": vars(args), "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
