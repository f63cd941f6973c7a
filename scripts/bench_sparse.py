#!/usr/bin/env python3
"""Sparse, hybrid and multivector search: our server (REST) beside Qdrant's own engine in-process
(`qdrant-edge-py`), on the same generated data, in one run. Prints a markdown table (paste into
docs/benchmarks.md) and writes the raw numbers as JSON to target/bench/sparse-N.json.

    .venv/bin/python scripts/bench_sparse.py [--n 100000] [--seed 0] [--storage rocksdb|sqlite]
    .venv/bin/python scripts/bench_sparse.py --n 1000000          # full size (long: see docs)

Data (deterministic for a given --seed, generated in memory; nothing large is written to the repo):
- a SPLADE-like corpus: vocabulary 30,000; term ids drawn from a Zipf-Mandelbrot distribution
  (p(rank r) ~ 1/(r+10)), ranks mapped to ids by a fixed random permutation; ~120 unique non-zeros
  per document (75%..125% of --doc-nnz), positive weights (log-normal times a factor that grows
  with the term's rarity), rounded to 4 decimals; queries drawn the same way with ~30 non-zeros;
- 384-d unit dense vectors (random normal) per document and query, for the hybrid query;
- for the multivector case (--multi-n points): 32 x 128-d unit token vectors per point and their
  normalised mean as a 128-d dense vector; queries are noisy copies of stored points.

Measured:
1. exact top-10 by brute force in numpy (an inverted index of the corpus, float64) = ground truth;
2. qdrant-edge EdgeShard (sparse only, one segment after optimize(), max_search_threads=1): upload
   time, then the queries one after another on this thread: QPS, p50/p99, recall@10;
3. our server (started here on a temp dir and a free port): sparse-only collections with
   `index.on_disk` false and true, uploaded over REST in batches, waited until green and until
   the server's CPU is idle (it flushes and compacts for a few seconds after green); the same
   queries from one client one at a time: QPS, p50/p99 (client side, HTTP included), recall@10;
   RAM per sparse non-zero from the collection info (`result.shards[*].ram_vectors_bytes` +
   `ram_index_bytes`) and the server's RSS (/proc/PID/status) before and after each upload
   (each collection is dropped once measured, so the second one's RSS growth may reuse memory
   the allocator kept from the first);
4. hybrid (sparse prefetch 50 + dense prefetch 50 -> rrf, limit 10) on a collection with both
   vectors, against each prefetch run alone;
5. multivector rerank: prefetch 100 by the dense vector, rerank with max_sim on the 32 x 128-d
   multivector (`hnsw_config.m = 0`: no graph on the multivector): p50/p99, and RAM of the
   multivector rows with `on_disk` false and true (a second collection, same data and queries).
"""

import argparse
import atexit
import concurrent.futures
import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K = 10


# ----------------------------------------------------------------------------------------------
# data


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Csr:
    """Rows of sparse vectors: indices (sorted within a row), values, indptr."""

    def __init__(self, indptr, indices, values):
        self.indptr, self.indices, self.values = indptr, indices, values

    def __len__(self):
        return len(self.indptr) - 1

    def row(self, i):
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.indices[a:b], self.values[a:b]

    @property
    def nnz(self):
        return int(self.indptr[-1])


def zipf_cdf(vocab, a=1.0, shift=10.0):
    p = 1.0 / (np.arange(1, vocab + 1) + shift) ** a
    return np.cumsum(p / p.sum())


