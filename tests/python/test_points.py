"""Collections and points through the official client, compared with its local mode."""

import random
import uuid

import pytest
from conftest import refused
from qdrant_client import models


def both(clients, fn):
    return [fn(c) for c in clients]


def make_points(n, dim, seed=1):
    rnd = random.Random(seed)
    cities = ["Berlin", "London", "Paris", "Rome"]
    pts = []
    for i in range(n):
        pts.append(models.PointStruct(
            id=i if i % 5 else str(uuid.UUID(int=i + 1)),
            vector=[rnd.uniform(-1, 1) for _ in range(dim)],
            payload={"city": cities[i % 4], "n": i, "tags": [f"t{i % 3}", f"t{i % 7}"],
                     "price": round(rnd.uniform(0, 100), 2), "nested": {"a": i % 2}},
        ))
    return pts


@pytest.fixture()
def pair(client, local, request):
    name = "c_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    for c in (client, local):
        if c.collection_exists(name):
            c.delete_collection(name)
    return name, (client, local)


def assert_same_hits(a, b, exact=True):
    assert [p.id for p in a] == [p.id for p in b]
    for x, y in zip(a, b):
        assert abs(x.score - y.score) < 1e-4
        # Over gRPC the client reads an empty payload as None.
        assert (x.payload or {}) == (y.payload or {})


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.DOT,
                                      models.Distance.EUCLID, models.Distance.MANHATTAN])
def test_search_matches_local_mode(pair, distance):
    name, clients = pair
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=8, distance=distance))
        c.upsert(name, points=make_points(200, 8), wait=True)
    rnd = random.Random(7)
    flt = models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="Paris"))])
    for _ in range(5):
        q = [rnd.uniform(-1, 1) for _ in range(8)]
        server_hits, local_hits = both(clients, lambda c: c.query_points(name, query=q, limit=10, with_payload=True).points)
        assert_same_hits(server_hits, local_hits)
        s, l = both(clients, lambda c: c.query_points(name, query=q, limit=5, query_filter=flt, with_payload=True).points)
        assert_same_hits(s, l)
        assert all(p.payload["city"] == "Paris" for p in s)


def test_crud_roundtrip(pair):
    name, clients = pair
    server, local = clients
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
        c.upsert(name, points=make_points(30, 4), wait=True)
        c.upsert(name, points=models.Batch(ids=[100, 101], vectors=[[1, 2, 3, 4], [4, 3, 2, 1]],
                                            payloads=[{"city": "Oslo"}, {"city": "Bern"}]))
    assert server.count(name).count == local.count(name).count == 32
    s, l = both(clients, lambda c: c.retrieve(name, ids=[100, 3, 1], with_vectors=True))
    assert [p.id for p in s] == [p.id for p in l] or sorted(p.id for p in s) == sorted(p.id for p in l)
    for a in s:
        b = next(x for x in l if x.id == a.id)
        assert a.payload == b.payload
        assert a.vector == pytest.approx(b.vector, abs=1e-6)
    # payload operations
    for c in clients:
        c.set_payload(name, payload={"extra": 1}, points=[1, 2])
        c.overwrite_payload(name, payload={"only": True}, points=[3])
        c.delete_payload(name, keys=["tags"], points=[4])
        c.clear_payload(name, points_selector=[6])
        c.delete(name, points_selector=models.FilterSelector(filter=models.Filter(
            must=[models.FieldCondition(key="city", match=models.MatchValue(value="Rome"))])))
    s, l = both(clients, lambda c: c.scroll(name, limit=100, with_payload=True)[0])
    assert [p.id for p in s] == [p.id for p in l]
    assert [p.payload for p in s] == [p.payload for p in l]
    # count with filter
    flt = models.Filter(must=[models.FieldCondition(key="n", range=models.Range(gte=5, lt=20))])
    s, l = both(clients, lambda c: c.count(name, count_filter=flt).count)
    assert s == l


def test_scroll_pagination(pair):
    name, clients = pair
    server, _ = clients
    server.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    server.upsert(name, points=[models.PointStruct(id=i, vector=[i, 1]) for i in range(25)])
    seen, offset = [], None
    while True:
        page, offset = server.scroll(name, limit=10, offset=offset)
        seen.extend(p.id for p in page)
        if offset is None:
            break
    assert seen == list(range(25))


