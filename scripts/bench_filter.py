#!/usr/bin/env python3
"""Filtered dense search beside Qdrant's own engine, on the same data in the same run.

    .venv/bin/python scripts/bench_filter.py            # 100k x 128-d (default)
    .venv/bin/python scripts/bench_filter.py --n 1000000 --storage sqlite

Data: `--n` clustered unit vectors (Cosine; 100 centres, each spread along 8 random directions,
so the data has a low intrinsic dimension like real embeddings), and per point a payload
{"s0_1": one of 1000 keywords, "s1": one of 100, "s10": one of 10, "s50": one of 2, "x": float
in [0, 1), "loc": a geo point uniform in longitude and latitude}; filters select about 0.1 %, 1 %,
10 % and 50 % of the points by keyword, 10 % by a float range, and about 1 % by a 1,300 km
`geo_radius` (geo index declared); the first case has no filter. The query set is drawn the same
way; ground truth is the exact (filtered) top-10 (numpy, float32 dot products of unit vectors).

Reference: `qdrant-edge-py` in this process (EdgeShard, the same HNSW settings m=16,
ef_construct=100, keyword and float payload indexes, `optimize()`, `max_search_threads=1`),
queries one after another. Ours: `target/release/qdrant` started on a temp dir, the same indexes
declared before the upload, points sent over REST (JSON), then queried one at a time over REST
(`--client`: `http.client` kept alive by default, or httpx). `--segments` sets
`default_segment_number` on both engines (default 1; 0: each engine's automatic choice) and the
same `max_segment_size`; `--only LABEL` runs the cases whose label starts with LABEL. Both engines
are loaded first; then every case runs on the reference and right after on ours, so that a
drift in the machine's speed affects both alike. Both engines answer every query of a case with the same `ef`
(`--ef`, default 64 and 128); the table reports QPS, p50 and recall@10 for each.

`--tenants T` benchmarks Qdrant's multitenancy set-up instead: each point gets a `tenant` (one of
T, uniform), both engines are configured with `m: 0, payload_m: 16` (no global graph, one per
tenant) and a keyword index on `tenant` with `is_tenant: true` (the only index declared); the
cases are one tenant and any of two tenants. `--full-scan KB` sets `full_scan_threshold` on both (default 10,000 KiB, Qdrant's): a
tenant with fewer points than that many KiB of vectors is scanned exactly, a larger one searched
through its own graph.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 10
FIELDS = {"s0_1": 1000, "s1": 100, "s10": 10, "s50": 2}


def clustered(rng, n, dim, centres, dirs):
    c = rng.integers(0, len(centres), n)
    w = rng.uniform(-0.5, 0.5, (n, dirs.shape[1], 3)).sum(axis=2)
    v = centres[c] + np.einsum("nk,nkd->nd", w, dirs[c]) + rng.uniform(-0.02, 0.02, (n, dim))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def generate(args):
    rng = np.random.default_rng(args.seed)
    centres = rng.uniform(-1, 1, (100, args.dim))
    dirs = rng.uniform(-0.5, 0.5, (100, 8, args.dim))
    data = clustered(rng, args.n, args.dim, centres, dirs)
    queries = clustered(rng, args.queries, args.dim, centres, dirs)
    cats = {f: rng.integers(0, m, args.n) for f, m in FIELDS.items()}
    if args.tenants:
        cats["tenant"] = rng.integers(0, args.tenants, args.n)
    x = np.round(rng.uniform(0, 1, args.n), 6)
    geo = np.round(np.stack([rng.uniform(-180, 180, args.n), rng.uniform(-90, 90, args.n)], axis=1), 6)
    return data, queries, cats, (x, geo)


EARTH_RADIUS_M = 6_371_008.8


def within(geo, lon, lat, radius):
    """Haversine distance below `radius` meters, as Qdrant's geo_radius decides."""
    la1, la2 = np.radians(lat), np.radians(geo[:, 1])
    dlat, dlon = la2 - la1, np.radians(geo[:, 0] - lon)
    a = np.sin(dlat / 2) ** 2 + np.cos(la1) * np.cos(la2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(np.sqrt(a), 1.0)) < radius


