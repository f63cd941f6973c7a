"""Vector `datatype` through the official client: with `uint8` or `float16` storage, stored and
query vectors take the type's values as in Qdrant's own engine (`qdrant-edge-py`): the same
hits, scores and returned vectors for every distance, for plain and multivectors, over REST and
gRPC on both backends; with `uint8` and Cosine the vectors come back as the whole numbers
stored, as from Qdrant."""

import random
import tempfile

import pytest
from qdrant_client import models

qe = pytest.importorskip("qdrant_edge")

DIM = 6
DISTANCES = ["Cosine", "Dot", "Euclid", "Manhattan"]
DATATYPES = ["uint8", "float16"]


def vectors(rnd, n):
    # Fractions, negatives and values past 255 (uint8 casts them), small and large magnitudes.
    return [[rnd.choice([rnd.uniform(-5, 300), rnd.uniform(0, 1), rnd.uniform(0, 1000)]) for _ in range(DIM)]
            for _ in range(n)]


def edge_shard(distance, datatype, points):
    params = qe.EdgeVectorParams(size=DIM, distance=getattr(qe.Distance, distance),
                                 datatype={"uint8": qe.VectorStorageDatatype.Uint8,
                                           "float16": qe.VectorStorageDatatype.Float16}[datatype])
    shard = qe.EdgeShard.create(tempfile.mkdtemp(prefix="edge-dt-"), qe.EdgeConfig(vectors=params))
    shard.update(qe.UpdateOperation.upsert_points([qe.Point(i, v, {}) for i, v in enumerate(points)]))
    return shard


def close(a, b, rel=2e-5):
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("datatype", DATATYPES)
def test_values_scores_and_vectors_match_qdrants_engine(client, distance, datatype):
    rnd = random.Random(f"{distance}-{datatype}")
    points = vectors(rnd, 40)
    name = f"dt_{distance}_{datatype}".lower()
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(
        size=DIM, distance=getattr(models.Distance, distance.upper()), datatype=models.Datatype(datatype)))
    client.upsert(name, points=[models.PointStruct(id=i, vector=v) for i, v in enumerate(points)], wait=True)
    shard = edge_shard(distance, datatype, points)
    for q in vectors(rnd, 5):
        want = shard.query(qe.QueryRequest(query=qe.Query.Nearest(q), limit=10, with_vector=True))
        got = client.query_points(name, query=q, limit=10, with_vectors=True,
                                  search_params=models.SearchParams(exact=True)).points
        # The same scores in the same order (saturated uint8 values tie often, so tied points
        # may come in another order), and the same vector for every point both return.
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert close(g.score, w.score), (q, g.score, w.score)
        theirs = {p.id: p.vector for p in want}
        common = [p for p in got if p.id in theirs]
        assert len(common) >= len(got) // 2
        for p in common:
            assert all(close(x, y, 1e-6) for x, y in zip(p.vector, theirs[p.id])), (p.vector, theirs[p.id])
    client.delete_collection(name)


def test_multivectors_take_the_datatype(client):
    rnd = random.Random(7)
    name = "dt_multi"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config={"m": models.VectorParams(
        size=DIM, distance=models.Distance.DOT, datatype=models.Datatype.FLOAT16,
        multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM))})
    rows = vectors(rnd, 3)
    client.upsert(name, points=[models.PointStruct(id=1, vector={"m": rows})], wait=True)
    got = client.retrieve(name, [1], with_vectors=True)[0].vector["m"]
    params = qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Dot, datatype=qe.VectorStorageDatatype.Float16,
                                 multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim))
    shard = qe.EdgeShard.create(tempfile.mkdtemp(prefix="edge-dt-"), qe.EdgeConfig(vectors={"m": params}))
    shard.update(qe.UpdateOperation.upsert_points([qe.Point(1, {"m": rows}, {})]))
    want = shard.retrieve([1], with_payload=False, with_vector=True)[0].vector["m"]
    assert got == want
    client.delete_collection(name)


def test_uint8_cosine_examples_by_id_and_multivectors_match_qdrants_engine(client):
    """Cosine `uint8` points are stored as whole numbers; a point named by id in a query is
    used as its stored vector, which Qdrant's engine then treats as any query vector."""
    rnd = random.Random(11)
    points = vectors(rnd, 30)
    name = "dt_cosine_u8_ids"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(
        size=DIM, distance=models.Distance.COSINE, datatype=models.Datatype.UINT8))
    client.upsert(name, points=[models.PointStruct(id=i, vector=v) for i, v in enumerate(points)], wait=True)
    shard = edge_shard("Cosine", "uint8", points)
    stored = {r.id: r.vector for r in shard.retrieve(list(range(30)), with_payload=False, with_vector=True)}
    assert all(float(x).is_integer() for v in stored.values() for x in v)
    exact = models.SearchParams(exact=True)

    def same(got, want):
        assert [round(p.score, 5) for p in got] == [round(p.score, 5) for p in want]

    # Nearest to a stored point (Qdrant leaves the point itself out).
    got = client.query_points(name, query=3, limit=5, search_params=exact).points
    want = [p for p in shard.query(qe.QueryRequest(query=qe.Query.Nearest(stored[3]), limit=6)) if p.id != 3][:5]
    same(got, want)
    # best_score over examples given by id.
    got = client.query_points(name, query=models.RecommendQuery(recommend=models.RecommendInput(
        positive=[1, 2], negative=[5], strategy=models.RecommendStrategy.BEST_SCORE)),
        limit=5, search_params=exact).points
    rec = qe.Query.RecommendBestScore(qe.RecommendQuery([stored[1], stored[2]], [stored[5]]))
    want = [p for p in shard.query(qe.QueryRequest(query=rec, limit=8)) if p.id not in (1, 2, 5)][:5]
    same(got, want)
    client.delete_collection(name)

    # Multivectors: rows stored as whole numbers, max-sim over their unit vectors.
    name = "dt_cosine_u8_multi"
    if client.collection_exists(name):
        client.delete_collection(name)
    params = models.VectorParams(size=DIM, distance=models.Distance.COSINE, datatype=models.Datatype.UINT8,
                                 multivector_config=models.MultiVectorConfig(
                                     comparator=models.MultiVectorComparator.MAX_SIM))
    client.create_collection(name, vectors_config={"m": params})
    multis = [vectors(rnd, 1 + i % 3) for i in range(12)]
    client.upsert(name, points=[models.PointStruct(id=i, vector={"m": m}) for i, m in enumerate(multis)], wait=True)
    eparams = qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine, datatype=qe.VectorStorageDatatype.Uint8,
                                  multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim))
    eshard = qe.EdgeShard.create(tempfile.mkdtemp(prefix="edge-dt-"), qe.EdgeConfig(vectors={"m": eparams}))
    eshard.update(qe.UpdateOperation.upsert_points([qe.Point(i, {"m": m}, {}) for i, m in enumerate(multis)]))
    got = {r.id: r.vector["m"] for r in client.retrieve(name, list(range(12)), with_vectors=True)}
    want = {r.id: r.vector["m"] for r in eshard.retrieve(list(range(12)), with_payload=False, with_vector=True)}
    assert got == want
    q = vectors(rnd, 2)
    hits = client.query_points(name, query=q, using="m", limit=12, search_params=exact).points
    theirs = eshard.query(qe.QueryRequest(query=qe.Query.Nearest(q, using="m"), limit=12))
    assert all(close(g.score, w.score) for g, w in zip(hits, theirs)) and len(hits) == len(theirs) == 12
    client.delete_collection(name)
