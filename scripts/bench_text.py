#!/usr/bin/env python3
"""Full-text filtering beside Qdrant's own engine, on the same data in the same run.

    .venv/bin/python scripts/bench_text.py              # 100k documents (default)
    .venv/bin/python scripts/bench_text.py --n 20000 --storage sqlite

Data: `--n` documents of 8-24 words drawn from a 5,000-word vocabulary with Zipf-like
frequencies (a few words in most documents, most words in few), each with a 16-d random vector.
A full-text index is declared on the text field before the upload (word tokenizer, lowercase,
English stopwords and Snowball stemmer). Queries: `count` (exact) and a filtered nearest search
(limit 10) with `match: text` of one rare word, of two common words, and `text_any` of three
words; every answer is checked to be the same set the reference gives.

Reference: `qdrant-edge-py` in this process, the same index settings, `optimize()`. Ours:
`target/release/qdrant` on a temp dir, points sent over REST, the run waits until the optimizer
has sealed and indexed every segment (green after writes went quiet), then queries one at a
time over REST.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sparse import Server, cpu_model, lat_stats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = {"type": "text", "tokenizer": "word", "lowercase": True, "stopwords": "english",
          "stemmer": {"type": "snowball", "language": "english"}}


def generate(args):
    rng = np.random.default_rng(args.seed)
    vocab = [f"w{i}x" for i in range(5000)]
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    p /= p.sum()
    docs = []
    for _ in range(args.n):
        words = rng.choice(len(vocab), rng.integers(8, 25), p=p)
        docs.append(" ".join(vocab[w] for w in words))
    vectors = rng.uniform(-1, 1, (args.n, 16)).astype(np.float32)
    cases = {
        "text: 1 rare word": [{"text": vocab[i]} for i in rng.integers(500, 2000, args.queries)],
        "text: 2 common words": [{"text": f"{vocab[a]} {vocab[b]}"}
                                 for a, b in zip(rng.integers(0, 20, args.queries), rng.integers(20, 60, args.queries))],
        "text_any: 3 words": [{"text_any": " ".join(vocab[i] for i in rng.integers(50, 400, 3))}
                              for _ in range(args.queries)],
    }
    return docs, vectors, cases


def run_reference(docs, vectors, cases, workdir):
    import qdrant_edge as qe

    shard = qe.EdgeShard.create(os.path.join(workdir, "edge"), qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=16, distance=qe.Distance.Dot), max_search_threads=1, wal_enabled=False))
    shard.update(qe.UpdateOperation.create_field_index("t", qe.TextIndexParams(
        tokenizer=qe.TokenizerType.Word, lowercase=True, stopwords=qe.Language.English,
        stemmer=qe.SnowballParams(qe.SnowballLanguage.English))))
    for start in range(0, len(docs), 1000):
        shard.update(qe.UpdateOperation.upsert_points(
            [qe.Point(i, vectors[i].tolist(), {"t": docs[i]}) for i in range(start, min(start + 1000, len(docs)))]))
    shard.optimize()
    out = {}
    for label, matches in cases.items():
        counts, count_lat, search_lat = [], [], []
        for m in matches:
            match = qe.MatchText(m["text"]) if "text" in m else qe.MatchTextAny(m["text_any"])
            flt = qe.Filter(must=[qe.FieldCondition(key="t", match=match)])
            t0 = time.perf_counter()
            counts.append(shard.count(qe.CountRequest(exact=True, filter=flt)))
            count_lat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            shard.query(qe.QueryRequest(query=qe.Query.Nearest(vectors[0].tolist()), filter=flt, limit=10))
            search_lat.append(time.perf_counter() - t0)
        out[label] = {"counts": counts, "count": lat_stats(count_lat), "search": lat_stats(search_lat)}
    return out


def run_server(args, docs, vectors, cases, workdir):
    srv = Server(os.path.join(ROOT, "target", "release", "qdrant"), args.storage, workdir)
    try:
        srv.call("PUT", "/collections/t", {"vectors": {"size": 16, "distance": "Dot"}})
        srv.call("PUT", "/collections/t/index?wait=true", {"field_name": "t", "field_schema": SCHEMA})
        for start in range(0, len(docs), 1000):
            pts = [{"id": i, "vector": vectors[i].tolist(), "payload": {"t": docs[i]}}
                   for i in range(start, min(start + 1000, len(docs)))]
            srv.call("PUT", "/collections/t/points?wait=true", {"points": pts})
        # The optimizer seals the last points once writes have been quiet for a moment: wait for
        # that, then for green (every segment indexed, postings included).
        deadline = time.time() + 600
        time.sleep(3)
        while srv.call("GET", "/collections/t")["status"] != "green" and time.time() < deadline:
            time.sleep(0.5)
        out = {}
        for label, matches in cases.items():
            counts, count_lat, search_lat = [], [], []
            for m in matches:
                flt = {"must": [{"key": "t", "match": m}]}
                t0 = time.perf_counter()
                counts.append(srv.call("POST", "/collections/t/points/count", {"filter": flt, "exact": True})["count"])
                count_lat.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                srv.call("POST", "/collections/t/points/query", {"query": vectors[0].tolist(), "filter": flt, "limit": 10})
                search_lat.append(time.perf_counter() - t0)
            out[label] = {"counts": counts, "count": lat_stats(count_lat), "search": lat_stats(search_lat)}
        out["segments"] = srv.call("GET", "/collections/t")["segments_count"]
        return out
    finally:
        srv.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--storage", default="rocksdb", choices=["rocksdb", "sqlite"])
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    docs, vectors, cases = generate(args)
    workdir = tempfile.mkdtemp(prefix="bench-text-")
    try:
        ref = run_reference(docs, vectors, cases, workdir)
        ours = run_server(args, docs, vectors, cases, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nn={args.n:,} documents, {args.queries} queries per case, storage {args.storage}; "
          f"{os.cpu_count()} cores ({cpu_model()}); our segments: {ours['segments']}")
    print("| case | mean matches | count p50 ms (edge / ours) | search p50 ms (edge / ours) | same counts |")
    print("|---|---|---|---|---|")
    for label in cases:
        r, o = ref[label], ours[label]
        same = r["counts"] == o["counts"]
        print(f"| {label} | {np.mean(r['counts']):,.0f} | {r['count']['p50_ms']:.2f} / {o['count']['p50_ms']:.2f} "
              f"| {r['search']['p50_ms']:.2f} / {o['search']['p50_ms']:.2f} | {'yes' if same else 'NO'} |")
        if not same:
            bad = [(i, a, b) for i, (a, b) in enumerate(zip(r["counts"], o["counts"])) if a != b][:5]
            print(f"  differing (query, edge, ours): {bad}")


if __name__ == "__main__":
    main()