def cases(args, rng, cats, xg):
    """(label, per query: (REST filter JSON, numpy mask)); the first case has no filter."""
    x, geo = xg
    if args.tenants:
        one, two = [], []
        for _ in range(args.queries):
            a, b = rng.choice(args.tenants, 2, replace=False)
            one.append(({"must": [{"key": "tenant", "match": {"value": f"t{a}"}}]}, cats["tenant"] == a))
            both = {"must": [{"key": "tenant", "match": {"any": [f"t{a}", f"t{b}"]}}]}
            two.append((both, (cats["tenant"] == a) | (cats["tenant"] == b)))
        return [("one tenant", one), ("two tenants", two)]
    out = [("unfiltered", [(None, None)] * args.queries)]
    for f, m in FIELDS.items():
        label = {"s0_1": "keyword 0.1 %", "s1": "keyword 1 %", "s10": "keyword 10 %", "s50": "keyword 50 %"}[f]
        per = []
        for _ in range(args.queries):
            v = int(rng.integers(0, m))
            per.append(({"must": [{"key": f, "match": {"value": f"v{v}"}}]}, cats[f] == v))
        out.append((label, per))
    per = []
    for _ in range(args.queries):
        lo = float(np.round(rng.uniform(0, 0.9), 3))
        per.append(({"must": [{"key": "x", "range": {"gte": lo, "lt": lo + 0.1}}]}, (x >= lo) & (x < lo + 0.1)))
    out.append(("float range 10 %", per))
    per = []
    for _ in range(args.queries):
        lon, lat = float(np.round(rng.uniform(-180, 180), 3)), float(np.round(rng.uniform(-60, 60), 3))
        f = {"must": [{"key": "loc", "geo_radius": {"center": {"lon": lon, "lat": lat}, "radius": 1_300_000.0}}]}
        per.append((f, within(geo, lon, lat, 1_300_000.0)))
    out.append(("geo radius ~1 %", per))
    return out


def truth(data, queries, per):
    """Exact top-K ids per query among the points its mask selects (`None`: every point)."""
    out = []
    for qi, (_, mask) in enumerate(per):
        idx = np.arange(len(data)) if mask is None else np.nonzero(mask)[0]
        s = data[idx] @ queries[qi]
        top = idx[np.argsort(-s, kind="stable")[:K]]
        out.append(set(top.tolist()))
    return out


def recall(ids, tru):
    hit = sum(len(set(a) & t) for a, t in zip(ids, tru))
    return hit / max(1, sum(len(t) for t in tru))


def edge_timed(shard, reqs, warmup):
    """Run `reqs` one after another on an EdgeShard, after the first `warmup` of them as a
    warm-up; returns (latencies in seconds, answers)."""
    for r in reqs[:warmup]:
        shard.query(r)
    lat, outs = [], []
    for r in reqs:
        t = time.perf_counter()
        outs.append(shard.query(r))
        lat.append(time.perf_counter() - t)
    return lat, outs


def edge_filter(qe, f):
    if f is None:
        return None
    c = f["must"][0]
    if "match" in c and "any" in c["match"]:
        cond = qe.FieldCondition(c["key"], match=qe.MatchAny(c["match"]["any"]))
    elif "match" in c:
        cond = qe.FieldCondition(c["key"], match=qe.MatchValue(c["match"]["value"]))
    elif "geo_radius" in c:
        g = c["geo_radius"]
        center = qe.GeoPoint(lon=g["center"]["lon"], lat=g["center"]["lat"])
        cond = qe.FieldCondition(c["key"], geo_radius=qe.GeoRadius(center=center, radius=g["radius"]))
    else:
        cond = qe.FieldCondition(c["key"], range=qe.RangeFloat(**c["range"]))
    return qe.Filter(must=[cond])


def hnsw(args):
    """The HNSW settings of both engines: m=16 and ef_construct=100, or, with `--tenants`, no
    global graph (`m: 0`) and one per tenant (`payload_m: 16`)."""
    if args.tenants:
        return {"m": 0, "payload_m": 16, "ef_construct": 100, "full_scan_threshold": args.full_scan}
    return {"m": 16, "ef_construct": 100, "full_scan_threshold": args.full_scan}


def payload_of(i, cats, x, geo):
    p = {**{f: f"v{cats[f][i]}" for f in FIELDS}, "x": float(x[i]),
         "loc": {"lon": float(geo[i, 0]), "lat": float(geo[i, 1])}}
    if "tenant" in cats:
        p["tenant"] = f"t{cats['tenant'][i]}"
    return p