def sparse_rows(rng, count, mean_nnz, vocab, cdf, perm, chunk=5000):
    """`count` rows of unique term ids drawn from the Zipf-like `cdf` (ranks -> ids by `perm`),
    75%..125% of `mean_nnz` non-zeros each, positive weights rounded to 4 decimals."""
    lo, hi = max(1, int(mean_nnz * 0.75)), max(1, int(mean_nnz * 1.25))
    targets = rng.integers(lo, hi + 1, size=count)
    all_idx, all_val, counts = [], [], []
    for start in range(0, count, chunk):
        tgt = targets[start:start + chunk]
        rows = len(tgt)
        draws = int(tgt.max() * 1.4) + 8
        while True:
            ranks = np.searchsorted(cdf, rng.random((rows, draws)), side="right").clip(0, vocab - 1)
            # keep the first occurrence of each rank in draw order, then the first `tgt` of those
            order = np.argsort(ranks, axis=1, kind="stable")
            srt = np.take_along_axis(ranks, order, 1)
            dup_sorted = np.zeros_like(srt, dtype=bool)
            dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
            dup = np.empty_like(dup_sorted)
            np.put_along_axis(dup, order, dup_sorted, 1)
            keep = ~dup
            keep &= np.cumsum(keep, axis=1) <= tgt[:, None]
            if (keep.sum(1) >= tgt).all():
                break
            draws *= 2  # a row came out short: redraw the chunk with more draws (deterministic)
        r = ranks[keep]
        row_of = np.repeat(np.arange(rows), tgt)
        ids = perm[r]
        rarity = 0.3 + np.log1p(r) / np.log1p(vocab)  # rarer terms weigh more, as with SPLADE
        vals = rng.lognormal(0.0, 0.5, size=len(r)) * rarity
        vals = np.maximum(np.round(vals, 4), 1e-4)
        o = np.lexsort((ids, row_of))
        all_idx.append(ids[o].astype(np.int64))
        all_val.append(vals[o])
        counts.append(tgt)
    counts = np.concatenate(counts)
    indptr = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Csr(indptr, np.concatenate(all_idx), np.concatenate(all_val))


def unit_rows(rng, shape, decimals=4):
    v = rng.standard_normal(shape, dtype=np.float32)
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    return np.round(v, decimals)


def generate(args):
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(args.vocab)
    cdf = zipf_cdf(args.vocab)
    docs = sparse_rows(rng, args.n, args.doc_nnz, args.vocab, cdf, perm)
    queries = sparse_rows(rng, args.queries, args.query_nnz, args.vocab, cdf, perm)
    dense = unit_rows(rng, (args.n, args.dense_dim))
    dense_q = unit_rows(rng, (args.queries, args.dense_dim))
    return docs, queries, dense, dense_q


def generate_multi(args):
    rng = np.random.default_rng(args.seed + 1)
    m = args.multi_n
    tokens = unit_rows(rng, (m, args.multi_tokens, args.multi_dim), decimals=3)
    pooled = tokens.mean(axis=1)
    pooled = np.round(pooled / np.linalg.norm(pooled, axis=1, keepdims=True), 4)
    src = rng.integers(0, m, size=args.multi_queries)
    q = tokens[src] + 0.5 * rng.standard_normal((args.multi_queries, args.multi_tokens, args.multi_dim),
                                                dtype=np.float32) / np.sqrt(args.multi_dim)
    q = np.round(q / np.linalg.norm(q, axis=-1, keepdims=True), 3)
    qd = q.mean(axis=1)
    qd = np.round(qd / np.linalg.norm(qd, axis=1, keepdims=True), 4)
    return tokens, pooled, q, qd, src


# ----------------------------------------------------------------------------------------------
# ground truth


class Exact:
    """Brute-force sparse dot products (float64) through an inverted index of the corpus."""

    def __init__(self, docs, vocab):
        doc_of = np.repeat(np.arange(len(docs)), np.diff(docs.indptr))
        order = np.argsort(docs.indices, kind="stable")
        self.post_docs = doc_of[order]
        self.post_vals = docs.values[order].astype(np.float64)
        self.ptr = np.zeros(vocab + 1, dtype=np.int64)
        np.cumsum(np.bincount(docs.indices, minlength=vocab), out=self.ptr[1:])
        self.docs = docs
        self.n = len(docs)

    def scores(self, idx, val):
        s = np.zeros(self.n)
        for t, w in zip(idx, val):
            a, b = self.ptr[t], self.ptr[t + 1]
            s[self.post_docs[a:b]] += w * self.post_vals[a:b]  # doc ids are unique within a list
        return s

    def top(self, idx, val, k=K):
        s = self.scores(idx, val)
        top = np.argpartition(-s, k)[:k]
        top = top[np.argsort(-s[top], kind="stable")]
        return top[s[top] > 0], s  # a document sharing no term with the query is not a hit

    def score_of(self, q_idx, q_val, doc):
        d_idx, d_val = self.docs.row(doc)
        common, qi, di = np.intersect1d(q_idx, d_idx, assume_unique=True, return_indices=True)
        return float(np.dot(q_val[qi], d_val[di]))


def ground_truth(exact, queries):
    truth = []
    for i in range(len(queries)):
        top, _ = exact.top(*queries.row(i))
        truth.append(top)
    return truth


def recall(results, truth):
    r = [len(set(map(int, got)) & set(map(int, t))) / len(t) for got, t in zip(results, truth) if len(t)]
    return float(np.mean(r))


