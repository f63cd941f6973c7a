"""Full-text indexes through the official client: a `text`, `text_any` or `phrase` match on a field
with a text index must select exactly the points Qdrant's own engine (`qdrant-edge-py`) selects
with the same index settings: tokenizers, lowercasing, ASCII folding, stopwords, stemmers, token
length bounds and phrase matching, over strings and arrays of strings. Reads, counts and writes
by filter are checked, over REST and gRPC on both backends."""

import random
import tempfile

import pytest
from qdrant_client import models

from conftest import refused

qe = pytest.importorskip("qdrant_edge")

WORDS = ["quick", "Quickly", "brown", "browning", "fox", "foxes", "the", "The", "a", "of", "run", "running",
         "runners", "ran", "café", "cafe", "naïve", "Ünïcödé", "ab", "abc", "abcd", "dog", "dogs", "lazy",
         "x", "東京都", "hello", "HELLO", "jump-start", "e-mail"]
FIXED = ["The quick brown fox", "quick-brown fox jumps", "Brown foxes", ["quick lazy", "brown dog"],
         "café naïve", "the", "a b c", "running runners ran", 17, "Hello World hello", ["a quick", "brown b"],
         "quick the brown", "x quick x brown", "ab abc abcd", ["quick", 5, "brown"], "", None, {"t": "nested"}]

# (name, server field_schema, edge params)
SETTINGS = [
    ("plain", models.TextIndexParams(type="text"), lambda: qe.TextIndexParams()),
    ("phrase", models.TextIndexParams(type="text", phrase_matching=True),
     lambda: qe.TextIndexParams(phrase_matching=True)),
    ("prefix", models.TextIndexParams(type="text", tokenizer=models.TokenizerType.PREFIX, min_token_len=2,
                                      max_token_len=4, phrase_matching=True),
     lambda: qe.TextIndexParams(tokenizer=qe.TokenizerType.Prefix, min_token_len=2, max_token_len=4,
                                phrase_matching=True)),
    ("prefix_stop", models.TextIndexParams(type="text", tokenizer=models.TokenizerType.PREFIX,
                                           stopwords=models.Language.ENGLISH, phrase_matching=True),
     lambda: qe.TextIndexParams(tokenizer=qe.TokenizerType.Prefix, stopwords=qe.Language.English,
                                phrase_matching=True)),
    ("stop_stem", models.TextIndexParams(type="text", stopwords=models.Language.ENGLISH, phrase_matching=True,
                                         stemmer=models.SnowballParams(type=models.Snowball.SNOWBALL,
                                                                       language=models.SnowballLanguage.ENGLISH)),
     lambda: qe.TextIndexParams(stopwords=qe.Language.English, phrase_matching=True,
                                stemmer=qe.SnowballParams(qe.SnowballLanguage.English))),
    ("custom_stop", models.TextIndexParams(type="text", phrase_matching=True,
                                           stopwords=models.StopwordsSet(custom=["x", "The"])),
     lambda: qe.TextIndexParams(phrase_matching=True, stopwords=qe.StopwordsSet(custom={"x", "The"}))),
    ("whitespace_case", models.TextIndexParams(type="text", tokenizer=models.TokenizerType.WHITESPACE,
                                               lowercase=False, phrase_matching=True),
     lambda: qe.TextIndexParams(tokenizer=qe.TokenizerType.Whitespace, lowercase=False, phrase_matching=True)),
    ("fold_len", models.TextIndexParams(type="text", ascii_folding=True, min_token_len=3, max_token_len=5,
                                        phrase_matching=True),
     lambda: qe.TextIndexParams(ascii_folding=True, min_token_len=3, max_token_len=5, phrase_matching=True)),
]


def corpus():
    rnd = random.Random(7)
    docs = list(FIXED)
    for _ in range(150):
        words = [rnd.choice(WORDS) for _ in range(rnd.randint(1, 6))]
        if rnd.random() < 0.2:
            docs.append([" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2:])])
        else:
            docs.append(" ".join(words))
    return docs


def queries():
    rnd = random.Random(11)
    out = ["quick brown", "brown quick", "fox", "Fox", "qui", "quickly", "the", "the fox", "", "cafe", "café",
           "run", "running", "brown dog", "quick bro", "qui bro", "ab ab", "ab abcd", "hello hello", "b c",
           "quick x brown", "東京", "unicode", "ÜNÏCÖDÉ"]
    out += [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 3))) for _ in range(25)]
    return out


def edge_shard(params, docs):
    shard = qe.EdgeShard.create(tempfile.mkdtemp(prefix="edge-text-"),
                                qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=2, distance=qe.Distance.Dot)))
    shard.update(qe.UpdateOperation.create_field_index("t", params))
    shard.update(qe.UpdateOperation.upsert_points(
        [qe.Point(i, [1.0, 0.0], {"t": d} if d is not None else {}) for i, d in enumerate(docs)]))
    return shard