def load_reference(args, data, queries, cats, xg, workdir):
    """Qdrant's engine loaded and optimised; returns (results, run one case, close)."""
    x, geo = xg
    import qdrant_edge as qe
    from importlib.metadata import version

    path = os.path.join(workdir, "edge")
    cfg = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=args.dim, distance=qe.Distance.Cosine,
                                    hnsw_config=qe.HnswIndexConfig(**hnsw(args))),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=args.segments, max_segment_size=1 << 30,
                                           **({} if args.indexing_threshold is None
                                              else {"indexing_threshold": args.indexing_threshold})),
        max_search_threads=1,
        wal_enabled=False,
    )
    shard = qe.EdgeShard.create(path, cfg)
    if args.tenants:
        shard.update(qe.UpdateOperation.create_field_index("tenant", qe.KeywordIndexParams(is_tenant=True)))
    else:
        for f in FIELDS:
            shard.update(qe.UpdateOperation.create_field_index(f, qe.PayloadSchemaType.Keyword))
        shard.update(qe.UpdateOperation.create_field_index("x", qe.PayloadSchemaType.Float))
        shard.update(qe.UpdateOperation.create_field_index("loc", qe.PayloadSchemaType.Geo))
    # Points are built before the clock starts, as our request bodies are encoded before it.
    batches = [[qe.Point(i, data[i].tolist(), payload_of(i, cats, x, geo)) for i in range(start, min(start + 1000, args.n))]
               for start in range(0, args.n, 1000)]
    t0 = time.perf_counter()
    for pts in batches:
        shard.update(qe.UpdateOperation.upsert_points(pts))
    shard.optimize()
    ready = time.perf_counter() - t0
    res = {"engine": f"qdrant-edge-py {version('qdrant-edge-py')}", "ready_s": ready,
           "segments": shard.info().segments_count, "cases": {}}

    def run_case(label, per, tru, ef):
        reqs = [qe.QueryRequest(limit=K, query=qe.Query.Nearest(queries[qi].tolist()), filter=edge_filter(qe, f),
                                params=qe.SearchParams(hnsw_ef=ef)) for qi, (f, _) in enumerate(per)]
        lat, outs = edge_timed(shard, reqs, args.warmup)
        ids = [[p.id for p in out] for out in outs]
        res["cases"][f"{label} @ef{ef}"] = {**lat_stats(lat), "recall_at_10": recall(ids, tru)}
        print(f"[edge] {label} ef {ef}: {res['cases'][f'{label} @ef{ef}']}", flush=True)

    def close():
        shard.close()
        shutil.rmtree(path, ignore_errors=True)

    return res, run_case, close


def load_server(args, data, queries, cats, xg, workdir):
    """Our server started, loaded over REST and green; returns (results, run one case, close)."""
    x, geo = xg
    srv = Server(args.binary, args.storage, workdir)
    try:
        config = {"vectors": {"size": args.dim, "distance": "Cosine"}, "hnsw_config": hnsw(args)}
        if args.segments:
            config["optimizers_config"] = {"default_segment_number": args.segments, "max_segment_size": 1 << 30}
        if args.indexing_threshold is not None:
            config.setdefault("optimizers_config", {})["indexing_threshold"] = args.indexing_threshold
        srv.call("PUT", "/collections/f", config)
        indexes = [(f, "keyword") for f in FIELDS] + [("x", "float"), ("loc", "geo")]
        if args.tenants:
            indexes = [("tenant", {"type": "keyword", "is_tenant": True})]
        if args.bare:
            indexes = []
        for field, schema in indexes:
            srv.call("PUT", "/collections/f/index?wait=true", {"field_name": field, "field_schema": schema})
        # Encoded before the clock starts: the benchmark's own JSON work is not the server's.
        encoded = [json.dumps({"id": i, "vector": data[i].tolist(), "payload": payload_of(i, cats, x, geo)})
                   for i in range(args.n)]
        t0 = time.perf_counter()
        srv.upload("f", args.n, encoded.__getitem__, 1000)
        green, info, _ = srv.wait_green("f", args.n, args.green_timeout)
        ready = time.perf_counter() - t0
        res = {"ready_s": ready, "segments": info.get("segments_count"), "rss": srv.rss(), "cases": {}}
    except BaseException:
        srv.stop()
        raise

    def run_case(label, per, tru, ef):
        bodies = [{"query": queries[qi].tolist(), "limit": K, "params": {"hnsw_ef": ef},
                   **({"filter": f} if f else {})} for qi, (f, _) in enumerate(per)]
        lat, ids, _ = srv.timed_queries("f", bodies, args.warmup, client=args.client)
        res["cases"][f"{label} @ef{ef}"] = {**lat_stats(lat), **srv.last_inside, "recall_at_10": recall(ids, tru),
                                            "cpu_ms_per_query": srv.last_cpu_ms}
        print(f"[ours] {label} ef {ef}: {res['cases'][f'{label} @ef{ef}']}", flush=True)

    return res, run_case, srv.stop


