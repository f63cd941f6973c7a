"""Hybrid search through the official client: named dense + multivector (late interaction) +
sparse vectors (with and without IDF) in one collection, compared with the client's local mode."""

import random

import pytest
import httpx as requests
from conftest import refused
from qdrant_client import models

DIM, COLBERT_DIM = 8, 4
VOCAB = 60


def sparse(rnd, n_max=8):
    idx = sorted(rnd.sample(range(VOCAB), rnd.randint(1, n_max)))
    return models.SparseVector(indices=idx, values=[round(rnd.uniform(0.1, 2.0), 3) for _ in idx])


def multi(rnd, rows=None):
    return [[rnd.uniform(-1, 1) for _ in range(COLBERT_DIM)] for _ in range(rows or rnd.randint(1, 4))]


def hybrid_config():
    return dict(
        vectors_config={
            "dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE),
            "colbert": models.VectorParams(
                size=COLBERT_DIM, distance=models.Distance.COSINE,
                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)),
        },
        sparse_vectors_config={
            "text": models.SparseVectorParams(modifier=models.Modifier.IDF),
            "splade": models.SparseVectorParams(index=models.SparseIndexParams(on_disk=True)),
        },
    )


def hybrid_points(n, seed=3):
    rnd = random.Random(seed)
    pts = []
    for i in range(n):
        vec = {"dense": [rnd.uniform(-1, 1) for _ in range(DIM)], "colbert": multi(rnd),
               "text": sparse(rnd), "splade": sparse(rnd, 12)}
        if i % 7 == 3:
            del vec["splade"]  # not every point has every vector
        pts.append(models.PointStruct(id=i, vector=vec, payload={"g": i % 3, "n": i}))
    return pts


@pytest.fixture()
def pair(client, local, request):
    name = "h_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    for c in (client, local):
        if c.collection_exists(name):
            c.delete_collection(name)
        c.create_collection(name, **hybrid_config())
    return name, (client, local)


def tie_groups(points, tol):
    """Ids in rank order, grouped where scores are equal (within `tol`)."""
    groups = []
    for p in points:
        if groups and abs(groups[-1][0] - p.score) < tol:
            groups[-1][1].add(p.id)
        else:
            groups.append([p.score, {p.id}])
    return [g[1] for g in groups]


def assert_same(a, b, tol=1e-4, what=""):
    """Same hits with the same scores; points with equal scores may come in either order."""
    assert len(a) == len(b), (what, [p.id for p in a], [p.id for p in b])
    for x, y in zip(a, b):
        assert abs(x.score - y.score) < tol, (what, x, y)
    assert tie_groups(a, tol) == tie_groups(b, tol), (what, [p.id for p in a], [p.id for p in b])


def test_create_and_info_shape(pair):
    name, (server, local) = pair
    info = server.get_collection(name)
    sv = info.config.params.sparse_vectors
    assert sv["text"].modifier == models.Modifier.IDF
    assert sv["splade"].index.on_disk is True
    assert info.config.params.vectors["colbert"].multivector_config.comparator == models.MultiVectorComparator.MAX_SIM


def test_upsert_forms_and_retrieve(pair):
    name, clients = pair
    pts = hybrid_points(30)
    for c in clients:
        c.upsert(name, points=pts[:20], wait=True)
        # batch form with named columns of every kind
        rest = pts[20:]
        c.upsert(name, points=models.Batch(
            ids=[p.id for p in rest],
            vectors={"dense": [p.vector["dense"] for p in rest], "colbert": [p.vector["colbert"] for p in rest],
                     "text": [p.vector["text"] for p in rest]},
            payloads=[p.payload for p in rest]), wait=True)
    s, l = (c.retrieve(name, ids=[0, 3, 25], with_vectors=True) for c in clients)
    assert [p.id for p in s] == [p.id for p in l]
    for x, y in zip(s, l):
        assert set(x.vector) == set(y.vector)
        assert x.vector["text"].indices == y.vector["text"].indices
        assert x.vector["text"].values == pytest.approx(y.vector["text"].values)
        assert len(x.vector["colbert"]) == len(y.vector["colbert"])
        for rx, ry in zip(x.vector["colbert"], y.vector["colbert"]):
            assert rx == pytest.approx(ry, abs=1e-5)