def test_errors_are_client_errors(pair):
    name, clients = pair
    server, _ = clients
    server.create_collection(name, vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    with refused(400) as e:
        server.upsert(name, points=[models.PointStruct(id=1, vector=[1, 2])])
    assert "dimension" in e.message
    with refused(409) as e:
        server.create_collection(name, vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    with refused(404) as e:
        server.get_collection("does_not_exist")


def test_named_vectors(pair):
    name, clients = pair
    for c in clients:
        c.create_collection(name, vectors_config={
            "image": models.VectorParams(size=3, distance=models.Distance.EUCLID),
            "text": models.VectorParams(size=2, distance=models.Distance.COSINE)})
        c.upsert(name, points=[
            models.PointStruct(id=1, vector={"image": [1, 0, 0], "text": [1, 0]}),
            models.PointStruct(id=2, vector={"image": [0, 1, 0]}),
            models.PointStruct(id=3, vector={"text": [0, 1]}),
        ])
    s, l = both(clients, lambda c: c.query_points(name, query=[1, 0.5, 0], using="image", limit=3).points)
    assert_same_hits(s, l)
    s, l = both(clients, lambda c: c.retrieve(name, ids=[1, 2, 3], with_vectors=["text"]))
    assert [p.vector for p in s] == [p.vector for p in l]


def test_aliases(pair):
    name, clients = pair
    server, _ = clients
    server.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    server.update_collection_aliases(change_aliases_operations=[
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=name + "_a"))])
    server.upsert(name + "_a", points=[models.PointStruct(id=1, vector=[1, 1])])
    assert server.count(name).count == 1
    aliases = server.get_collection_aliases(name).aliases
    assert [a.alias_name for a in aliases] == [name + "_a"]
    server.update_collection_aliases(change_aliases_operations=[
        models.RenameAliasOperation(rename_alias=models.RenameAlias(old_alias_name=name + "_a", new_alias_name=name + "_b"))])
    assert [a.alias_name for a in server.get_aliases().aliases if a.collection_name == name] == [name + "_b"]
    server.delete_collection(name)
    assert all(a.collection_name != name for a in server.get_aliases().aliases)


def test_collection_info_shape(pair):
    name, clients = pair
    server, _ = clients
    server.create_collection(name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE),
                             shard_number=2, hnsw_config=models.HnswConfigDiff(m=32, ef_construct=64))
    server.upsert(name, points=make_points(10, 4))
    info = server.get_collection(name)
    assert info.status == models.CollectionStatus.GREEN
    assert info.points_count == 10
    assert info.config.params.shard_number == 2
    assert info.config.hnsw_config.m == 32
    assert info.config.hnsw_config.ef_construct == 64
    server.update_collection(name, optimizers_config=models.OptimizersConfigDiff(indexing_threshold=5000))
    assert server.get_collection(name).config.optimizer_config.indexing_threshold == 5000