def edge_ids(shard, match):
    flt = qe.Filter(must=[qe.FieldCondition(key="t", match=match)])
    got = shard.scroll(qe.ScrollRequest(filter=flt, limit=10_000))
    return sorted(p.id for p in (got[0] if isinstance(got, tuple) else got))


MATCHES = [("text", models.MatchText, qe.MatchText), ("text_any", models.MatchTextAny, qe.MatchTextAny),
           ("phrase", models.MatchPhrase, qe.MatchPhrase)]


def load(client, name, schema, docs):
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.create_payload_index(name, "t", field_schema=schema, wait=True)
    client.upsert(name, points=[models.PointStruct(id=i, vector=[1.0, 0.0], payload={"t": d} if d is not None else {})
                                for i, d in enumerate(docs)], wait=True)


@pytest.mark.parametrize("setting", [s[0] for s in SETTINGS])
def test_text_matches_select_what_qdrants_index_selects(client, setting):
    _, schema, edge_params = next(s for s in SETTINGS if s[0] == setting)
    docs = corpus()
    name = f"text_{setting}"
    load(client, name, schema, docs)
    shard = edge_shard(edge_params(), docs)
    mismatches = []
    for q in queries():
        for kind, ours, theirs in MATCHES:
            want = edge_ids(shard, theirs(q))
            flt = models.Filter(must=[models.FieldCondition(key="t", match=ours(**{kind: q}))])
            got = sorted(p.id for p in client.scroll(name, scroll_filter=flt, limit=10_000)[0])
            if got != want:
                mismatches.append((kind, q, got, want))
            elif kind == "text":
                assert client.count(name, count_filter=flt, exact=True).count == len(want)
    assert not mismatches, mismatches[:5]


def test_writes_by_text_filter_use_the_index(client):
    docs = ["running dogs", "the runner", "cats sleep", ["dog runs", "x"]]
    name = "text_writes"
    load(client, name, models.TextIndexParams(
        type="text", stemmer=models.SnowballParams(type=models.Snowball.SNOWBALL, language=models.SnowballLanguage.ENGLISH)), docs)
    run = models.Filter(must=[models.FieldCondition(key="t", match=models.MatchText(text="run"))])
    client.set_payload(name, payload={"hit": True}, points=run, wait=True)
    hit = models.Filter(must=[models.FieldCondition(key="hit", match=models.MatchValue(value=True))])
    assert sorted(p.id for p in client.scroll(name, scroll_filter=hit)[0]) == [0, 3]
    client.delete(name, points_selector=models.FilterSelector(filter=run), wait=True)
    assert sorted(p.id for p in client.scroll(name)[0]) == [1, 2]
    # The same match under must_not, and inside a search.
    not_run = models.Filter(must_not=[models.FieldCondition(key="t", match=models.MatchText(text="runner"))])
    assert [p.id for p in client.query_points(name, query=[1.0, 0.0], query_filter=not_run).points] == [2]


def test_a_field_without_a_text_index_keeps_word_matching(client):
    name = "text_unindexed"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.upsert(name, points=[models.PointStruct(id=1, vector=[1.0, 0.0], payload={"t": "Running dogs"})], wait=True)
    flt = lambda text: models.Filter(must=[models.FieldCondition(key="t", match=models.MatchText(text=text))])
    assert client.count(name, count_filter=flt("running"), exact=True).count == 1
    assert client.count(name, count_filter=flt("run"), exact=True).count == 0
    # Declaring a stemming index changes the answer, dropping it restores it.
    client.create_payload_index(name, "t", field_schema=models.TextIndexParams(
        type="text", stemmer=models.SnowballParams(type=models.Snowball.SNOWBALL, language=models.SnowballLanguage.ENGLISH)), wait=True)
    assert client.count(name, count_filter=flt("run"), exact=True).count == 1
    client.delete_payload_index(name, "t", wait=True)
    assert client.count(name, count_filter=flt("run"), exact=True).count == 0


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bad_text_index_settings_are_refused(client):
    name = "text_bad"
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    # Built without the client's own validation, as another client could send it.
    stemmer = models.SnowballParams.model_construct(type=models.Snowball.SNOWBALL, language="klingon")
    bad = models.TextIndexParams.model_construct(type=models.TextIndexType.TEXT, stemmer=stemmer)
    with refused(400) as r:
        client.create_payload_index(name, "t", field_schema=bad, wait=True)
    assert "stemmer" in r.message
    assert "t" not in (client.get_collection(name).payload_schema or {})