def test_queries_of_every_kind_match_local_mode(pair):
    name, clients = pair
    pts = hybrid_points(150)
    for c in clients:
        c.upsert(name, points=pts, wait=True)
    rnd = random.Random(11)
    flt = models.Filter(must=[models.FieldCondition(key="g", match=models.MatchValue(value=1))])
    for _ in range(4):
        dq, cq, tq, sq = [rnd.uniform(-1, 1) for _ in range(DIM)], multi(rnd, 3), sparse(rnd), sparse(rnd, 12)
        forms = [
            dict(query=dq, using="dense", limit=10),
            dict(query=cq, using="colbert", limit=10),
            dict(query=tq, using="text", limit=10),
            dict(query=sq, using="splade", limit=10),
            dict(query=tq, using="text", limit=5, query_filter=flt),
            dict(query=cq, using="colbert", limit=5, query_filter=flt, score_threshold=0.5),
            dict(prefetch=[models.Prefetch(query=tq, using="text", limit=20),
                           models.Prefetch(query=dq, using="dense", limit=20)],
                 query=models.FusionQuery(fusion=models.Fusion.RRF), limit=10),
            dict(prefetch=[models.Prefetch(query=sq, using="splade", limit=20),
                           models.Prefetch(query=dq, using="dense", limit=20)],
                 query=models.FusionQuery(fusion=models.Fusion.DBSF), limit=10),
            # rerank fused candidates with the late-interaction vector
            dict(prefetch=[models.Prefetch(prefetch=[models.Prefetch(query=tq, using="text", limit=30),
                                                     models.Prefetch(query=dq, using="dense", limit=30)],
                                           query=models.FusionQuery(fusion=models.Fusion.RRF), limit=20)],
                 query=cq, using="colbert", limit=10),
            dict(prefetch=[models.Prefetch(query=tq, using="text", limit=15)], query=dq, using="dense", limit=5),
        ]
        for i, form in enumerate(forms):
            s, l = (c.query_points(name, **form).points for c in clients)
            assert_same(s, l, what=f"form {i}: {form}")


def test_recommend_with_sparse_and_multi(pair):
    name, clients = pair
    for c in clients:
        c.upsert(name, points=hybrid_points(80), wait=True)
    for using in ["text", "colbert", "dense"]:
        for strategy in [models.RecommendStrategy.BEST_SCORE, models.RecommendStrategy.SUM_SCORES]:
            q = models.RecommendQuery(recommend=models.RecommendInput(positive=[1, 2], negative=[5], strategy=strategy))
            s, l = (c.query_points(name, query=q, using=using, limit=8).points for c in clients)
            assert_same(s, l)
    q = models.RecommendQuery(recommend=models.RecommendInput(positive=[1, 2], negative=[5]))
    s, l = (c.query_points(name, query=q, using="splade", limit=8).points for c in clients)
    assert_same(s, l)


def test_update_and_delete_vectors(pair):
    name, clients = pair
    rnd = random.Random(5)
    new_sparse, new_multi = sparse(rnd), multi(rnd, 2)
    for c in clients:
        c.upsert(name, points=hybrid_points(20), wait=True)
        c.update_vectors(name, points=[models.PointVectors(id=4, vector={"text": new_sparse, "colbert": new_multi})],
                         wait=True)
        c.delete_vectors(name, vectors=["splade"], points=[4, 5], wait=True)
    s, l = (c.retrieve(name, ids=[4, 5], with_vectors=True) for c in clients)
    for x, y in zip(s, l):
        assert set(x.vector) == set(y.vector)
        assert "splade" not in x.vector
    assert s[0].vector["text"].indices == new_sparse.indices
    q = new_sparse
    s, l = (c.query_points(name, query=q, using="text", limit=5).points for c in clients)
    assert_same(s, l)


