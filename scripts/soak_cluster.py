#!/usr/bin/env python3
"""Cluster soak: three peers, a writer that records every acknowledged point, and for
`--minutes` a loop of faults and operations: SIGKILL of a random peer (restarted a few seconds
later), SIGSTOP/SIGCONT of one, shard moves and replications (streamed or by snapshot) with drops. At the end every
replica must be Active again and every peer must answer every acknowledged point with the
payload of its last acknowledged write.

Usage: QDRANT_BIN=target/release/qdrant scripts/soak_cluster.py [--minutes 10] [--backend rocksdb]
CI runs the small version (`--minutes 1`); exits non-zero on any lost or wrong point.
"""

import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cluster import call, cluster, wait_active  # noqa: E402


def alive(nodes):
    return [n for n in nodes if n.proc.poll() is None and not getattr(n, "frozen", False)]


GROUPS = 10


def writer(nodes, acked, uncertain, stop, errors):
    """Write through a live peer in turn, remembering what each acknowledged write left
    (`acked`: id -> (v, grp, f)). Most writes upsert 20 points (ids reused, so later writes
    overwrite earlier ones) with a payload {"v", "grp"}; every tenth sets {"f": version} on one
    group by filter, which must reach replicas being copied to as well. A write that failed may
    or may not have been applied: the points it could touch are uncertain until their next
    acknowledged upsert."""
    version = 0
    while not stop.is_set():
        live = alive(nodes)
        if not live:
            time.sleep(0.1)
            continue
        node = random.choice(live)
        version += 1
        if version % 10 == 0:
            grp = random.randrange(GROUPS)
            body = {"payload": {"f": version}, "filter": {"must": [{"key": "grp", "match": {"value": grp}}]}}
            touched = [i for i, (_, g, _) in acked.items() if g == grp]
            try:
                call(node.port, "POST", "/collections/soak/points/payload?wait=true", body, timeout=60)
            except Exception as e:
                errors.append(str(e))
                uncertain.update(touched)
                continue
            for i in touched:
                v, g, _ = acked[i]
                acked[i] = (v, g, version)
            continue
        ids = random.sample(range(5000), 20)
        groups = {i: random.randrange(GROUPS) for i in ids}
        pts = [{"id": i, "vector": [random.uniform(-1, 1) for _ in range(8)],
                "payload": {"v": version, "grp": groups[i]}} for i in ids]
        try:
            call(node.port, "PUT", "/collections/soak/points?wait=true", {"points": pts}, timeout=60)
        except Exception as e:  # a peer going down mid-request: the write is not acknowledged
            errors.append(str(e))
            uncertain.update(ids)
            continue
        for i in ids:
            acked[i] = (version, groups[i], None)
            uncertain.discard(i)


def placement(port):
    info = call(port, "GET", "/collections/soak/cluster")
    out = {}
    for s in info["local_shards"]:
        out.setdefault(s["shard_id"], []).append(info["peer_id"])
    for s in info["remote_shards"]:
        out.setdefault(s["shard_id"], []).append(s["peer_id"])
    return out


def fault(nodes, ids, log):
    live = alive(nodes)
    kind = random.choice(["kill", "freeze", "move", "replicate"])
    if kind == "kill" and len(live) == 3:
        n = random.choice(nodes)
        log(f"kill -9 {n.dir}")
        n.kill()
        time.sleep(random.uniform(1, 4))
        n.start()
    elif kind == "freeze" and len(live) == 3:
        n = random.choice(nodes)
        log(f"SIGSTOP {n.dir}")
        n.frozen = True
        n.proc.send_signal(signal.SIGSTOP)
        time.sleep(random.uniform(1, 4))
        n.proc.send_signal(signal.SIGCONT)
        n.frozen = False
    elif kind in ("move", "replicate"):
        port = live[0].port
        try:
            wait_active(port, "soak", timeout=120)
            shards = placement(port)
            shard = random.choice(sorted(shards))
            holders = shards[shard]
            free = [p for p in ids if p not in holders]
            if not free:
                victim = random.choice(holders)
                log(f"drop replica of shard {shard} on {victim}")
                call(port, "POST", "/collections/soak/cluster", {"drop_replica": {"shard_id": shard, "peer_id": victim}})
                return
            op = "move_shard" if kind == "move" else "replicate_shard"
            method = random.choice(["stream_records", "snapshot"])
            log(f"{op} {shard} by {method}: {holders[0]} -> {free[0]}")
            call(port, "POST", "/collections/soak/cluster",
                 {op: {"shard_id": shard, "from_peer_id": holders[0], "to_peer_id": free[0], "method": method}})
        except Exception as e:
            log(f"  refused/failed: {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--backend", default="rocksdb")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="soak-cluster-")
    started = time.time()

    def log(msg):
        print(f"[{time.time() - started:7.1f}s] {msg}", flush=True)

    nodes = cluster(root, a.backend)
    try:
        call(nodes[0].port, "PUT", "/collections/soak",
             {"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 3, "replication_factor": 2})
        ids = [int(p) for p in call(nodes[0].port, "GET", "/cluster")["peers"]]
        acked, uncertain, stop, errors = {}, set(), threading.Event(), []
        w = threading.Thread(target=writer, args=(nodes, acked, uncertain, stop, errors))
        w.start()
        faults = 0
        while time.time() - started < a.minutes * 60:
            time.sleep(random.uniform(1, 3))
            fault(nodes, ids, log)
            faults += 1
        stop.set()
        w.join()
        log(f"{faults} faults, {len(acked)} points acknowledged ({len(uncertain)} last written by a failed write), "
            f"{len(errors)} writes failed")
        wait_active(nodes[0].port, "soak", timeout=300)
        bad = 0
        for n in nodes:
            got = call(n.port, "POST", "/collections/soak/points/scroll", {"limit": 100000, "with_payload": True})
            have = {p["id"]: (p["payload"]["v"], p["payload"]["grp"], p["payload"].get("f")) for p in got["points"]}
            for i, want in acked.items():
                if i not in uncertain and have.get(i) != want:
                    bad += 1
                    if bad < 10:
                        log(f"peer {n.dir}: point {i} has (v, grp, f) = {have.get(i)}, acknowledged writes left {want}")
        log("OK: every acknowledged write is on every peer" if bad == 0 else f"FAILED: {bad} wrong points")
        sys.exit(0 if bad == 0 else 1)
    finally:
        for n in nodes:
            if n.proc.poll() is None:
                n.proc.send_signal(signal.SIGCONT)
                n.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