def test_query_forms_match_local_mode(pair):
    name, clients = pair
    for c in clients:
        c.create_collection(name, vectors_config={
            "dense": models.VectorParams(size=6, distance=models.Distance.COSINE),
            "other": models.VectorParams(size=6, distance=models.Distance.EUCLID)})
        pts = make_points(120, 6, seed=3)
        c.upsert(name, points=[models.PointStruct(id=p.id, vector={"dense": p.vector, "other": [x * 2 for x in p.vector]},
                                                  payload=p.payload) for p in pts])
    # order_by needs a range index, as in Qdrant.
    clients[0].create_payload_index(name, "price", models.PayloadSchemaType.FLOAT, wait=True)
    rnd = random.Random(11)
    q = [rnd.uniform(-1, 1) for _ in range(6)]
    cases = [
        dict(query=q, using="dense", limit=7, offset=2),
        dict(query=7, using="dense", limit=5),
        dict(query=models.RecommendQuery(recommend=models.RecommendInput(positive=[1, 2], negative=[3])), using="dense", limit=6),
        dict(query=models.RecommendQuery(recommend=models.RecommendInput(
            positive=[1, q], negative=[4], strategy=models.RecommendStrategy.BEST_SCORE)), using="other", limit=6),
        dict(query=models.RecommendQuery(recommend=models.RecommendInput(
            positive=[1], negative=[8], strategy=models.RecommendStrategy.SUM_SCORES)), using="dense", limit=6),
        dict(prefetch=[models.Prefetch(query=q, using="dense", limit=20), models.Prefetch(query=q, using="other", limit=20)],
             query=models.FusionQuery(fusion=models.Fusion.RRF), limit=10),
        dict(prefetch=[models.Prefetch(query=q, using="dense", limit=20), models.Prefetch(query=[0.1] * 6, using="other", limit=20)],
             query=models.FusionQuery(fusion=models.Fusion.DBSF), limit=10),
        dict(prefetch=models.Prefetch(query=q, using="other", limit=30), query=q, using="dense", limit=5),
        dict(query=q, using="dense", limit=10, score_threshold=0.2),
        dict(query=q, using="other", limit=10, score_threshold=2.5),
        dict(query=q, using="dense", limit=5, query_filter=models.Filter(
            must=[models.FieldCondition(key="price", range=models.Range(lt=50))],
            must_not=[models.FieldCondition(key="city", match=models.MatchAny(any=["Rome", "Oslo"]))])),
        dict(query=models.OrderByQuery(order_by=models.OrderBy(key="price", direction=models.Direction.DESC)), limit=5),
    ]
    for case in cases:
        s, l = both(clients, lambda c: c.query_points(name, with_payload=True, **case).points)
        assert [p.id for p in s] == [p.id for p in l], case
        for x, y in zip(s, l):
            assert abs(x.score - y.score) < 1e-4, case
            assert x.payload == y.payload


def test_recommend_and_batches(pair):
    name, clients = pair
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))
        c.upsert(name, points=make_points(40, 4, seed=5))
    clients[0].create_payload_index(name, "n", models.PayloadSchemaType.INTEGER, wait=True)
    reqs = [models.QueryRequest(query=[0.5, 0.1, -0.2, 0.3], limit=3),
            models.QueryRequest(query=models.RecommendQuery(recommend=models.RecommendInput(positive=[1])), limit=4)]
    s, l = both(clients, lambda c: c.query_batch_points(name, requests=reqs))
    assert [[p.id for p in r.points] for r in s] == [[p.id for p in r.points] for r in l]
    s, l = both(clients, lambda c: c.scroll(name, limit=5, order_by=models.OrderBy(key="n", direction="desc"))[0])
    assert [p.id for p in s] == [p.id for p in l]


def test_vectors_batch_and_collection_ops(pair):
    name, clients = pair
    for c in clients:
        c.create_collection(name, vectors_config={
            "a": models.VectorParams(size=3, distance=models.Distance.DOT),
            "b": models.VectorParams(size=2, distance=models.Distance.EUCLID)})
        c.upsert(name, points=[models.PointStruct(id=i, vector={"a": [i, 1, 0], "b": [0, i]}, payload={"n": i})
                               for i in range(1, 6)])
        c.update_vectors(name, points=[models.PointVectors(id=2, vector={"a": [9, 9, 9]})])
        c.delete_vectors(name, vectors=["b"], points=[3])
        c.batch_update_points(name, update_operations=[
            models.UpsertOperation(upsert=models.PointsList(points=[models.PointStruct(id=10, vector={"a": [1, 1, 1]})])),
            models.SetPayloadOperation(set_payload=models.SetPayload(payload={"x": 1}, points=[10, 1])),
            models.DeleteOperation(delete=models.PointIdsList(points=[5])),
            models.DeletePayloadOperation(delete_payload=models.DeletePayload(keys=["n"], points=[4])),
        ])
        c.delete_payload(name, keys=["n"], points=models.FilterSelector(filter=models.Filter(
            must=[models.FieldCondition(key="n", range=models.Range(gte=2, lte=2))])))
    s, l = both(clients, lambda c: c.retrieve(name, ids=[1, 2, 3, 4, 5, 10], with_vectors=True, with_payload=True))
    assert [p.id for p in s] == [p.id for p in l]
    for a, b in zip(s, l):
        assert a.payload == b.payload, a.id
        assert a.vector.keys() == b.vector.keys(), a.id
        for k in a.vector:
            assert a.vector[k] == pytest.approx(b.vector[k], abs=1e-6)
    server, _ = clients
    assert server.collection_exists(name)
    assert name in [c.name for c in server.get_collections().collections]
    server.update_collection(name, vectors_config={"a": models.VectorParamsDiff(
        hnsw_config=models.HnswConfigDiff(m=8), on_disk=False)})
    assert server.get_collection(name).config.params.vectors["a"].hnsw_config.m == 8
    server.delete_collection(name)
    assert not server.collection_exists(name)


