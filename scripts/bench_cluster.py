#!/usr/bin/env python3
"""Cluster benchmark on one machine (stdlib only, so it runs wherever the binary does):

  1. ingest points/s: one node (cluster mode off) vs three peers with replication_factor 1 and 2,
     writes spread over the peers;
  2. search QPS with concurrent clients: one node vs three peers (replication_factor 2);
  3. time for a killed peer to recover (its replicas Dead after writes went on without it);
  4. shard transfer throughput (move_shard, by stream_records and back by snapshot) in MB/s of
     vectors, beside copying the shard's files.

Usage: QDRANT_BIN=target/release/qdrant scripts/bench_cluster.py [--points 100000] [--dim 128]
       [--clients 4] [--backend rocksdb] [--queries 2000]
Prints a JSON summary last (the figures docs/benchmarks.md quotes).
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

BIN = os.environ.get("QDRANT_BIN", "target/release/qdrant")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, timeout=300):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())["result"]


class Node:
    def __init__(self, root, name, backend, p2p=None, bootstrap=None):
        self.dir = os.path.join(root, name)
        self.backend, self.p2p, self.bootstrap = backend, p2p, bootstrap
        self.port, self.grpc = free_port(), free_port()
        self.start()

    def start(self):
        args = [BIN, "--storage", self.backend, "--storage-path", os.path.join(self.dir, "data"),
                "--http-port", str(self.port), "--grpc-port", str(self.grpc), "--host", "127.0.0.1"]
        env = dict(os.environ, QDRANT__LOG_LEVEL="warn")
        if self.p2p:
            args += ["--uri", f"http://127.0.0.1:{self.p2p}"]
            env.update(QDRANT__CLUSTER__ENABLED="true", QDRANT__CLUSTER__P2P__PORT=str(self.p2p))
        if self.bootstrap:
            args += ["--bootstrap", f"http://127.0.0.1:{self.bootstrap}"]
        os.makedirs(self.dir, exist_ok=True)
        self.log = open(os.path.join(self.dir, "log.txt"), "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1)
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"{self.dir} did not start")

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)


def cluster(root, backend):
    ports = [free_port() for _ in range(3)]
    nodes = [Node(root, "p0", backend, ports[0])]
    nodes += [Node(root, f"p{i}", backend, ports[i], ports[0]) for i in (1, 2)]
    deadline = time.time() + 30
    while len(call(nodes[2].port, "GET", "/cluster")["peers"]) < 3:
        assert time.time() < deadline
        time.sleep(0.1)
    return nodes


def vector_pool(n, dim, seed):
    """`n` random vectors, each already JSON-encoded (points reuse them cyclically)."""
    rnd = random.Random(seed)
    return [json.dumps([round(rnd.uniform(-1, 1), 4) for _ in range(dim)]) for _ in range(n)]


def batch_bodies(first, n, pool, batch):
    """Request bodies of `n` points from id `first`, encoded before any clock starts, so the
    client measures the server rather than Python's JSON encoder."""
    out = []
    for start in range(first, first + n, batch):
        end = min(start + batch, first + n)
        pts = ",".join(f'{{"id":{i},"vector":{pool[i % len(pool)]},"payload":{{"g":{i % 10}}}}}' for i in range(start, end))
        out.append(f'{{"points":[{pts}]}}'.encode())
    return out