def test_idf_follows_deletes(pair):
    name, clients = pair
    for c in clients:
        c.upsert(name, points=hybrid_points(60), wait=True)
        c.delete(name, points_selector=models.PointIdsList(points=list(range(10))), wait=True)
    q = models.SparseVector(indices=list(range(0, VOCAB, 3)), values=[1.0] * len(range(0, VOCAB, 3)))
    s, l = (c.query_points(name, query=q, using="text", limit=20).points for c in clients)
    assert_same(s, l)


def test_sparse_only_collection_and_legacy_search(client, local, server):
    name = "sparse_only"
    for c in (client, local):
        if c.collection_exists(name):
            c.delete_collection(name)
        c.create_collection(name, vectors_config={}, sparse_vectors_config={"s": models.SparseVectorParams()})
        c.upsert(name, points=[models.PointStruct(id=i, vector={"s": sparse(random.Random(i))}) for i in range(40)],
                 wait=True)
    q = sparse(random.Random(99), 10)
    s, l = (c.query_points(name, query=q, using="s", limit=7).points for c in (client, local))
    assert_same(s, l)
    # /points/search with a NamedSparseVector, as older clients send it
    r = requests.post(f"{server.url}/collections/{name}/points/search", json={
        "vector": {"name": "s", "vector": {"indices": q.indices, "values": q.values}}, "limit": 7})
    assert r.status_code == 200, r.text
    assert [p["id"] for p in r.json()["result"]] == [p.id for p in s]


def test_add_and_drop_named_vector(client, server):
    name = "grow"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config={"dense": models.VectorParams(size=2, distance=models.Distance.DOT)})
    client.upsert(name, points=[models.PointStruct(id=1, vector={"dense": [1.0, 0.0]})], wait=True)
    r = requests.put(f"{server.url}/collections/{name}/vectors/kw", json={"sparse": {"modifier": "idf"}})
    assert r.status_code == 200, r.text
    r = requests.put(f"{server.url}/collections/{name}/vectors/late",
                     json={"dense": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}}})
    assert r.status_code == 200, r.text
    client.upsert(name, points=[models.PointStruct(id=2, vector={
        "dense": [0.0, 1.0], "kw": models.SparseVector(indices=[1], values=[1.0]), "late": [[1.0, 1.0]]})], wait=True)
    hits = client.query_points(name, query=models.SparseVector(indices=[1], values=[1.0]), using="kw").points
    assert [p.id for p in hits] == [2]
    assert requests.put(f"{server.url}/collections/{name}/vectors/kw", json={"sparse": {}}).status_code == 400
    assert requests.delete(f"{server.url}/collections/{name}/vectors/kw").status_code == 200
    assert "kw" not in (client.get_collection(name).config.params.sparse_vectors or {})
    p = client.retrieve(name, ids=[2], with_vectors=True)[0]
    assert set(p.vector) == {"dense", "late"}
    assert requests.delete(f"{server.url}/collections/{name}/vectors/kw").status_code == 404


@pytest.mark.parametrize("vector,field", [
    ({"text": {"indices": [1, 1], "values": [0.5, 0.5]}}, "unique"),
    ({"text": {"indices": [1, 2], "values": [0.5]}}, "same length"),
    ({"text": {"indices": [1], "values": ["nan"]}}, "values"),
    ({"colbert": []}, "needs at least one vector"),
    ({"colbert": [[1.0, 2.0, 3.0, 4.0], [1.0]]}, "same size"),
    ({"colbert": [[1.0, 2.0, 3.0]]}, "dimension"),
    ({"colbert": [1.0, 2.0, 3.0, 4.0]}, "multivector"),
    ({"dense": {"indices": [1], "values": [1.0]}}, "dense vector, but a sparse"),
    ({"text": [1.0, 2.0]}, "sparse vector, but a dense"),
    ({"nope": [1.0]}, "nope"),
    ({"text": {"text": "hello", "model": "someone/model"}}, "no inference provider"),
])
def test_bad_vectors_are_refused_and_nothing_written(pair, server, vector, field):
    name, _ = pair
    good = {"id": 1, "vector": {"dense": [0.1] * DIM}}
    r = requests.put(f"{server.url}/collections/{name}/points?wait=true",
                     json={"points": [good, {"id": 2, "vector": vector}]})
    assert r.status_code == 400, r.text
    assert field in r.json()["status"]["error"], r.text
    assert requests.post(f"{server.url}/collections/{name}/points/count", json={}).json()["result"]["count"] == 0


