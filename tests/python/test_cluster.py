"""Cluster mode through the official client: three real peers per backend; a replicated
collection created, written and read through different peers over REST and gRPC answers
exactly as the client's local mode does, and the cluster APIs parse in the client's models."""

import os
import random
import tempfile
import time

import pytest
from qdrant_client import QdrantClient, models

from conftest import BACKENDS, ServerProcess, free_port, wait_formed

DIM = 8


def start_peer(backend, root, name, p2p, bootstrap=None):
    args = ["--uri", f"http://127.0.0.1:{p2p}"]
    if bootstrap:
        args += ["--bootstrap", f"http://127.0.0.1:{bootstrap}"]
    env = {"QDRANT__CLUSTER__ENABLED": "true", "QDRANT__CLUSTER__P2P__PORT": str(p2p)}
    return ServerProcess(backend, os.path.join(root, name), args=args, env=env)


@pytest.fixture(scope="module", params=BACKENDS)
def peers(request):
    root = tempfile.mkdtemp(prefix=f"qdrant-cluster-{request.param}-")
    ports = [free_port() for _ in range(3)]
    procs = [start_peer(request.param, root, "a", ports[0])]
    procs += [start_peer(request.param, root, n, p, ports[0]) for n, p in zip("bc", ports[1:])]
    wait_formed(procs, 3)
    yield procs
    for p in procs:
        p.stop()


def clients(peers, transport):
    grpc = transport == "grpc"
    return [QdrantClient(url=p.url, grpc_port=p.grpc_port, prefer_grpc=grpc) for p in peers]


def points(n, seed):
    rnd = random.Random(seed)
    return [
        models.PointStruct(
            id=i,
            vector=[rnd.uniform(-1, 1) for _ in range(DIM)],
            payload={"city": rnd.choice(["paris", "rome", "oslo"]), "n": i},
        )
        for i in range(n)
    ]


