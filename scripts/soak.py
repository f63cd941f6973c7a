#!/usr/bin/env python3
"""Single-node soak: for `--minutes`, writers (`wait=true` and durable `wait=false` upserts,
deletes, payload writes by filter), readers (queries, scrolls, counts) and a fault loop (kill -9
and restart, collection snapshots created, listed and deleted, payload indexes created and
dropped) run together on one server. At the end every point holds exactly what its last
acknowledged write left (or is gone after an acknowledged delete), reads never got a 5xx,
and a snapshot taken at the end restores to the same points.

Usage: QDRANT_BIN=target/release/qdrant scripts/soak.py [--minutes 10] [--backend sqlite]
CI runs a short version (`--minutes 0.3` per backend); exits non-zero on any lost or wrong
point or any server error.
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_cluster import Node, call  # noqa: E402

IDS = 3000
GROUPS = 8


def writer(node, wait, acked, uncertain, lock, stop, errors):
    """Record what every acknowledged write left: id -> (v, grp, f), or None once deleted. A write
    that failed mid-request (the server was killed) may or may not have applied: the ids it could
    touch are uncertain until their next acknowledged write. Each writer owns half of the ids
    (and filters on its own `w`), so its writes apply in the order it sends them."""
    rnd = random.Random(wait)
    version = 0 if wait == "true" else 1_000_000_000
    own = range(0, IDS // 2) if wait == "true" else range(IDS // 2, IDS)
    while not stop.is_set():
        version += 1
        kind = rnd.random()
        if kind < 0.1:
            grp = rnd.randrange(GROUPS)
            with lock:
                ids = [i for i in own if acked.get(i) is not None and acked[i][1] == grp]
            request = ("POST", f"/collections/soak/points/payload?wait={wait}",
                       {"payload": {"f": version}, "filter": {"must": [{"key": "grp", "match": {"value": grp}},
                                                                       {"key": "w", "match": {"value": wait}}]}})
            after = {i: (acked[i][0], acked[i][1], version) for i in ids}
        elif kind < 0.2:
            ids = rnd.sample(own, 10)
            request = ("POST", f"/collections/soak/points/delete?wait={wait}", {"points": ids})
            after = {i: None for i in ids}
        else:
            ids = rnd.sample(own, 25)
            groups = {i: rnd.randrange(GROUPS) for i in ids}
            pts = [{"id": i, "vector": [rnd.uniform(-1, 1) for _ in range(8)],
                    "payload": {"v": version, "grp": groups[i], "w": wait}} for i in ids]
            request = ("PUT", f"/collections/soak/points?wait={wait}", {"points": pts})
            after = {i: (version, groups[i], None) for i in ids}
        with lock:
            newly = set(ids) - uncertain
            uncertain.update(ids)
        if kind < 0.1:
            # A payload write by filter leaves an id whose state was already unknown unknown.
            after = {i: s for i, s in after.items() if i in newly}
        try:
            call(node.port, *request, timeout=60)
        except urllib.error.HTTPError as e:
            if e.code >= 500 and node.proc.poll() is None and not node.restarting:
                errors.append(f"write answered {e.code}: {e.read()[:300]!r}")
            # An answered failure (e.g. 503 while collections load) applied nothing.
            with lock:
                uncertain.difference_update(newly)
            time.sleep(0.05)
            continue
        except urllib.error.URLError as e:
            if isinstance(e.reason, ConnectionRefusedError):
                # Never sent: certainly not applied, so what was acknowledged before still holds.
                with lock:
                    uncertain.difference_update(newly)
            time.sleep(0.05)
            continue
        except Exception:
            time.sleep(0.05)  # reset mid-request while the server was killed: not acknowledged
            continue
        with lock:
            acked.update(after)
            uncertain.difference_update(after)


def reader(node, stop, errors):
    rnd = random.Random(7)
    while not stop.is_set():
        try:
            kind = rnd.randrange(3)
            if kind == 0:
                r = call(node.port, "POST", "/collections/soak/points/query",
                         {"query": [rnd.uniform(-1, 1) for _ in range(8)], "limit": 10,
                          "filter": {"must": [{"key": "grp", "match": {"value": rnd.randrange(GROUPS)}}]}}, timeout=60)
                assert len(r["points"]) <= 10
            elif kind == 1:
                call(node.port, "POST", "/collections/soak/points/scroll", {"limit": 50, "with_payload": True}, timeout=60)
            else:
                call(node.port, "POST", "/collections/soak/points/count", {"exact": True}, timeout=60)
        except urllib.error.HTTPError as e:
            if e.code >= 500 and node.proc.poll() is None and not node.restarting:
                errors.append(f"read answered {e.code}: {e.read()[:300]!r}")
        except Exception:
            time.sleep(0.05)


def fault(node, log, rnd):
    kind = rnd.choice(["kill", "snapshot", "index"])
    try:
        if kind == "kill":
            log("kill -9, restart")
            node.restarting = True
            node.kill()
            time.sleep(rnd.uniform(0.2, 1.5))
            node.start()
            node.restarting = False
        elif kind == "snapshot":
            snap = call(node.port, "POST", "/collections/soak/snapshots?wait=true", timeout=120)
            names = [s["name"] for s in call(node.port, "GET", "/collections/soak/snapshots")]
            assert snap["name"] in names
            call(node.port, "DELETE", f"/collections/soak/snapshots/{snap['name']}?wait=true")
            log(f"snapshot {snap['name']} created, listed, deleted")
        else:
            if rnd.random() < 0.5:
                call(node.port, "PUT", "/collections/soak/index?wait=true", {"field_name": "v", "field_schema": "integer"})
                log("payload index on v created")
            else:
                call(node.port, "DELETE", "/collections/soak/index/v?wait=true")
                log("payload index on v dropped")
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            raise RuntimeError(f"{kind}: {e.code} {e.read()[:300]!r}")
        log(f"{kind}: {e.code}")


def check(node, acked, uncertain, log, collection="soak"):
    got = call(node.port, "POST", f"/collections/{collection}/points/scroll", {"limit": IDS + 10, "with_payload": True})
    have = {p["id"]: (p["payload"]["v"], p["payload"]["grp"], p["payload"].get("f")) for p in got["points"]}
    bad = 0
    for i, want in acked.items():
        if i in uncertain:
            continue
        if have.get(i) != want:
            bad += 1
            if bad <= 10:
                log(f"{collection}: point {i} holds {have.get(i)}, the last acknowledged write left {want}")
    return bad, have


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--backend", default="rocksdb")
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="soak-")
    started = time.time()

    def log(msg):
        print(f"[{a.backend} {time.time() - started:6.1f}s] {msg}", flush=True)

    node = Node(root, "n", a.backend)
    node.restarting = False
    try:
        call(node.port, "PUT", "/collections/soak", {"vectors": {"size": 8, "distance": "Cosine"}, "shard_number": 2,
                                                      "optimizers_config": {"default_segment_number": 2}})
        acked, uncertain, lock, stop, errors = {}, set(), threading.Lock(), threading.Event(), []
        threads = [threading.Thread(target=writer, args=(node, w, acked, uncertain, lock, stop, errors))
                   for w in ("true", "false")]
        threads.append(threading.Thread(target=reader, args=(node, stop, errors)))
        for t in threads:
            t.start()
        rnd, faults = random.Random(3), 0
        try:
            while time.time() - started < a.minutes * 60:
                time.sleep(rnd.uniform(1, 3))
                fault(node, log, rnd)
                faults += 1
        finally:
            stop.set()
            for t in threads:
                t.join()
        live = sum(1 for s in acked.values() if s is not None)
        log(f"{faults} faults; {len(acked)} ids written, {live} live, {len(uncertain)} uncertain")
        bad, have = check(node, acked, uncertain, log)
        # The same after one more kill -9 and restart.
        node.kill()
        node.start()
        bad += check(node, acked, uncertain, log)[0]
        # A snapshot of the end state restores to the same points.
        snap = call(node.port, "POST", "/collections/soak/snapshots?wait=true", timeout=300)
        call(node.port, "PUT", "/collections/restored/snapshots/recover?wait=true",
             {"location": f"http://127.0.0.1:{node.port}/collections/soak/snapshots/{snap['name']}"}, timeout=300)
        restored = call(node.port, "POST", "/collections/restored/points/scroll",
                        {"limit": IDS + 10, "with_payload": True})["points"]
        if {p["id"] for p in restored} != set(have):
            bad += 1
            log(f"the restored snapshot has {len(restored)} points, the collection {len(have)}")
        for e in errors[:10]:
            log(f"server error: {e}")
        ok = bad == 0 and not errors
        log("OK: every acknowledged write is there, no server error" if ok
            else f"FAILED: {bad} wrong points, {len(errors)} server errors")
        sys.exit(0 if ok else 1)
    finally:
        node.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