def table(args, ref, ours):
    rows = ["| case | ours QPS (REST) | ours p50 ms / inside the server | ours recall@10 | edge QPS (in-process) | "
            "edge p50 ms | edge recall@10 | QPS ours / edge |", "|---|---|---|---|---|---|---|---|"]
    for key, o in ours["cases"].items():
        r = ref["cases"].get(key) if ref else None
        rows.append(f"| {key} | {o['qps']:,.0f} | {o['p50_ms']:.2f} / {o['server_time_p50_ms']:.2f} | "
                    f"{o['recall_at_10']:.3f} | " + (f"{r['qps']:,.0f} | {r['p50_ms']:.2f} | {r['recall_at_10']:.3f} | "
                                                     f"{o['qps'] / r['qps']:.2f}x |" if r else "| | | |"))
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ef", type=lambda s: [int(x) for x in s.split(",")], default=[64, 128])
    ap.add_argument("--storage", default="rocksdb", choices=["rocksdb", "sqlite"])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/qdrant"))
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--green-timeout", type=int, default=1800)
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--segments", type=int, default=1,
                    help="default_segment_number for both engines (0: each engine's automatic choice)")
    ap.add_argument("--client", default="stdlib", choices=["stdlib", "httpx"],
                    help="HTTP client timing our queries (stdlib: http.client, kept alive)")
    ap.add_argument("--only", default="", help="run only the cases whose label starts with this")
    ap.add_argument("--tenants", type=int, default=0,
                    help="multitenancy: T tenants, m=0 and payload_m=16, is_tenant index (cases: one and two tenants)")
    ap.add_argument("--full-scan", type=int, default=10_000, help="full_scan_threshold (KiB) on both engines")
    ap.add_argument("--indexing-threshold", type=int, default=None,
                    help="indexing_threshold (KiB) on both engines (0: no HNSW, points stay in unindexed segments)")
    ap.add_argument("--bare", action="store_true",
                    help="declare no payload indexes on our server (filters then read every payload)")
    args = ap.parse_args()
    start = time.time()
    load0 = os.getloadavg()[0]
    data, queries, cats, x = generate(args)
    all_cases = [c for c in cases(args, np.random.default_rng(args.seed + 1), cats, x) if c[0].startswith(args.only)]
    truths = [truth(data, queries, per) for _, per in all_cases]
    workdir = tempfile.mkdtemp(prefix="bench-filter-")
    # Both engines are loaded first, then each case runs on one and at once on the other, so
    # that both see the machine in the same state (on a shared VM, its speed drifts).
    closers = []
    try:
        ref = None
        if not args.skip_reference:
            ref, ref_case, close = load_reference(args, data, queries, cats, x, workdir)
            closers.append(close)
        ours, our_case, close = load_server(args, data, queries, cats, x, workdir)
        closers.append(close)
        for (label, per), tru in zip(all_cases, truths):
            for ef in args.ef:
                if ref is not None:
                    ref_case(label, per, tru, ef)
                our_case(label, per, tru, ef)
    finally:
        for close in reversed(closers):
            close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nn={args.n:,} x {args.dim}-d, {args.queries} queries per case, storage {args.storage}, "
          f"default_segment_number {args.segments or 'auto'}, client {args.client}, tenants {args.tenants}, "
          f"full_scan_threshold {args.full_scan} KiB, indexing_threshold {args.indexing_threshold}, "
          f"bare {args.bare}; {os.cpu_count()} cores "
          f"({cpu_model()}); load average at start {load0:.2f}; total {time.time() - start:.0f} s")
    if ref:
        print(f"ready (upload + index): ours {ours['ready_s']:.1f} s over REST ({ours['segments']} segments), "
              f"edge {ref['ready_s']:.1f} s in-process ({ref['segments']} segments); ours RSS {ours['rss'] / 2**20:.0f} MiB\n")
    print(table(args, ref, ours))
    suffix = f"-{args.only.replace(' ', '_')}" if args.only else ""
    suffix += f"-tenants{args.tenants}" if args.tenants else ""
    suffix += f"-it{args.indexing_threshold}" if args.indexing_threshold is not None else ""
    suffix += "-bare" if args.bare else ""
    out = os.path.join(ROOT, "target", "bench", f"filter-{args.n}{suffix}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        json.dump({"args": vars(args), "reference": ref, "ours": ours}, fh, indent=1)


if __name__ == "__main__":
    main()
