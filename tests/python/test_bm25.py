"""Server-side BM25 (`models.Document(model="qdrant/bm25")`) through the official client: the
sparse vectors the server stores and queries with are compared with Qdrant's own engine
(`qdrant-edge-py`), and search results with scores computed from those vectors."""

import math

import httpx
import pytest
from qdrant_client import models

qe = pytest.importorskip("qdrant_edge")

TEXTS = [
    "The quick brown fox jumps over the lazy dog",
    "A fast, brown fox leaped over two lazy dogs!",
    "Vector databases store embeddings for similarity search.",
    "Searching vectors: HNSW graphs and inverted indexes for sparse vectors",
    "Café au lait et croissants — naïve résumé of the morning",
    "Running runners ran; the runner runs daily.",
    "",
    "Qdrant 1.19 supports hybrid search with BM25 and dense vectors",
]
OPTIONS = [None, {"k": 1.5, "b": 0.5, "avg_len": 10}, {"language": "english", "lowercase": False},
           {"ascii_folding": True, "stopwords": {"custom": ["fox", "dog"]}}, {"language": "french"}]


def edge_config(options):
    o = dict(options or {})
    kw = {k: o[k] for k in ("k", "b", "avg_len", "language", "lowercase", "ascii_folding") if k in o}
    if "stopwords" in o:
        kw["stopwords"] = qe.StopwordsSet(custom=set(o["stopwords"]["custom"]))
    return qe.Bm25Config(**kw)


@pytest.mark.parametrize("opt", range(len(OPTIONS)))
def test_stored_vectors_equal_qdrants_bm25(client, server, opt):
    options = OPTIONS[opt]
    name = f"bm25_{opt}"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config={},
                             sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)})
    client.upsert(name, points=[
        models.PointStruct(id=i, vector={"bm25": models.Document(text=t, model="qdrant/bm25", options=options)})
        for i, t in enumerate(TEXTS)], wait=True)
    model = qe.Bm25(edge_config(options))
    for p in client.retrieve(name, ids=list(range(len(TEXTS))), with_vectors=True):
        want = model.embed_document(TEXTS[p.id])
        got = p.vector.get("bm25", models.SparseVector(indices=[], values=[]))
        pairs = sorted(zip(want.indices, want.values))
        assert got.indices == [i for i, _ in pairs], TEXTS[p.id]
        assert got.values == pytest.approx([v for _, v in pairs], rel=1e-6)


def test_bm25_query_scores_are_idf_weighted_dot_products(client):
    name = "bm25_query"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config={},
                             sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)})
    client.upsert(name, points=[
        models.PointStruct(id=i, vector={"bm25": models.Document(text=t, model="qdrant/bm25")})
        for i, t in enumerate(TEXTS)], wait=True)
    model = qe.Bm25(qe.Bm25Config())
    docs = {i: model.embed_document(t) for i, t in enumerate(TEXTS)}
    n = sum(1 for d in docs.values())  # every point holds the vector (an empty text holds an empty one)
    for text in ["brown fox", "lazy dogs running", "vector search", "croissants"]:
        q = model.embed_query(text)
        expected = {}
        for i, d in docs.items():
            dv = dict(zip(d.indices, d.values))
            shared = [idx for idx in q.indices if idx in dv]
            if not shared:
                continue
            score = 0.0
            for idx, w in zip(q.indices, q.values):
                if idx in dv:
                    df = sum(1 for dd in docs.values() if idx in dd.indices)
                    score += w * math.log((n - df + 0.5) / (df + 0.5) + 1) * dv[idx]
            expected[i] = score
        hits = client.query_points(name, query=models.Document(text=text, model="qdrant/bm25"), using="bm25",
                                   limit=10).points
        assert {p.id for p in hits} == set(expected), text
        for p in hits:
            assert p.score == pytest.approx(expected[p.id], rel=1e-4), text


def test_unknown_model_is_a_clear_400(client, server):
    name = "bm25_bad"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config={}, sparse_vectors_config={"s": models.SparseVectorParams()})
    r = httpx.put(f"{server.url}/collections/{name}/points?wait=true", json={"points": [
        {"id": 1, "vector": {"s": {"text": "hello", "model": "sentence-transformers/all-MiniLM-L6-v2"}}}]})
    assert r.status_code == 400
    assert "no inference provider" in r.json()["status"]["error"]
    r = httpx.put(f"{server.url}/collections/{name}/points?wait=true", json={"points": [
        {"id": 1, "vector": {"s": {"text": "hello", "model": "qdrant/bm25", "options": {"k": -1}}}}]})
    assert r.status_code == 400
    assert "options.k" in r.json()["status"]["error"]