def run_clients(ports, method, path, bodies, clients):
    """Send every body from `clients` threads, each over a kept-alive connection to a peer
    chosen in turn; returns the seconds taken."""
    todo = list(bodies)
    lock = threading.Lock()
    errors = []

    def work(k):
        conn = http.client.HTTPConnection("127.0.0.1", ports[k % len(ports)], timeout=300)
        while True:
            with lock:
                if not todo:
                    return
                body = todo.pop()
            conn.request(method, path, body=body, headers={"content-type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200:
                errors.append(data[:300])
                return

    t = time.time()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise RuntimeError(errors[0])
    return time.time() - t


def ingest(ports, name, bodies, n, clients):
    return n / run_clients(ports, "PUT", f"/collections/{name}/points?wait=true", bodies, clients)


def search_qps(ports, name, queries, clients):
    bodies = [f'{{"query":{q},"limit":10}}'.encode() for q in queries]
    return len(bodies) / run_clients(ports, "POST", f"/collections/{name}/points/query", bodies, clients)


def wait_indexed(port, name, n, timeout=1800):
    """Until the collection is green with every vector indexed: searches then measure graphs,
    not the exact scan of segments still being indexed."""
    t = time.time()
    while time.time() - t < timeout:
        info = call(port, "GET", f"/collections/{name}")
        if info["status"] == "green" and info.get("indexed_vectors_count", 0) >= n * 0.99:
            return time.time() - t
        time.sleep(0.5)
    raise RuntimeError("collection never became green")


def wait_active(port, name, timeout=1800):
    t = time.time()
    while time.time() - t < timeout:
        info = call(port, "GET", f"/collections/{name}/cluster")
        shards = info["local_shards"] + info["remote_shards"]
        if not info["shard_transfers"] and all(s["state"] == "Active" for s in shards):
            return time.time() - t
        time.sleep(0.1)
    raise RuntimeError("replicas never became Active")


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    return total


class Figures(dict):
    """The summary; each figure is also printed as it is measured (long runs show progress)."""

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        print(f"  {key}: {round(value, 2) if isinstance(value, float) else value}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--backend", default="rocksdb")
    a = ap.parse_args()
    pool = vector_pool(10_000, a.dim, 1)
    bodies = batch_bodies(0, a.points, pool, 256)
    rewrite = batch_bodies(0, a.points // 10, pool[::-1], 256)
    queries = vector_pool(a.queries, a.dim, 2)
    body = {"vectors": {"size": a.dim, "distance": "Cosine"}, "shard_number": 6}
    out = Figures(points=a.points, dim=a.dim, clients=a.clients, backend=a.backend, cpus=os.cpu_count())
    root = tempfile.mkdtemp(prefix="bench-cluster-")
    try:
        single = Node(root, "single", a.backend)
        call(single.port, "PUT", "/collections/b", body)
        out["ingest_single_pts_s"] = ingest([single.port], "b", bodies, a.points, a.clients)
        wait_indexed(single.port, "b", a.points)
        out["search_single_qps"] = search_qps([single.port], "b", queries, a.clients)
        single.stop()

        nodes = cluster(root, a.backend)
        ports = [n.port for n in nodes]
        call(ports[0], "PUT", "/collections/r1", {**body, "replication_factor": 1})
        out["ingest_3peers_rf1_pts_s"] = ingest(ports, "r1", bodies, a.points, a.clients)
        call(ports[0], "DELETE", "/collections/r1")
        call(ports[0], "PUT", "/collections/r2", {**body, "replication_factor": 2})
        out["ingest_3peers_rf2_pts_s"] = ingest(ports, "r2", bodies, a.points, a.clients)
        wait_indexed(ports[0], "r2", a.points)
        out["search_3peers_rf2_qps"] = search_qps(ports, "r2", queries, a.clients)

        # A peer killed while a tenth of the points are rewritten through the others.
        nodes[2].kill()
        ingest(ports[:2], "r2", rewrite, a.points // 10, a.clients)
        t = time.time()
        nodes[2].start()
        wait_active(ports[0], "r2")
        out["recover_killed_peer_s"] = time.time() - t

        # Move one shard and compare with copying its files.
        info = call(ports[0], "GET", "/collections/r2/cluster")
        me = info["peer_id"]
        shard = info["local_shards"][0]["shard_id"]
        holders = {me} | {s["peer_id"] for s in info["remote_shards"] if s["shard_id"] == shard}
        peers = [int(p) for p in call(ports[0], "GET", "/cluster")["peers"]]
        target = next(p for p in peers if p not in holders)
        n_points = info["local_shards"][0]["points_count"]
        vector_mb = n_points * a.dim * 4 / 1e6
        # The baseline: copying that shard's files (database + vector files) on the same disk.
        for d, _, _ in os.walk(os.path.join(nodes[0].dir, "data", "collections")):
            if d.endswith(os.path.join("shards", str(shard))):
                t = time.time()
                shutil.copytree(d, os.path.join(root, "copy"))
                out["file_copy_mb_s"] = du(os.path.join(root, "copy")) / 1e6 / (time.time() - t)
                out["shard_files_mb"] = du(d) / 1e6
                break
        t = time.time()
        call(ports[0], "POST", "/collections/r2/cluster",
             {"move_shard": {"shard_id": shard, "from_peer_id": me, "to_peer_id": target}})
        wait_active(ports[0], "r2")
        took = time.time() - t
        out["transfer_points"] = n_points
        out["transfer_s"] = took
        out["transfer_vector_mb_s"] = vector_mb / took
        out["transfer_files_mb_s"] = out.get("shard_files_mb", 0) / took
        # The same shard moved back by the snapshot method.
        t = time.time()
        call(ports[0], "POST", "/collections/r2/cluster",
             {"move_shard": {"shard_id": shard, "from_peer_id": target, "to_peer_id": me, "method": "snapshot"}})
        wait_active(ports[0], "r2")
        took = time.time() - t
        out["transfer_snapshot_s"] = took
        out["transfer_snapshot_vector_mb_s"] = vector_mb / took
        out["transfer_snapshot_files_mb_s"] = out.get("shard_files_mb", 0) / took
        for n in nodes:
            n.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
