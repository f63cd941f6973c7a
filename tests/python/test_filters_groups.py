"""Filters, groups, facets and payload indexes through the official client, compared with its
local mode."""

import random

import pytest
from qdrant_client import models

from conftest import refused
from test_points import both, make_points, pair  # noqa: F401  (pair is a fixture)


def seed(clients, name, n=150, dim=4):
    rnd = random.Random(21)
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.EUCLID))
    pts = []
    for i in range(n):
        pts.append(models.PointStruct(
            id=i, vector=[rnd.uniform(-1, 1) for _ in range(dim)],
            payload={
                "city": ["Berlin", "London", "Paris", None][i % 4],
                "n": i, "score": round(rnd.uniform(0, 10), 3), "flag": i % 3 == 0,
                "tags": [f"t{i % 5}", f"t{i % 2}"] if i % 6 else [],
                "when": f"2024-0{1 + i % 9}-1{i % 10}T10:00:00Z",
                "loc": {"lon": 13.0 + (i % 10) * 0.1, "lat": 52.0 + (i % 7) * 0.1},
                "nested": [{"kind": "a", "v": i % 4}, {"kind": "b", "v": i % 3}],
                "text": "the quick brown fox" if i % 2 else "lazy dog sleeps",
            }))
    for c in clients:
        c.upsert(name, points=pts)


FILTERS = [
    models.Filter(must=[models.FieldCondition(key="city", match=models.MatchValue(value="Paris"))]),
    models.Filter(should=[models.FieldCondition(key="city", match=models.MatchValue(value="Paris")),
                          models.FieldCondition(key="flag", match=models.MatchValue(value=True))]),
    models.Filter(must_not=[models.FieldCondition(key="tags", match=models.MatchAny(any=["t1", "t3"]))]),
    models.Filter(must=[models.FieldCondition(key="tags", match=models.MatchExcept(**{"except": ["t0"]}))]),
    models.Filter(must=[models.FieldCondition(key="score", range=models.Range(gte=2.5, lt=7))]),
    models.Filter(must=[models.FieldCondition(key="when", range=models.DatetimeRange(gte="2024-03-01T00:00:00Z", lt="2024-06-01"))]),
    models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key="tags"))]),
    models.Filter(must=[models.IsNullCondition(is_null=models.PayloadField(key="city"))]),
    models.Filter(must=[models.HasIdCondition(has_id=[1, 5, 9, 200])]),
    models.Filter(must=[models.FieldCondition(key="loc", geo_radius=models.GeoRadius(
        center=models.GeoPoint(lon=13.3, lat=52.3), radius=20000))]),
    models.Filter(must=[models.FieldCondition(key="loc", geo_bounding_box=models.GeoBoundingBox(
        top_left=models.GeoPoint(lon=13.05, lat=52.45), bottom_right=models.GeoPoint(lon=13.55, lat=52.05)))]),
    models.Filter(must=[models.FieldCondition(key="tags", values_count=models.ValuesCount(gte=2))]),
    models.Filter(must=[models.NestedCondition(nested=models.Nested(key="nested", filter=models.Filter(must=[
        models.FieldCondition(key="kind", match=models.MatchValue(value="a")),
        models.FieldCondition(key="v", range=models.Range(gte=2))])))]),
    models.Filter(must=[models.FieldCondition(key="nested[].v", match=models.MatchValue(value=2))]),
    models.Filter(must=[models.FieldCondition(key="text", match=models.MatchText(text="quick fox"))]),
    models.Filter(min_should=models.MinShould(conditions=[
        models.FieldCondition(key="flag", match=models.MatchValue(value=True)),
        models.FieldCondition(key="city", match=models.MatchValue(value="Berlin")),
        models.FieldCondition(key="n", range=models.Range(lt=40))], min_count=2)),
    models.Filter(must=[models.HasVectorCondition(has_vector="")]),
]


