#!/usr/bin/env python3
"""hnswlib on exactly the dataset `qd-bench hnsw --out DIR` wrote: same vectors (already
normalised, so inner product = cosine), same queries, same ground truth, same M/ef_construct.
Prints one JSON document shaped like qd-bench's."""

import json
import os
import resource
import sys
import time

import hnswlib
import numpy as np


def main(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    n, dim, nq, k = meta["n"], meta["dim"], meta["queries"], meta["k"]
    base = np.fromfile(os.path.join(d, "base.f32"), dtype="<f4").reshape(n, dim)
    queries = np.fromfile(os.path.join(d, "queries.f32"), dtype="<f4").reshape(nq, dim)
    truth = np.fromfile(os.path.join(d, "truth.u32"), dtype="<u4").reshape(nq, k)
    threads = int(os.environ.get("BENCH_THREADS", os.cpu_count() or 1))
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    index = hnswlib.Index(space="ip", dim=dim)
    index.init_index(max_elements=n, M=meta["m"], ef_construction=meta["ef_construct"], random_seed=42)
    index.set_num_threads(threads)
    t = time.perf_counter()
    index.add_items(base, np.arange(n))
    build = time.perf_counter() - t
    rows = []
    for ef in meta["efs"]:
        index.set_ef(ef)
        index.set_num_threads(1)
        t = time.perf_counter()
        labels = np.vstack([index.knn_query(q, k=k)[0] for q in queries])
        qps1 = nq / (time.perf_counter() - t)
        # all threads: one batched call, hnswlib spreads the queries over its threads
        index.set_num_threads(threads)
        t = time.perf_counter()
        index.knn_query(queries, k=k)
        qps_all = nq / (time.perf_counter() - t)
        recall = float(np.mean([len(set(labels[i]) & set(truth[i])) / k for i in range(nq)]))
        rows.append({"ef": ef, "recall_at_10": recall, "qps_1_thread": qps1, "qps_all_threads": qps_all})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"engine": f"hnswlib {getattr(hnswlib, '__version__', '')}".strip(), "n": n, "dim": dim,
                      "threads": threads, "build_secs": build, "peak_rss_bytes": peak,
                      "rss_start_bytes": rss_start, "search": rows}, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