def max_score_error(exact, queries, results, scores):
    """Largest relative difference between an engine's score and the exact dot product."""
    worst = 0.0
    for i, (ids, sc) in enumerate(zip(results, scores)):
        q_idx, q_val = queries.row(i)
        for pid, s in zip(ids, sc):
            e = exact.score_of(q_idx, q_val, int(pid))
            worst = max(worst, abs(s - e) / max(abs(e), 1e-9))
    return worst


def lat_stats(lat):
    lat = np.asarray(lat)
    return {"qps": len(lat) / lat.sum(), "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3), "mean_ms": float(lat.mean() * 1e3)}


# ----------------------------------------------------------------------------------------------
# reference engine: qdrant-edge in-process


def run_reference(args, docs, queries, truth, exact, workdir):
    import qdrant_edge as qe
    from importlib.metadata import version

    path = os.path.join(workdir, "edge")
    cfg = qe.EdgeConfig(
        sparse_vectors={"s": qe.EdgeSparseVectorParams()},
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, max_segment_size=1 << 30),
        max_search_threads=1,
        wal_enabled=False,
    )
    shard = qe.EdgeShard.create(path, cfg)
    t0 = time.perf_counter()
    for start in range(0, len(docs), args.batch):
        pts = []
        for i in range(start, min(start + args.batch, len(docs))):
            idx, val = docs.row(i)
            pts.append(qe.Point(i, {"s": qe.SparseVector(idx.tolist(), val.tolist())}))
        shard.update(qe.UpdateOperation.upsert_points(pts))
    t_upload = time.perf_counter() - t0
    shard.optimize()
    shard.flush()
    t_ready = time.perf_counter() - t0
    info = shard.info()
    reqs = [qe.QueryRequest(limit=K, query=qe.Query.Nearest(qe.SparseVector(*map(list, queries.row(i))), using="s"))
            for i in range(len(queries))]
    for r in reqs[:args.warmup]:
        shard.query(r)
    lat, ids, scores = [], [], []
    cpu0 = time.process_time()
    for r in reqs:
        t = time.perf_counter()
        res = shard.query(r)
        lat.append(time.perf_counter() - t)
        ids.append([p.id for p in res])
        scores.append([p.score for p in res])
    cpu_ms = (time.process_time() - cpu0) * 1e3 / len(reqs)
    shard.close()
    out = {"engine": f"qdrant-edge-py {version('qdrant-edge-py')}", "upload_s": t_upload, "ready_s": t_ready,
           "segments": info.segments_count, "points": info.points_count, **lat_stats(lat), "cpu_ms_per_query": cpu_ms,
           "recall_at_10": recall(ids, truth), "max_rel_score_error": max_score_error(exact, queries, ids, scores)}
    shutil.rmtree(path, ignore_errors=True)
    return out, ids


# ----------------------------------------------------------------------------------------------
# our server over REST


class ServerError(RuntimeError):
    pass