def test_update_mode_and_update_filter_match_local_mode(pair):
    name, clients = pair
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
        c.upsert(name, points=[models.PointStruct(id=i, vector=[1.0, float(i)], payload={"v": 1, "i": i})
                               for i in range(4)], wait=True)
        # insert_only: existing ids are left alone, new ones are written.
        c.upsert(name, points=[models.PointStruct(id=i, vector=[2.0, 0.0], payload={"v": 2, "i": i})
                               for i in (1, 5)], update_mode=models.UpdateMode.INSERT_ONLY, wait=True)
        # update_only: missing ids are skipped.
        c.upsert(name, points=[models.PointStruct(id=i, vector=[3.0, 0.0], payload={"v": 3, "i": i})
                               for i in (2, 7)], update_mode=models.UpdateMode.UPDATE_ONLY, wait=True)
        # update_filter: only existing points matching it are replaced; new points are written.
        c.upsert(name, points=[models.PointStruct(id=i, vector=[4.0, 0.0], payload={"v": 4, "i": i})
                               for i in (0, 3, 9)],
                 update_filter=models.Filter(must=[models.FieldCondition(key="i", match=models.MatchValue(value=3))]),
                 wait=True)
        c.update_vectors(name, points=[models.PointVectors(id=i, vector=[5.0, 5.0]) for i in (0, 1)],
                         update_filter=models.Filter(must=[models.FieldCondition(key="v", match=models.MatchValue(value=1))]),
                         wait=True)
    s, l = both(clients, lambda c: sorted(c.scroll(name, limit=100, with_vectors=True)[0], key=lambda r: r.id))
    assert [(r.id, r.payload, r.vector) for r in s] == [(r.id, r.payload, r.vector) for r in l]


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID])
def test_discover_and_context_match_local_mode(pair, distance):
    name, clients = pair
    pts = make_points(120, 6, seed=7)
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=6, distance=distance))
        c.upsert(name, points=pts, wait=True)
    rnd = random.Random(3)
    vec = lambda: [rnd.uniform(-1, 1) for _ in range(6)]  # noqa: E731
    pairs = [models.ContextPair(positive=vec(), negative=vec()) for _ in range(3)]
    id_pairs = [models.ContextPair(positive=1, negative=2), models.ContextPair(positive=3, negative=vec())]
    queries = [
        models.DiscoverQuery(discover=models.DiscoverInput(target=vec(), context=pairs)),
        models.DiscoverQuery(discover=models.DiscoverInput(target=4, context=id_pairs)),
        models.ContextQuery(context=pairs),
        models.ContextQuery(context=id_pairs),
    ]
    flt = models.Filter(must_not=[models.FieldCondition(key="city", match=models.MatchValue(value="Rome"))])
    server, local = clients
    for q in queries:
        for f in (None, flt):
            got = server.query_points(name, query=q, query_filter=f, limit=10).points
            want = local.query_points(name, query=q, query_filter=f, limit=10).points
            every = {p.id: p.score for p in local.query_points(name, query=q, query_filter=f, limit=200).points}
            # Context scores tie often (0 for every point inside all positive zones), and ties
            # have no defined order: compare the score sequence and each hit's own score.
            assert len(got) == len(want)
            assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(got, want))
            for p in got:
                assert abs(p.score - every[p.id]) < 1e-4, (p.id, p.score, every.get(p.id))