@pytest.mark.parametrize("i", range(len(FILTERS)))
def test_filters_match_local_mode(pair, i):
    name, clients = pair
    seed(clients, name)
    flt = FILTERS[i]
    s, l = both(clients, lambda c: c.count(name, count_filter=flt).count)
    assert s == l
    s, l = both(clients, lambda c: [p.id for p in c.scroll(name, scroll_filter=flt, limit=500)[0]])
    assert s == l
    s, l = both(clients, lambda c: c.query_points(name, query=[0.1, 0.2, 0.3, 0.4], query_filter=flt, limit=7).points)
    assert [p.id for p in s] == [p.id for p in l]
    assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(s, l))


def test_groups_and_facet(pair):
    name, clients = pair
    seed(clients, name, n=80)
    q = [0.3, -0.2, 0.1, 0.0]
    s, l = both(clients, lambda c: c.query_points_groups(name, query=q, group_by="city", limit=3, group_size=2).groups)
    assert [g.id for g in s] == [g.id for g in l]
    assert [[h.id for h in g.hits] for g in s] == [[h.id for h in g.hits] for g in l]
    s, l = both(clients, lambda c: c.query_points_groups(name, query=q, group_by="tags", limit=4, group_size=3).groups)
    assert [[h.id for h in g.hits] for g in s] == [[h.id for h in g.hits] for g in l]
    # Facets need an index on their key, as in Qdrant.
    clients[0].create_payload_index(name, "city", models.PayloadSchemaType.KEYWORD)
    clients[0].create_payload_index(name, "tags", models.PayloadSchemaType.KEYWORD)
    s, l = both(clients, lambda c: c.facet(name, key="city", limit=5).hits)
    assert [(h.value, h.count) for h in s] == [(h.value, h.count) for h in l]
    s, l = both(clients, lambda c: c.facet(name, key="tags", limit=10,
                                            facet_filter=models.Filter(must=[models.FieldCondition(key="flag", match=models.MatchValue(value=True))])).hits)
    assert [(h.value, h.count) for h in s] == [(h.value, h.count) for h in l]


def test_payload_index_in_info(pair):
    name, clients = pair
    server, _ = clients
    seed([server], name, n=20)
    server.create_payload_index(name, "city", models.PayloadSchemaType.KEYWORD, wait=True)
    server.create_payload_index(name, "n", models.PayloadSchemaType.INTEGER, wait=True)
    info = server.get_collection(name)
    assert info.payload_schema["city"].data_type == models.PayloadSchemaType.KEYWORD
    assert info.payload_schema["city"].points == 15  # every 4th city is null
    assert info.payload_schema["n"].points == 20
    server.delete_payload_index(name, "n", wait=True)
    assert "n" not in server.get_collection(name).payload_schema


def test_facet_and_order_by_need_an_index(client, request):
    """Without a payload index on the key, facets and order_by are refused as Qdrant refuses them."""
    name = "needs_index_" + request.node.callspec.id.replace("-", "_")
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    client.upsert(name, [models.PointStruct(id=i, vector=[1, i], payload={"c": f"v{i % 2}", "n": i}) for i in range(6)],
                  wait=True)
    with refused(400) as r:
        client.facet(name, "c")
    assert "No appropriate index for faceting: `c`" in r.message, r.message
    with refused(400) as r:
        client.scroll(name, order_by="n")
    assert "No range index for `order_by` key: `n`" in r.message, r.message
    with refused(400):
        client.query_points(name, query=models.OrderByQuery(order_by="n"))
    # A keyword index does not order; an integer index without `range` does not either.
    client.create_payload_index(name, "n", models.KeywordIndexParams(type="keyword"), wait=True)
    with refused(400):
        client.scroll(name, order_by="n")
    client.delete_payload_index(name, "n", wait=True)
    client.create_payload_index(name, "n", models.IntegerIndexParams(type="integer", lookup=True, range=False),
                                wait=True)
    with refused(400):
        client.scroll(name, order_by="n")
    client.delete_payload_index(name, "n", wait=True)
    client.create_payload_index(name, "n", models.PayloadSchemaType.INTEGER, wait=True)
    client.create_payload_index(name, "c", models.PayloadSchemaType.KEYWORD, wait=True)
    assert [p.id for p in client.scroll(name, order_by=models.OrderBy(key="n", direction="desc"), limit=2)[0]] == [5, 4]
    assert sorted((h.value, h.count) for h in client.facet(name, "c").hits) == [("v0", 3), ("v1", 3)]