def test_cluster_status_parses_in_the_client_models(peers):
    status = QdrantClient(url=peers[1].url).cluster_status()
    assert status.status == "enabled"
    assert len(status.peers) == 3
    assert status.raft_info.role is not None
    assert status.raft_info.is_voter


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_replicated_collection_answers_like_local_mode(peers, transport):
    a, b, c = clients(peers, transport)
    local = QdrantClient(":memory:")
    name = f"rep_{transport}"
    for client, extra in ((a, {"shard_number": 4, "replication_factor": 2}), (local, {})):
        client.create_collection(
            name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE), **extra
        )
    data = points(300, 7)
    for i in range(0, 300, 100):
        b.upsert(name, data[i:i + 100], wait=True)
    local.upsert(name, data)
    b.create_payload_index(name, "city", models.PayloadSchemaType.KEYWORD)
    c.delete(name, models.PointIdsList(points=[1, 2, 3]), wait=True)
    local.delete(name, models.PointIdsList(points=[1, 2, 3]))

    assert c.count(name, exact=True).count == 297
    flt = models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="rome"))])
    for reader in (a, c):
        for q in data[10:15]:
            got = reader.query_points(name, query=q.vector, limit=10, query_filter=flt).points
            want = local.query_points(name, query=q.vector, limit=10, query_filter=flt).points
            assert [p.id for p in got] == [p.id for p in want]
            assert [round(p.score, 4) for p in got] == [round(p.score, 4) for p in want]
        got = reader.retrieve(name, [5, 6, 1], with_payload=True)
        assert sorted((p.id, p.payload["n"]) for p in got) == [(5, 5), (6, 6)]
        facet = reader.facet(name, "city", exact=True)
        want = local.facet(name, "city", exact=True)
        assert sorted((h.value, h.count) for h in facet.hits) == sorted((h.value, h.count) for h in want.hits)
    scrolled, _ = c.scroll(name, limit=1000, with_payload=True)
    want, _ = local.scroll(name, limit=1000, with_payload=True)
    assert [(p.id, p.payload) for p in scrolled] == [(p.id, p.payload) for p in want]

    info = a.collection_cluster_info(name)
    replicas = len(info.local_shards) + len(info.remote_shards)
    assert info.shard_count == 4 and replicas == 8
    assert all(s.state == models.ReplicaState.ACTIVE for s in info.local_shards + info.remote_shards)
    a.delete_collection(name)
    assert not c.collection_exists(name)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_shard_moves_through_the_client(peers, transport):
    a, b, c = clients(peers, transport)
    name = f"move_{transport}"
    a.create_collection(
        name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT), shard_number=2
    )
    b.upsert(name, points(200, 3), wait=True)
    info = QdrantClient(url=peers[0].url).collection_cluster_info(name)
    holders = {s.shard_id: info.peer_id for s in info.local_shards}
    holders.update({s.shard_id: s.peer_id for s in info.remote_shards})
    all_peers = [int(p) for p in QdrantClient(url=peers[0].url).cluster_status().peers]
    source = holders[0]
    target = next(p for p in all_peers if p != source)
    # The client takes REST models on both transports and converts them to gRPC itself.
    op = models.MoveShardOperation(move_shard=models.MoveShard(shard_id=0, from_peer_id=source, to_peer_id=target))
    assert c.cluster_collection_update(name, op)
    deadline = time.time() + 30
    while True:
        info = QdrantClient(url=peers[0].url).collection_cluster_info(name)
        moved = {s.shard_id: info.peer_id for s in info.local_shards}
        moved.update({s.shard_id: s.peer_id for s in info.remote_shards})
        if not info.shard_transfers and moved[0] == target:
            break
        assert time.time() < deadline, info
        time.sleep(0.1)
    assert c.count(name, exact=True).count == 200
    with pytest.raises(Exception, match="does not exist"):
        bad = models.MoveShardOperation(move_shard=models.MoveShard(shard_id=7, from_peer_id=source, to_peer_id=target))
        a.cluster_collection_update(name, bad)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_shard_keys_through_the_client(peers, transport):
    a, b, c = clients(peers, transport)
    name = f"keys_{transport}"
    a.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT),
                        sharding_method=models.ShardingMethod.CUSTOM, shard_number=2, replication_factor=2)
    peer_c = c.cluster_status().peer_id
    b.create_shard_key(name, "eu")
    a.create_shard_key(name, 5, shards_number=1, replication_factor=1, placement=[peer_c])
    data = points(60, 3)
    c.upsert(name, data[:40], shard_key_selector="eu", wait=True)
    a.upsert(name, data[40:], shard_key_selector=5, wait=True)
    for reader in (a, b, c):
        assert reader.count(name, exact=True).count == 60
        assert reader.count(name, shard_key_selector="eu", exact=True).count == 40
        got = reader.retrieve(name, [0, 45], shard_key_selector=5)
        assert [p.id for p in got] == [45]
    info = c.collection_cluster_info(name)
    assert any(s.shard_key == 5 for s in info.local_shards), info
    with pytest.raises(Exception, match="already exists"):
        a.create_shard_key(name, "eu")
    # Promote part of a key's points to a key of their own (`replicate_points`).
    b.create_shard_key(name, "vip", shards_number=1)
    promote = models.ReplicatePointsOperation(replicate_points=models.ReplicatePoints(
        from_shard_key="eu", to_shard_key="vip",
        filter=models.Filter(must=[models.HasIdCondition(has_id=list(range(10)))])))
    assert c.cluster_collection_update(name, promote)
    for reader in (a, b, c):
        assert reader.count(name, shard_key_selector="vip", exact=True).count == 10
        got = reader.retrieve(name, [3, 12], shard_key_selector="vip", with_vectors=True)
        assert [p.id for p in got] == [3]
        assert got[0].vector == reader.retrieve(name, [3], shard_key_selector="eu", with_vectors=True)[0].vector
    a.delete_shard_key(name, "vip")
    c.delete_shard_key(name, "eu")
    for reader in (a, b, c):
        assert reader.count(name, exact=True).count == 20
    a.delete_collection(name)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_ordered_writes_through_the_client(peers, transport):
    import threading
    cs = clients(peers, transport)
    name = f"ordered_{transport}"
    cs[0].create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT),
                            shard_number=1, replication_factor=3)
    for ordering in (models.WriteOrdering.STRONG, models.WriteOrdering.MEDIUM):
        for rnd in range(10):
            barrier, errors = threading.Barrier(len(cs)), []

            def write(k, client):
                point = models.PointStruct(id=1, vector=[1.0] * DIM, payload={"w": k, "round": rnd})
                barrier.wait()
                try:
                    client.upsert(name, [point], wait=True, ordering=ordering)
                except Exception as e:  # a thread's exception would not fail the test
                    errors.append(e)

            threads = [threading.Thread(target=write, args=(k, c)) for k, c in enumerate(cs)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            # Each peer reads its own replica first: all hold the same last write.
            seen = {tuple(sorted(c.retrieve(name, [1])[0].payload.items())) for c in cs}
            assert len(seen) == 1, (ordering, rnd, seen)
    cs[0].delete_collection(name)


@pytest.mark.parametrize("transport", ["rest", "grpc"])
def test_read_consistency_through_the_client(peers, transport):
    a, b, c = clients(peers, transport)
    name = f"consistent_{transport}"
    a.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
                        shard_number=2, replication_factor=3)
    data = points(200, 11)
    b.upsert(name, data, wait=True)
    b.create_payload_index(name, "city", models.PayloadSchemaType.KEYWORD, wait=True)
    flt = models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="oslo"))])

    def reads(consistency):
        kw = {} if consistency is None else {"consistency": consistency}
        hits = c.query_points(name, query=data[3].vector, limit=5, query_filter=flt, **kw).points
        batch = c.query_batch_points(name, [models.QueryRequest(query=data[4].vector, limit=3)], **kw)
        records = c.retrieve(name, [2, 150, 999], with_payload=True, **kw)
        page, nxt = c.scroll(name, limit=15, offset=40, with_payload=True, **kw)
        facet = c.facet(name, "city", exact=True, **kw).hits
        return ([(p.id, round(p.score, 5)) for p in hits], [[p.id for p in r.points] for r in batch],
                sorted((r.id, r.payload["n"]) for r in records), [(p.id, p.payload["n"]) for p in page], nxt,
                sorted((h.value, h.count) for h in facet))

    plain = reads(None)
    assert plain[2] == [(2, 2), (150, 150)]
    for consistency in (models.ReadConsistencyType.ALL, models.ReadConsistencyType.MAJORITY,
                        models.ReadConsistencyType.QUORUM, 2):
        assert reads(consistency) == plain, consistency
    a.delete_collection(name)