class Server:
    def __init__(self, binary, storage, workdir):
        self.dir = workdir
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log_path = os.path.join(workdir, "server.log")
        self.log = open(self.log_path, "wb")
        # cwd = the temp dir, so that the repository's config/config.yaml is not picked up
        self.proc = subprocess.Popen(
            [binary, "--storage", storage, "--storage-path", os.path.join(workdir, "storage"),
             "--snapshots-path", os.path.join(workdir, "snapshots"), "--http-port", str(self.port),
             "--grpc-port", str(free_port()), "--host", "127.0.0.1"],
            cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=httpx.Timeout(600.0, connect=10.0))
        deadline = time.time() + 60
        while True:
            if self.proc.poll() is not None:
                raise ServerError(f"server exited with {self.proc.returncode}; log: {self.tail_log()}")
            try:
                if self.http.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline:
                raise ServerError(f"server not ready after 60 s; log: {self.tail_log()}")
            time.sleep(0.2)

    def tail_log(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def call(self, method, path, body=None, raw=None):
        content = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        r = self.http.request(method, path, content=content,
                              headers={"content-type": "application/json"} if content is not None else None)
        if r.status_code != 200:
            req = (content or b"")[:600].decode(errors="replace")
            raise ServerError(f"{method} {path} -> HTTP {r.status_code}\nrequest (first 600 bytes): {req}\n"
                              f"response: {r.text[:2000]}")
        body = r.json()
        self.last_time = body.get("time")  # seconds the server spent on the request
        return body["result"]

    def stop(self):
        if getattr(self, "stdlib", None) is not None:
            self.stdlib.close()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.http.close()
        self.log.close()

    def upload(self, coll, n, point_json, batch, workers=2):
        """PUT points in batches (`point_json(i)` -> JSON text of point i), `workers` requests in
        flight so that encoding here overlaps the server's work; wait=true on every batch."""

        def send(start):
            body = '{"points":[' + ",".join(point_json(i) for i in range(start, min(start + batch, n))) + "]}"
            self.call("PUT", f"/collections/{coll}/points?wait=true", raw=body.encode())

        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for f in [pool.submit(send, s) for s in range(0, n, batch)]:
                f.result()
        return time.perf_counter() - t

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def wait_idle(self, timeout=120.0, window=1.0, busy=0.05):
        """Wait until the server uses under `busy` of a core over two consecutive `window`s
        (after green it may still flush or compact the storage); returns the seconds waited."""
        t, quiet = time.perf_counter(), 0
        while quiet < 2 and time.perf_counter() - t < timeout:
            c0 = self.cpu_seconds()
            time.sleep(window)
            quiet = quiet + 1 if self.cpu_seconds() - c0 < busy * window else 0
        return time.perf_counter() - t

    def wait_green(self, coll, n, timeout):
        t, greens = time.perf_counter(), 0
        while True:
            info = self.call("GET", f"/collections/{coll}")
            ok = info["status"] == "green" and info.get("points_count") == n
            greens = greens + 1 if ok else 0
            if greens >= 2:  # green twice, a second apart (the optimizer may start after a quiet period)
                green = time.perf_counter() - t
                idle = self.wait_idle()
                return green, self.call("GET", f"/collections/{coll}"), idle
            if info["status"] == "red":
                raise ServerError(f"collection {coll} is red: {json.dumps(info)[:2000]}")
            if time.perf_counter() - t > timeout:
                raise ServerError(f"collection {coll} not green after {timeout} s: {json.dumps(info)[:2000]}")
            time.sleep(1.0)

    def call_stdlib(self, path, raw):
        """POST `raw` over one kept-alive `http.client` connection: about 0.7 ms less client time
        per request than httpx on the 2-core VM, so the timing shows more of the server."""
        import http.client
        for attempt in (0, 1):
            if getattr(self, "stdlib", None) is None:
                self.stdlib = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            try:
                self.stdlib.request("POST", path, body=raw, headers={"content-type": "application/json"})
                r = self.stdlib.getresponse()
                data = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                # The server closes connections left idle (30 s): open a new one once.
                self.stdlib.close()
                self.stdlib = None
                if attempt:
                    raise
        if r.status != 200:
            raise ServerError(f"POST {path} -> HTTP {r.status}: {data[:2000].decode(errors='replace')}")
        body = json.loads(data)
        self.last_time = body.get("time")
        return body["result"]

    def timed_queries(self, coll, bodies, warmup, client="httpx"):
        """One query after another (`client`: "httpx", or "stdlib" for `http.client`)."""
        raw = [json.dumps(b).encode() for b in bodies]
        path = f"/collections/{coll}/points/query"
        send = (lambda r: self.call_stdlib(path, r)) if client == "stdlib" else \
            (lambda r: self.call("POST", path, raw=r))
        for r in raw[:warmup]:
            send(r)
        lat, ids, scores, inside = [], [], [], []
        cpu0 = self.cpu_seconds()
        for r in raw:
            t = time.perf_counter()
            res = send(r)
            lat.append(time.perf_counter() - t)
            inside.append(self.last_time)
            ids.append([p["id"] for p in res["points"]])
            scores.append([p["score"] for p in res["points"]])
        self.last_cpu_ms = (self.cpu_seconds() - cpu0) * 1e3 / len(raw)  # server CPU per request
        self.last_inside = {"server_time_p50_ms": float(np.percentile(inside, 50) * 1e3),
                            "server_time_p99_ms": float(np.percentile(inside, 99) * 1e3)}
        return lat, ids, scores


def sparse_json(idx, val):
    return '{"indices":' + json.dumps(idx.tolist()) + ',"values":' + json.dumps(val.tolist()) + "}"


def shard_ram(info):
    v = sum(s.get("ram_vectors_bytes", 0) for s in info.get("shards", []))
    i = sum(s.get("ram_index_bytes", 0) for s in info.get("shards", []))
    return v, i


def run_server_sparse(srv, args, docs, queries, truth, exact, on_disk):
    coll = "sparse_disk" if on_disk else "sparse_ram"
    rss0 = srv.rss()
    srv.call("PUT", f"/collections/{coll}", {"sparse_vectors": {"s": {"index": {"on_disk": on_disk}}}})
    up = srv.upload(coll, len(docs), lambda i: f'{{"id":{i},"vector":{{"s":{sparse_json(*docs.row(i))}}}}}', args.batch)
    green, info, settle = srv.wait_green(coll, len(docs), args.green_timeout)
    rss1 = srv.rss()
    vec, idx = shard_ram(info)
    bodies = [{"query": {"indices": q[0].tolist(), "values": q[1].tolist()}, "using": "s", "limit": K}
              for q in map(queries.row, range(len(queries)))]
    lat, ids, scores = srv.timed_queries(coll, bodies, args.warmup)
    cpu_ms = srv.last_cpu_ms
    inside = srv.last_inside
    nnz = docs.nnz
    floor = None
    if not on_disk:
        # the same requests against an empty collection: HTTP + JSON + dispatch, no search work
        srv.call("PUT", "/collections/empty", {"sparse_vectors": {"s": {}}})
        floor = lat_stats(srv.timed_queries("empty", bodies, args.warmup)[0])
        srv.call("DELETE", "/collections/empty")
    srv.call("DELETE", f"/collections/{coll}")  # keeps the full-size run within the machine's RAM
    time.sleep(1.0)
    rss2 = srv.rss()
    return {"collection": coll, "on_disk": on_disk, "empty_collection": floor, "rss_after_drop": rss2,
            "upload_s": up, "green_after_upload_s": green, "idle_wait_s": settle, "segments": info.get("segments_count"),
            **lat_stats(lat), **inside, "cpu_ms_per_query": cpu_ms, "recall_at_10": recall(ids, truth),
            "max_rel_score_error": max_score_error(exact, queries, ids, scores),
            "ram_vectors_bytes": vec, "ram_index_bytes": idx, "ram_bytes_per_nnz": (vec + idx) / nnz,
            "rss_before": rss0, "rss_after": rss1, "rss_delta_per_nnz": (rss1 - rss0) / nnz}, ids


def run_server_hybrid(srv, args, docs, queries, dense, dense_q):
    coll = "hybrid"
    srv.call("PUT", f"/collections/{coll}", {"vectors": {"d": {"size": args.dense_dim, "distance": "Cosine"}},
                                             "sparse_vectors": {"s": {}}})

    def point(i):
        return (f'{{"id":{i},"vector":{{"d":{json.dumps(dense[i].tolist())},'
                f'"s":{sparse_json(*docs.row(i))}}}}}')

    up = srv.upload(coll, len(docs), point, max(100, args.batch // 2))
    green, info, settle = srv.wait_green(coll, len(docs), args.green_timeout)
    nq = min(args.hybrid_queries, len(queries))
    sp = [{"query": {"indices": queries.row(i)[0].tolist(), "values": queries.row(i)[1].tolist()}, "using": "s",
           "limit": args.prefetch} for i in range(nq)]
    dn = [{"query": dense_q[i].tolist(), "using": "d", "limit": args.prefetch} for i in range(nq)]
    hy = [{"prefetch": [sp[i], dn[i]], "query": {"fusion": "rrf"}, "limit": K} for i in range(nq)]
    out = {"collection": coll, "upload_s": up, "green_after_upload_s": green, "idle_wait_s": settle, "segments": info.get("segments_count"),
           "queries": nq}
    # interleave the three passes twice (s, d, h, s, d, h) and keep each kind's faster round, so
    # that a burst of background load does not land on one kind only
    best = {}
    for _ in range(2):
        for name, bodies in (("sparse_prefetch", sp), ("dense_prefetch", dn), ("hybrid_rrf", hy)):
            lat, ids, _ = srv.timed_queries(coll, bodies, args.warmup)
            st = lat_stats(lat)
            if name not in best or st["mean_ms"] < best[name]["mean_ms"]:
                best[name] = st
            if name == "hybrid_rrf" and any(len(r) != K for r in ids):
                raise ServerError(f"hybrid query returned {min(map(len, ids))} points, expected {K}")
    out.update(best)
    srv.call("DELETE", f"/collections/{coll}")
    out["hybrid_over_sum"] = best["hybrid_rrf"]["mean_ms"] / (best["sparse_prefetch"]["mean_ms"] +
                                                              best["dense_prefetch"]["mean_ms"])
    return out


def run_server_multi(srv, args, on_disk=False, data=None):
    tokens, pooled, q, qd, src = data or generate_multi(args)
    coll = "multi_disk" if on_disk else "multi"
    srv.call("PUT", f"/collections/{coll}", {"vectors": {
        "d": {"size": args.multi_dim, "distance": "Cosine"},
        "m": {"size": args.multi_dim, "distance": "Cosine", "multivector_config": {"comparator": "max_sim"},
              "hnsw_config": {"m": 0}, "on_disk": on_disk}}})

    def point(i):
        return f'{{"id":{i},"vector":{{"d":{json.dumps(pooled[i].tolist())},"m":{json.dumps(tokens[i].tolist())}}}}}'

    up = srv.upload(coll, args.multi_n, point, 100)
    green, info, settle = srv.wait_green(coll, args.multi_n, args.green_timeout)
    pre = [{"query": qd[i].tolist(), "using": "d", "limit": args.multi_prefetch} for i in range(len(q))]
    rer = [{"prefetch": [pre[i]], "query": q[i].tolist(), "using": "m", "limit": K} for i in range(len(q))]
    lat_p, _, _ = srv.timed_queries(coll, pre, args.warmup)
    lat_r, ids, _ = srv.timed_queries(coll, rer, args.warmup)
    out = {"collection": coll, "on_disk": on_disk, "points": args.multi_n, "tokens": args.multi_tokens,
           "dim": args.multi_dim,
           "upload_s": up, "green_after_upload_s": green, "idle_wait_s": settle, "prefetch_only": lat_stats(lat_p),
           "prefetch_rerank": lat_stats(lat_r), "queries": len(q), "segments": info.get("segments_count"),
           "ram_vectors_bytes": shard_ram(info)[0], "ram_index_bytes": shard_ram(info)[1]}
    # sanity: each query is a noisy copy of one stored point, which the rerank should put first;
    # and the returned order should be the exact max_sim order of the returned points
    out["rerank_top1_is_source"] = float(np.mean([bool(r) and r[0] == int(s) for r, s in zip(ids, src)]))
    ordered = 0
    unit = lambda a: a.astype(np.float64) / np.linalg.norm(a.astype(np.float64), axis=-1, keepdims=True)
    for i, r in enumerate(ids):  # Cosine: the server normalises what it stores, so compare normalised
        sims = np.array([float((unit(q[i]) @ unit(tokens[p]).T).max(axis=1).sum()) for p in r])
        ordered += int(len(sims) == K and bool(np.all(np.diff(sims) <= 1e-3)))
    out["rerank_order_matches_exact_max_sim"] = ordered / len(ids)
    srv.call("DELETE", f"/collections/{coll}")
    return out


# ----------------------------------------------------------------------------------------------


def fmt(x, d=0):
    return f"{x:,.{d}f}"


def table(res):
    ref, ram, disk, hy, mu = (res.get(k) for k in ("reference", "server_ram", "server_disk", "hybrid", "multi"))
    rows = [("Sparse top-10, one client", "ours", "qdrant-edge", "ours / reference")]
    if ram:
        def cmp(key, d, better_high):
            o = ram[key]
            r = ref[key] if ref else None
            ratio = "" if r is None else (f"{o / r:.2f}x" if better_high else f"{o / r:.2f}x the time")
            return fmt(o, d), ("" if r is None else fmt(r, d)), ratio

        rows.append(("recall@10 (exact = 1.0)", f"{ram['recall_at_10']:.4f}",
                     f"{ref['recall_at_10']:.4f}" if ref else "", ""))
        rows.append(("QPS", *cmp("qps", 0, True)))
        rows.append(("p50 latency, ms", *cmp("p50_ms", 2, False)))
        rows.append(("p99 latency, ms", *cmp("p99_ms", 2, False)))
        rows.append(("CPU per query, ms (server process / edge in this process)", *cmp("cpu_ms_per_query", 2, False)))
        if "server_time_p50_ms" in ram:
            r = ref["p50_ms"] if ref else None
            rows.append(("p50 inside the server (response `time`) / edge's p50, ms",
                         fmt(ram["server_time_p50_ms"], 2), "" if r is None else fmt(r, 2),
                         "" if r is None else f"{ram['server_time_p50_ms'] / r:.2f}x the time"))
        rows.append(("upload + ready, s", fmt(ram["upload_s"] + ram["green_after_upload_s"], 1),
                     fmt(ref["ready_s"], 1) if ref else "", "REST+JSON vs in-process"))
        if ram.get("empty_collection"):
            rows.append(("same requests on an empty collection (REST floor): p50 ms",
                         f"{ram['empty_collection']['p50_ms']:.2f}", "", ""))
        if "overlap_with_reference" in ram:
            rows.append(("top-10 overlap ours vs reference", f"{ram['overlap_with_reference']:.4f}", "", ""))
        rows.append(("segments searched", str(ram["segments"]), str(ref["segments"]) if ref else "", ""))
    if disk:
        rows.append(("`index.on_disk: true`: QPS / p50 ms / recall@10",
                     f"{fmt(disk['qps'])} / {disk['p50_ms']:.2f} / {disk['recall_at_10']:.4f}", "", ""))
    for r in (ram, disk):
        if r:
            rows.append((f"RAM per sparse non-zero, `on_disk: {str(r['on_disk']).lower()}` "
                         f"(vectors + index from collection info)",
                         f"{r['ram_bytes_per_nnz']:.1f} B ({r['ram_vectors_bytes'] / 2**20:.0f} + "
                         f"{r['ram_index_bytes'] / 2**20:.0f} MiB)", "", ""))
            rows.append((f"server RSS growth per non-zero, `on_disk: {str(r['on_disk']).lower()}`",
                         f"{r['rss_delta_per_nnz']:.1f} B ({(r['rss_after'] - r['rss_before']) / 2**20:.0f} MiB)",
                         "", ""))
    if hy:
        rows.append(("Hybrid (server only)", "QPS", "p50 / p99 ms", ""))
        for k, label in (("sparse_prefetch", f"sparse alone, limit {res['args']['prefetch']}"),
                         ("dense_prefetch", f"dense alone, limit {res['args']['prefetch']}"),
                         ("hybrid_rrf", "sparse 50 + dense 50 -> rrf, limit 10")):
            rows.append((label, fmt(hy[k]["qps"]), f"{hy[k]['p50_ms']:.2f} / {hy[k]['p99_ms']:.2f}", ""))
        rows.append(("hybrid time / (sparse + dense time)", f"{hy['hybrid_over_sum']:.2f}", "target <= 1.3", ""))
    if mu:
        rows.append((f"Multivector rerank ({mu['points']:,} points, {mu['tokens']} x {mu['dim']}-d)",
                     "p50 ms", "p99 ms", "QPS"))
        for k, label in (("prefetch_only", f"dense prefetch {res['args']['multi_prefetch']} alone"),
                         ("prefetch_rerank", f"prefetch {res['args']['multi_prefetch']} + max_sim rerank")):
            rows.append((label, f"{mu[k]['p50_ms']:.2f}", f"{mu[k]['p99_ms']:.2f}", fmt(mu[k]["qps"])))
        rows.append(("rerank puts the query's source point first / order = exact max_sim",
                     f"{mu['rerank_top1_is_source']:.3f}", f"{mu['rerank_order_matches_exact_max_sim']:.3f}", ""))
        md = res.get("multi_disk")
        if md:
            k = "prefetch_rerank"
            rows.append(("same, multivector `on_disk: true`: prefetch + rerank", f"{md[k]['p50_ms']:.2f}",
                         f"{md[k]['p99_ms']:.2f}", fmt(md[k]["qps"])))
            for r in (mu, md):
                rows.append((f"RAM of vectors (collection info), `on_disk: {str(r['on_disk']).lower()}`",
                             f"{r['ram_vectors_bytes'] / 2**20:.1f} MiB", "", ""))
    out = [f"| {' | '.join(rows[0])} |", "|---|---|---|---|"]
    for r in rows[1:]:
        if r[0] in ("Hybrid (server only)",) or r[0].startswith("Multivector rerank"):
            out.append(f"| **{r[0]}** | **{r[1]}** | **{r[2]}** | **{r[3]}** |" if r[3] else
                       f"| **{r[0]}** | **{r[1]}** | **{r[2]}** | |")
        else:
            out.append(f"| {' | '.join(r)} |")
    return "\n".join(out)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="documents (sparse + 384-d dense)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--hybrid-queries", type=int, default=500)
    ap.add_argument("--vocab", type=int, default=30_000)
    ap.add_argument("--doc-nnz", type=int, default=120)
    ap.add_argument("--query-nnz", type=int, default=30)
    ap.add_argument("--dense-dim", type=int, default=384)
    ap.add_argument("--prefetch", type=int, default=50)
    ap.add_argument("--multi-n", type=int, default=10_000)
    ap.add_argument("--multi-tokens", type=int, default=32)
    ap.add_argument("--multi-dim", type=int, default=128)
    ap.add_argument("--multi-queries", type=int, default=200)
    ap.add_argument("--multi-prefetch", type=int, default=100)
    ap.add_argument("--storage", default="rocksdb", choices=["rocksdb", "sqlite"])
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/qdrant"))
    ap.add_argument("--batch", type=int, default=1000, help="points per upload request (sparse only)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--green-timeout", type=int, default=1800)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: reference,disk,hybrid,multi")
    ap.add_argument("--out", default=None, help="raw JSON (default target/bench/sparse-N.json)")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"{args.binary} not found: build it with `cargo build --release -p qdrant-server` first")

    workdir = tempfile.mkdtemp(prefix="qd-bench-sparse-")
    srv = None

    def cleanup():
        if srv is not None:
            srv.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    res = {"args": vars(args), "date": datetime.date.today().isoformat(), "nproc": os.cpu_count(),
           "cpu": cpu_model(), "load_at_start": os.getloadavg()}
    t_all = time.perf_counter()
    log(f"generating n={args.n} (seed {args.seed}), load average {os.getloadavg()[0]:.2f}")
    docs, queries, dense, dense_q = generate(args)
    res["corpus"] = {"nnz": docs.nnz, "nnz_per_doc": docs.nnz / len(docs), "query_nnz": queries.nnz / len(queries),
                     "distinct_terms": int(len(np.unique(docs.indices)))}
    log(f"corpus: {docs.nnz:,} non-zeros ({docs.nnz / len(docs):.1f}/doc), queries {queries.nnz / len(queries):.1f}")
    exact = Exact(docs, args.vocab)
    t = time.perf_counter()
    truth = ground_truth(exact, queries)
    res["ground_truth_s"] = time.perf_counter() - t
    log(f"ground truth in {res['ground_truth_s']:.1f} s")

    ref_ids = None
    if "reference" not in skip:
        log("reference engine (qdrant-edge)")
        res["reference"], ref_ids = run_reference(args, docs, queries, truth, exact, workdir)
        log(json.dumps(res["reference"]))

    srv = Server(args.binary, args.storage, workdir)
    res["server"] = {"binary": args.binary, "storage": args.storage, "rss_start": srv.rss()}
    log(f"server on port {srv.port} ({args.storage})")
    res["server_ram"], our_ids = run_server_sparse(srv, args, docs, queries, truth, exact, on_disk=False)
    log(json.dumps(res["server_ram"]))
    if ref_ids is not None:
        res["server_ram"]["overlap_with_reference"] = recall(our_ids, ref_ids)
    if "disk" not in skip:
        res["server_disk"], _ = run_server_sparse(srv, args, docs, queries, truth, exact, on_disk=True)
        log(json.dumps(res["server_disk"]))
    if "hybrid" not in skip:
        log("hybrid collection")
        res["hybrid"] = run_server_hybrid(srv, args, docs, queries, dense, dense_q)
        log(json.dumps(res["hybrid"]))
    del dense
    if "multi" not in skip:
        log("multivector collection")
        data = generate_multi(args)
        res["multi"] = run_server_multi(srv, args, False, data)
        log(json.dumps(res["multi"]))
        res["multi_disk"] = run_server_multi(srv, args, True, data)
        log(json.dumps(res["multi_disk"]))
    res["server"]["rss_end"] = srv.rss()
    res["load_at_end"] = os.getloadavg()
    res["total_s"] = time.perf_counter() - t_all

    out = args.out or os.path.join(ROOT, "target", "bench", f"sparse-{args.n}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=2)
    c = res["corpus"]
    print(f"n={args.n:,} docs, {c['nnz']:,} non-zeros ({c['nnz_per_doc']:.1f}/doc, {c['distinct_terms']:,} distinct "
          f"terms of {args.vocab:,}), {args.queries} queries of {c['query_nnz']:.1f} non-zeros; "
          f"storage {args.storage}; {res['nproc']} cores ({res['cpu']}); load average at start "
          f"{res['load_at_start'][0]:.2f}, at end {res['load_at_end'][0]:.2f}; total {res['total_s']:.0f} s; raw: {out}")
    print()
    print(table(res))


if __name__ == "__main__":
    try:
        main()
    except ServerError as e:
        print(f"SERVER ERROR: {e}", file=sys.stderr)
        sys.exit(2)
