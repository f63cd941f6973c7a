"""Vector `datatype` through the official client: with `uint8` or `float16` storage, stored and
query vectors take the type's values as in Qdrant's own engine (`qdrant-edge-py`): the same
hits, scores and returned vectors for every distance, for plain and multivectors, over REST and
gRPC on both backends. (With `uint8` and Cosine the vectors come back normalised: see
docs/compatibility.md.)"""

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
        if not (datatype == "uint8" and distance == "Cosine"):
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