def test_snapshot_recovery_through_the_client(peers):
    """A peer recovers another peer's snapshot (by URL) with priority `snapshot`: every peer
    then answers as local mode over the snapshot's points, and every replica is Active."""
    a, b, c = clients(peers, "rest")
    name = "snap_rec"
    a.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT),
                        shard_number=1, replication_factor=3)
    first = points(200, 21)
    a.upsert(name, first, wait=True)
    snapshot = a.create_snapshot(name)
    a.upsert(name, points(300, 22), wait=True)
    assert c.count(name, exact=True).count == 300
    url = f"{peers[0].url}/collections/{name}/snapshots/{snapshot.name}"
    assert b.recover_snapshot(name, location=url, priority=models.SnapshotPriority.SNAPSHOT, wait=True)

    local = QdrantClient(":memory:")
    local.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT))
    local.upsert(name, first)
    want, _ = local.scroll(name, limit=1000, with_payload=True, with_vectors=True)
    deadline = time.time() + 60
    for reader in (a, b, c):
        while True:
            info = reader.collection_cluster_info(name)
            states = [s.state for s in info.local_shards + info.remote_shards]
            got, _ = reader.scroll(name, limit=1000, with_payload=True, with_vectors=True)
            if states == [models.ReplicaState.ACTIVE] * 3 and [(p.id, p.payload) for p in got] == \
                    [(p.id, p.payload) for p in want]:
                break
            assert time.time() < deadline, (states, len(got))
            time.sleep(0.2)
        q = first[7].vector
        hits = reader.query_points(name, query=q, limit=5).points
        ref = local.query_points(name, query=q, limit=5).points
        assert [(p.id, round(p.score, 4)) for p in hits] == [(p.id, round(p.score, 4)) for p in ref]
    a.delete_collection(name)