def test_legacy_discover_endpoints_answer_like_the_query_api(pair, server):
    import httpx
    name, (client, _) = pair
    client.create_collection(name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    client.upsert(name, points=make_points(60, 4, seed=11), wait=True)
    body = {"target": 6, "context": [{"positive": 1, "negative": [0.1, -0.2, 0.3, 0.4]}], "limit": 5}
    legacy = httpx.post(f"{server.url}/collections/{name}/points/discover", json=body, timeout=30).json()["result"]
    q = models.DiscoverQuery(discover=models.DiscoverInput(
        target=6, context=[models.ContextPair(positive=1, negative=[0.1, -0.2, 0.3, 0.4])]))
    via_query = client.query_points(name, query=q, limit=5).points
    assert [p["id"] for p in legacy] == [p.id for p in via_query]
    batch = httpx.post(f"{server.url}/collections/{name}/points/discover/batch",
                       json={"searches": [body, {**body, "target": None}]}, timeout=30).json()["result"]
    assert [p["id"] for p in batch[0]] == [p["id"] for p in legacy]
    assert len(batch[1]) == 5


def test_search_matrix_matches_local_mode(pair):
    """With the whole collection as the sample, the matrix is deterministic: compare it."""
    name, clients = pair
    pts = make_points(25, 5, seed=5)
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=5, distance=models.Distance.COSINE))
        c.upsert(name, points=pts, wait=True)
    s, l = both(clients, lambda c: c.search_matrix_pairs(name, sample=25, limit=3).pairs)
    key = lambda p: (str(p.a), -round(p.score, 4), str(p.b))  # noqa: E731
    got, want = sorted(s, key=key), sorted(l, key=key)
    assert [(str(p.a), str(p.b)) for p in got] == [(str(p.a), str(p.b)) for p in want]
    assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(got, want))
    s, l = both(clients, lambda c: c.search_matrix_offsets(name, sample=25, limit=2))
    assert sorted(map(str, s.ids)) == sorted(map(str, l.ids))
    assert len(s.scores) == len(l.scores) == 50
    assert sorted(round(x, 4) for x in s.scores) == sorted(round(x, 4) for x in l.scores)
    # A smaller sample: every pair stays inside it, `limit` neighbours each.
    s = clients[0].search_matrix_offsets(name, sample=6, limit=2)
    assert len(s.ids) == 6 and len(s.scores) == 12
    assert all(r != c for r, c in zip(s.offsets_row, s.offsets_col))


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID])
def test_mmr_matches_local_mode(pair, distance):
    name, clients = pair
    pts = make_points(150, 8, seed=13)
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=8, distance=distance))
        c.upsert(name, points=pts, wait=True)
    rnd = random.Random(17)
    for diversity, candidates in ((0.5, 40), (0.9, 80), (0.0, 20), (1.0, None)):
        q = models.NearestQuery(nearest=[rnd.uniform(-1, 1) for _ in range(8)],
                                mmr=models.Mmr(diversity=diversity, candidates_limit=candidates))
        s, l = both(clients, lambda c: c.query_points(name, query=q, limit=10, offset=2, with_payload=True).points)
        assert_same_hits(s, l)


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID])
def test_relevance_feedback_matches_local_mode(pair, distance):
    name, clients = pair
    pts = make_points(100, 6, seed=21)
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=6, distance=distance))
        c.upsert(name, points=pts, wait=True)
    rnd = random.Random(23)
    vec = lambda: [rnd.uniform(-1, 1) for _ in range(6)]  # noqa: E731
    feedback = [models.FeedbackItem(example=1, score=0.9), models.FeedbackItem(example=vec(), score=0.2),
                models.FeedbackItem(example=3, score=0.5)]
    q = models.RelevanceFeedbackQuery(relevance_feedback=models.RelevanceFeedbackInput(
        target=vec(), feedback=feedback,
        strategy=models.NaiveFeedbackStrategy(naive=models.NaiveFeedbackStrategyParams(a=1.0, b=1.5, c=0.8))))
    s, l = both(clients, lambda c: c.query_points(name, query=q, limit=10, with_payload=True).points)
    assert_same_hits(s, l)


