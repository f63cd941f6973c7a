"""Sharding through the official client: shard_number, custom shard keys."""

from qdrant_client import models

from test_points import both, make_points, pair  # noqa: F401  (pair is a fixture)


def test_shard_number_does_not_change_answers(pair):
    name, clients = pair
    server, local = clients
    server.create_collection(name, vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE),
                             shard_number=4)
    local.create_collection(name, vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE))
    for c in clients:
        c.upsert(name, points=make_points(300, 8, seed=9))
    q = [0.2, -0.1, 0.4, 0.0, 0.3, -0.5, 0.1, 0.2]
    s, l = both(clients, lambda c: c.query_points(name, query=q, limit=20, offset=3, with_payload=True).points)
    assert [p.id for p in s] == [p.id for p in l]
    assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(s, l))
    s, l = both(clients, lambda c: [p.id for p in c.scroll(name, limit=1000)[0]])
    assert s == l
    info = server.get_collection(name)
    assert info.config.params.shard_number == 4


def test_custom_shard_keys(pair):
    name, clients = pair
    server, _ = clients
    server.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                             sharding_method=models.ShardingMethod.CUSTOM)
    server.create_shard_key(name, "tenant_a")
    server.create_shard_key(name, "tenant_b")
    server.upsert(name, points=[models.PointStruct(id=1, vector=[1, 0]), models.PointStruct(id=2, vector=[0, 1])],
                  shard_key_selector="tenant_a")
    server.upsert(name, points=[models.PointStruct(id=3, vector=[1, 1])], shard_key_selector="tenant_b")
    assert server.count(name).count == 3
    a = server.query_points(name, query=[1, 1], limit=10, shard_key_selector="tenant_a").points
    assert sorted(p.id for p in a) == [1, 2]
    b = server.scroll(name, limit=10, shard_key_selector="tenant_b")[0]
    assert [p.id for p in b] == [3]
    server.delete_shard_key(name, "tenant_b")
    assert server.count(name).count == 2
