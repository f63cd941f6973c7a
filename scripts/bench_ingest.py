#!/usr/bin/env python3
"""Ingest throughput of `wait=false` and `wait=true` writes, for this build beside another build
(e.g. the one before a durability change), on the same data, in one run. Prints a markdown table.

    .venv/bin/python scripts/bench_ingest.py --binary target/release/qdrant \
        [--baseline /path/to/other/qdrant] [--writers 4] [--batches 200] [--batch 100] [--dim 128]

Each of --writers threads upserts --batches batches of --batch points (--dim-d random vectors, a
small payload) over REST with one `httpx` client per thread, into a fresh collection of a server
started here (RocksDB, temp dir). Measured: points/s over the whole run (from the first request to
the last answer, then until the server reports every point counted), the server's peak RSS
during the run (VmHWM), and for `wait=false` the time until every acknowledged point is readable.
"""

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import httpx
import numpy as np


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, work):
    port = free_port()
    proc = subprocess.Popen([binary, "--storage", "rocksdb", "--storage-path", os.path.join(work, "storage"),
                             "--snapshots-path", os.path.join(work, "snap"), "--http-port", str(port),
                             "--grpc-port", str(free_port()), "--host", "127.0.0.1"],
                            cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not start")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run(binary, wait, args, vectors):
    work = tempfile.mkdtemp(prefix="bench-ingest-")
    proc, url = start(binary, work)
    try:
        httpx.put(f"{url}/collections/c", json={"vectors": {"size": args.dim, "distance": "Cosine"}},
                  timeout=60).raise_for_status()

        def writer(w):
            with httpx.Client(base_url=url, timeout=600) as c:
                for b in range(args.batches):
                    start_id = (w * args.batches + b) * args.batch
                    pts = [{"id": start_id + i, "vector": vectors[(start_id + i) % len(vectors)],
                            "payload": {"w": w, "b": b}} for i in range(args.batch)]
                    c.put(f"/collections/c/points?wait={wait}", json={"points": pts}).raise_for_status()

        t = time.perf_counter()
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(args.writers)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        answered = time.perf_counter() - t
        total = args.writers * args.batches * args.batch
        while httpx.post(f"{url}/collections/c/points/count", json={"exact": True},
                         timeout=60).json()["result"]["count"] < total:
            time.sleep(0.01)
        visible = time.perf_counter() - t
        return {"answered_s": answered, "visible_s": visible, "points_per_s": total / visible,
                "peak_rss_mb": peak_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--baseline")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--dim", type=int, default=128)
    args = ap.parse_args()
    vectors = np.random.default_rng(0).standard_normal((10_000, args.dim), dtype=np.float32).tolist()
    builds = [("this build", args.binary)] + ([("baseline", args.baseline)] if args.baseline else [])
    print("| build | wait | answered (s) | all visible (s) | points/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for label, binary in builds:
        for wait in ("false", "true"):
            r = run(binary, wait, args, vectors)
            print(f"| {label} | {wait} | {r['answered_s']:.2f} | {r['visible_s']:.2f} | {r['points_per_s']:,.0f} | "
                  f"{r['peak_rss_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