def formula_cases(rnd):
    """Formula expressions of every kind, over the payload of make_points (plus a geo point and
    a datetime per point), with the two prefetch scores."""
    m = models
    return [
        m.SumExpression(sum=["$score", m.MultExpression(mult=[0.01, "price"])]),
        m.SumExpression(sum=["$score[0]", m.MultExpression(mult=[0.5, "$score[1]"]),
                             m.FieldCondition(key="city", match=m.MatchValue(value="Paris"))]),
        m.MultExpression(mult=["$score", m.DivExpression(div=m.DivParams(left="n", right=m.SumExpression(sum=["nested.a", 1])))]),
        m.DivExpression(div=m.DivParams(left="price", right="nested.a", by_zero_default=-1.0)),
        m.SumExpression(sum=[m.SqrtExpression(sqrt="price"), m.LnExpression(ln=m.SumExpression(sum=["n", 1])),
                             m.Log10Expression(log10=m.SumExpression(sum=["n", 2])), m.AbsExpression(abs="$score"),
                             m.NegExpression(neg=m.PowExpression(pow=m.PowParams(base="$score", exponent=2)))]),
        m.ExpExpression(exp="$score"),
        m.MaxExpression(max=["$score[0]", "$score[1]", 0.1]),
        m.MinExpression(min=["$score[0]", "$score[1]"]),
        m.SumExpression(sum=["$score", m.GaussDecayExpression(gauss_decay=m.DecayParamsExpression(x="price", target=50, scale=20, midpoint=0.3))]),
        m.SumExpression(sum=["$score", m.ExpDecayExpression(exp_decay=m.DecayParamsExpression(x="n", scale=30))]),
        m.SumExpression(sum=["$score", m.LinDecayExpression(lin_decay=m.DecayParamsExpression(x="price", target=10, scale=200, midpoint=0.2))]),
        m.SumExpression(sum=["$score", m.ExpDecayExpression(exp_decay=m.DecayParamsExpression(
            x=m.GeoDistance(geo_distance=m.GeoDistanceParams(origin=m.GeoPoint(lat=52.52, lon=13.40), to="loc")), scale=500_000))]),
        m.SumExpression(sum=["$score", m.LinDecayExpression(lin_decay=m.DecayParamsExpression(
            x=m.DatetimeKeyExpression(datetime_key="at"), target=m.DatetimeExpression(datetime="2024-06-01T00:00:00Z"),
            scale=86_400 * 30))]),
        m.SumExpression(sum=["$score", m.MultExpression(mult=["missing", 2])]),
        m.SumExpression(sum=["$score[2]", m.HasIdCondition(has_id=[1, 2, 3])]),
    ]


def test_formula_matches_local_mode(pair):
    name, clients = pair
    pts = make_points(120, 6, seed=31)
    rnd = random.Random(37)
    for p in pts:
        p.payload["loc"] = {"lat": rnd.uniform(40, 60), "lon": rnd.uniform(-5, 30)}
        p.payload["at"] = f"2024-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}T{rnd.randint(0, 23):02d}:00:00Z"
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=6, distance=models.Distance.DOT))
        c.upsert(name, points=pts, wait=True)
    vec = lambda: [rnd.uniform(-1, 1) for _ in range(6)]  # noqa: E731
    for i, expr in enumerate(formula_cases(rnd)):
        prefetch = [models.Prefetch(query=vec(), limit=30), models.Prefetch(query=vec(), limit=20)]
        q = models.FormulaQuery(formula=expr, defaults={"missing": 1.5, "$score[2]": 0.25})
        s, l = both(clients, lambda c: c.query_points(name, prefetch=prefetch, query=q, limit=10, offset=1,
                                                      with_payload=True).points)
        assert_same_hits(s, l)
    # Errors: a missing payload value without a default, a division by zero, no prefetch.
    for bad in [models.FormulaQuery(formula="missing_too"),
                models.FormulaQuery(formula=models.DivExpression(div=models.DivParams(left=1, right="nested.a")))]:
        with refused(400):
            clients[0].query_points(name, prefetch=[models.Prefetch(query=vec(), limit=50)], query=bad, limit=50)
    with refused(400):
        clients[0].query_points(name, query=models.FormulaQuery(formula="$score"), limit=5)


def test_payload_floats_round_trip_exactly(client, request):
    name = "floats_" + request.node.name.replace("[", "_").replace("]", "").replace("-", "_")
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    values = [15.807196775153255, 0.1, 1e-300, 2.2250738585072014e-308, 123456789.12345679, -0.30000000000000004]
    client.upsert(name, points=[models.PointStruct(id=1, vector=[1, 0], payload={"x": values})], wait=True)
    assert client.retrieve(name, [1], with_payload=True)[0].payload["x"] == values
