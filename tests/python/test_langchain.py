"""A real framework against the server: `langchain-qdrant`'s `QdrantVectorStore` in HYBRID mode
(named dense vector + sparse vector, prefetch of each fused with RRF), with deterministic
embeddings so nothing is downloaded. Every answer is compared with the same store built on the
client's local mode."""

import hashlib
import math

import pytest
from langchain_core.embeddings import Embeddings
from langchain_qdrant import QdrantVectorStore, RetrievalMode
from langchain_qdrant.sparse_embeddings import SparseEmbeddings, SparseVector

DIM = 32

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a fast auburn fox leaped over a sleepy hound",
    "vector databases store embeddings for similarity search",
    "qdrant supports dense sparse and multivector search",
    "hybrid search fuses keyword and semantic retrieval",
    "reciprocal rank fusion combines ranked lists",
    "the dog sleeps in the sun all afternoon",
    "bm25 weighs rare terms more than frequent ones",
    "rust gives memory safety without garbage collection",
    "raft keeps replicated logs consistent across nodes",
    "snapshots copy a collection to another machine",
    "payload filters narrow results to matching documents",
]
# Three variants of each: near-duplicates that score close to, but not the same as, each other.
TEXTS = [t + suffix for suffix in ("", " too", " as well") for t in TEXTS]


MORE = ["late arrivals about foxes and dogs", "one more note on sparse retrieval"]
ALL_TEXTS = {i: t for i, t in enumerate(TEXTS)} | {100: MORE[0], 101: MORE[1]}
ID_OF = {i: f"00000000-0000-0000-0000-{i:012d}" for i in range(len(TEXTS))} | {
    100: "00000000-0000-0000-0001-000000000000", 101: "00000000-0000-0000-0001-000000000001"}


def tokens(text):
    return text.lower().split()


def token_hash(token, salt=""):
    return int.from_bytes(hashlib.sha256((salt + token).encode()).digest()[:8], "little")


class HashEmbeddings(Embeddings):
    """Dense: each token adds a fixed pseudo-random direction; the sum is normalised."""

    def _embed(self, text):
        v = [0.0] * DIM
        for t in tokens(text):
            h = token_hash(t, "dense")
            for i in range(DIM):
                v[i] += ((h >> (i % 60)) & 7) - 3.5
        n = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / n for x in v]

    def embed_documents(self, texts):
        return [self._embed(t) for t in texts]

    def embed_query(self, text):
        return self._embed(text)


class HashSparseEmbeddings(SparseEmbeddings):
    """Sparse: a bag of words over hashed token ids, each token with its own weight. Documents
    also get a factor of their own, so no two documents tie on a query (the order of tied
    points is not defined, in Qdrant as here, and would make fusion ranks differ)."""

    def _embed(self, text, factor):
        weights = {}
        for t in tokens(text):
            i = token_hash(t) % 100_000
            weights[i] = weights.get(i, 0.0) + factor * (1.0 + (token_hash(t, "w") % 1000) / 1000)
        idx = sorted(weights)
        return SparseVector(indices=idx, values=[weights[i] for i in idx])

    def embed_documents(self, texts):
        return [self._embed(t, 1.0 + (token_hash(t, "doc") % 9973) / 10_000) for t in texts]

    def embed_query(self, text):
        return self._embed(text, 1.0)


def build(texts, metadatas, ids, **where):
    return QdrantVectorStore.from_texts(
        texts,
        embedding=HashEmbeddings(),
        sparse_embedding=HashSparseEmbeddings(),
        retrieval_mode=RetrievalMode.HYBRID,
        metadatas=metadatas,
        ids=ids,
        collection_name="lc_hybrid",
        force_recreate=True,
        **where,
    )


def answers(store, query, **kw):
    """(text, score) best first, each point's id checked against its text and metadata."""
    out = []
    for d, s in store.similarity_search_with_score(query, k=6, **kw):
        n = d.metadata["n"]
        assert d.metadata["_id"] == ID_OF[n] and ALL_TEXTS[n] == d.page_content, d
        out.append((d.page_content, round(s, 4)))
    return out


@pytest.mark.parametrize("grpc", [False, True], ids=["rest", "grpc"])
def test_langchain_hybrid_matches_local_mode(server, grpc):
    metadatas = [{"n": i, "group": i % 3} for i in range(len(TEXTS))]
    ids = [ID_OF[i] for i in range(len(TEXTS))]
    ours = build(TEXTS, metadatas, ids, url=server.url, grpc_port=server.grpc_port, prefer_grpc=grpc)
    ref = build(TEXTS, metadatas, ids, location=":memory:")

    info = ours.client.get_collection("lc_hybrid")
    assert info.points_count == len(TEXTS)
    assert set(info.config.params.sparse_vectors) == {"langchain-sparse"}

    from qdrant_client import models
    for query in ["sleepy fox", "hybrid keyword search", "raft consensus logs", "nothing matches zzz"]:
        got = answers(ours, query)
        want = answers(ref, query)
        assert got == want, query
        # With a payload filter, as LangChain users pass one.
        flt = models.Filter(must=[models.FieldCondition(key="metadata.group", match=models.MatchValue(value=1))])
        assert answers(ours, query, filter=flt) == answers(ref, query, filter=flt), query

    # add_texts on an existing store, then delete by id.
    for store in (ours, ref):
        store.add_texts(MORE, metadatas=[{"n": 100}, {"n": 101}], ids=[ID_OF[100], ID_OF[101]])
        store.delete(ids=[ids[0], ids[1]])
    for query in ["foxes and dogs", "sparse retrieval"]:
        assert answers(ours, query) == answers(ref, query), query