def test_query_kind_mismatch_is_a_400(pair, client):
    name, _ = pair
    client.upsert(name, points=hybrid_points(5), wait=True)
    with refused(400) as e:
        client.query_points(name, query=[0.1] * DIM, using="text")
    with refused(400) as e:
        client.query_points(name, query=models.SparseVector(indices=[1], values=[1.0]), using="dense")


def test_shard_keys_facet_and_order_by_with_hybrid_vectors(client, local, request):
    """A hybrid collection under custom sharding (even ids on key "a", odd on "b") answers like the
    same points in one local-mode collection: every key searched, or one key (compared with a
    filter on the key's payload); facets and order_by beside sparse and multivector queries."""
    name = "hk_" + request.node.callspec.id.replace("-", "_")
    for c in (client, local):
        if c.collection_exists(name):
            c.delete_collection(name)
    client.create_collection(name, sharding_method=models.ShardingMethod.CUSTOM, **hybrid_config())
    local.create_collection(name, **hybrid_config())
    for k in ("a", "b"):
        client.create_shard_key(name, k)
    # Facets and order_by need indexes on their keys, as in Qdrant.
    client.create_payload_index(name, "g", models.PayloadSchemaType.INTEGER, wait=True)
    client.create_payload_index(name, "n", models.PayloadSchemaType.INTEGER, wait=True)
    pts = hybrid_points(80, seed=11)
    for p in pts:
        p.payload["key"] = "a" if p.id % 2 == 0 else "b"
    for k in ("a", "b"):
        client.upsert(name, [p for p in pts if p.payload["key"] == k], shard_key_selector=k, wait=True)
    local.upsert(name, pts, wait=True)
    rnd = random.Random(5)
    queries = [
        dict(query=sparse(rnd), using="splade"),
        dict(query=multi(rnd, 3), using="colbert"),
        dict(query=[rnd.uniform(-1, 1) for _ in range(DIM)], using="dense"),
        dict(prefetch=[models.Prefetch(query=sparse(rnd), using="splade", limit=20),
                       models.Prefetch(query=[rnd.uniform(-1, 1) for _ in range(DIM)], using="dense", limit=20)],
             query=models.FusionQuery(fusion=models.Fusion.RRF)),
    ]
    for i, q in enumerate(queries):
        got = client.query_points(name, limit=10, **q).points
        assert_same(got, local.query_points(name, limit=10, **q).points, what=f"all keys, query {i}")
        only_a = models.Filter(must=[models.FieldCondition(key="key", match=models.MatchValue(value="a"))])
        got = client.query_points(name, limit=10, shard_key_selector="a", **q).points
        assert_same(got, local.query_points(name, limit=10, query_filter=only_a, **q).points, what=f"key a, query {i}")
    # IDF over every key in scope equals the local collection's.
    q = dict(query=sparse(rnd), using="text")
    assert_same(client.query_points(name, limit=10, **q).points, local.query_points(name, limit=10, **q).points, what="idf")
    # Facets and order_by on the payload beside the vectors.
    facet = lambda c, **kw: sorted((h.value, h.count) for h in c.facet(name, "g", limit=10, **kw).hits)  # noqa: E731
    assert facet(client) == facet(local)
    assert facet(client, shard_key_selector="b") == sorted(
        (h.value, h.count) for h in local.facet(name, "g", limit=10, facet_filter=models.Filter(
            must=[models.FieldCondition(key="key", match=models.MatchValue(value="b"))])).hits)
    ordered = lambda c: [p.id for p in c.query_points(name, query=models.OrderByQuery(  # noqa: E731
        order_by=models.OrderBy(key="n", direction=models.Direction.DESC)), limit=7,
        query_filter=models.Filter(must=[models.FieldCondition(key="g", match=models.MatchValue(value=1))])).points]
    assert ordered(client) == ordered(local)
