"""The server as the official client sees it: no version warning on connect, collection
metadata and strict mode through the client's own models, shard key listing."""

import http.server
import threading
import warnings

import pytest
from qdrant_client import QdrantClient, models

from conftest import refused
from test_points import both, pair  # noqa: F401  (pair is a fixture)


def warnings_on_connect(url, grpc_port=None):
    """Warnings the client emits while connecting with its default version check (over gRPC's
    HealthCheck when `grpc_port` is given). The check runs on a thread of its own, so wait for
    every thread the client started."""
    before = set(threading.enumerate())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if grpc_port is None:
            client = QdrantClient(url=url, prefer_grpc=False, timeout=10)  # check_compatibility=True
        else:
            client = QdrantClient(url=url, grpc_port=grpc_port, prefer_grpc=True, timeout=10)
            client.get_collections()
        for t in set(threading.enumerate()) - before:
            t.join(timeout=15)
        client.close()
    return [str(w.message) for w in caught]


class FakeRoot(http.server.BaseHTTPRequestHandler):
    """A server that reports a version the client does not accept."""

    def do_GET(self):
        body = b'{"title": "fake", "version": "0.1.0"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_the_check_sees_an_incompatible_server():
    """The negative control: the capture above does see the client's warning."""
    fake = http.server.HTTPServer(("127.0.0.1", 0), FakeRoot)
    t = threading.Thread(target=fake.serve_forever, daemon=True)
    t.start()
    try:
        got = warnings_on_connect(f"http://127.0.0.1:{fake.server_port}")
    finally:
        fake.shutdown()
    assert any("incompatible with server version 0.1.0" in w for w in got), got


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_client_connects_without_compatibility_warning(server, api):
    got = warnings_on_connect(server.url, server.grpc_port if api == "grpc" else None)
    assert not [w for w in got if "incompatible" in w or "server version" in w], got


def test_version_over_both_apis(client):
    """`info()` is GET / over REST and the HealthCheck over gRPC: both report the Qdrant API version."""
    info = client.info()
    assert info.version == "1.19.0"
    assert "independent" in info.title


def test_metadata_merges_like_local_mode(pair):
    name, clients = pair
    for c in clients:
        c.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                            metadata={"owner": "me", "model": {"name": "a"}, "drop": 1})
        c.update_collection(name, metadata={"model": {"name": "b"}, "drop": None, "added": [1, 2]})
    s, l = both(clients, lambda c: c.get_collection(name).config.metadata)
    assert s == l == {"owner": "me", "model": {"name": "b"}, "added": [1, 2]}


def test_strict_mode_config_is_stored_and_merged(client, request):
    name = "strict_" + request.node.callspec.id.replace("-", "_")
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                             strict_mode_config=models.StrictModeConfig(enabled=True, max_query_limit=10))
    client.update_collection(name, strict_mode_config=models.StrictModeConfig(max_timeout=5, search_allow_exact=False))
    got = client.get_collection(name).config.strict_mode_config
    assert (got.enabled, got.max_query_limit, got.max_timeout, got.search_allow_exact) == (True, 10, 5, False)
    client.create_collection(name + "_plain", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
    assert client.get_collection(name + "_plain").config.strict_mode_config.enabled is False


def test_strict_mode_is_enforced(client, request):
    name = "enforced_" + request.node.callspec.id.replace("-", "_")
    if client.collection_exists(name):
        client.delete_collection(name)
    m = models
    client.create_collection(name, vectors_config=m.VectorParams(size=2, distance=m.Distance.DOT),
                             strict_mode_config=m.StrictModeConfig(
                                 enabled=True, max_query_limit=5, search_max_hnsw_ef=32, search_allow_exact=False,
                                 unindexed_filtering_retrieve=False, unindexed_filtering_update=False,
                                 upsert_max_batchsize=3, max_points_count=4, filter_max_conditions=2,
                                 condition_max_size=2, max_payload_index_count=1))
    client.create_payload_index(name, "city", m.PayloadSchemaType.KEYWORD)
    with refused(400) as r:
        client.create_payload_index(name, "n", m.PayloadSchemaType.INTEGER)
    assert "max_payload_index_count" in r.message or "Max payload index count" in r.message
    pts = [m.PointStruct(id=i, vector=[1, i], payload={"city": "a", "n": i}) for i in range(3)]
    client.upsert(name, pts, wait=True)
    with refused(400):
        client.upsert(name, [m.PointStruct(id=i, vector=[1, i]) for i in range(10, 14)])
    with refused(400):
        client.upsert(name, [m.PointStruct(id=i, vector=[1, i]) for i in range(10, 12)], wait=True)  # 5 > 4 points
    indexed = m.Filter(must=[m.FieldCondition(key="city", match=m.MatchValue(value="a"))])
    unindexed = m.Filter(must=[m.FieldCondition(key="n", range=m.Range(gte=1))])
    assert len(client.query_points(name, query=[1, 0], limit=5, query_filter=indexed).points) == 3
    assert client.count(name, count_filter=indexed).count == 3
    for call in [
        lambda: client.query_points(name, query=[1, 0], limit=6),
        lambda: client.query_points(name, query=[1, 0], limit=2, search_params=m.SearchParams(hnsw_ef=64)),
        lambda: client.query_points(name, query=[1, 0], limit=2, search_params=m.SearchParams(exact=True)),
        lambda: client.query_points(name, query=[1, 0], limit=2, query_filter=unindexed),
        lambda: client.query_points(name, prefetch=[m.Prefetch(query=[1, 0], limit=50)], query=[1, 0], limit=2),
        lambda: client.scroll(name, limit=10),
        lambda: client.count(name, count_filter=unindexed),
        lambda: client.delete(name, points_selector=m.FilterSelector(filter=unindexed)),
        lambda: client.query_points(name, query=[1, 0], limit=2, query_filter=m.Filter(
            must=[m.FieldCondition(key="city", match=m.MatchAny(any=["a", "b", "c"]))])),
        lambda: client.query_points(name, query=[1, 0], limit=2, query_filter=m.Filter(
            must=[m.HasIdCondition(has_id=[1]), m.HasIdCondition(has_id=[2]), m.HasIdCondition(has_id=[0])])),
    ]:
        with refused(400) as r:
            call()
        assert "Help:" in r.message, r.message
    # Turned off, the same requests pass.
    client.update_collection(name, strict_mode_config=m.StrictModeConfig(enabled=False))
    assert len(client.query_points(name, query=[1, 0], limit=6, query_filter=unindexed).points) == 2


def test_strict_mode_rate_size_and_vector_limits(client, request):
    """Rate limits answer 429 with Retry-After (the client raises ResourceExhaustedResponse over
    REST and gRPC); storage caps, multivector and sparse sizes answer 400."""
    from qdrant_client.common.client_exceptions import ResourceExhaustedResponse

    m = models
    name = "limits_" + request.node.callspec.id.replace("-", "_")
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(
        name, vectors_config={"d": m.VectorParams(size=2, distance=m.Distance.DOT),
                              "mv": m.VectorParams(size=2, distance=m.Distance.DOT,
                                                   multivector_config=m.MultiVectorConfig(
                                                       comparator=m.MultiVectorComparator.MAX_SIM))},
        sparse_vectors_config={"s": m.SparseVectorParams()},
        strict_mode_config=m.StrictModeConfig(
            enabled=True, read_rate_limit=5, write_rate_limit=4, max_collection_payload_size_bytes=100,
            multivector_config={"mv": m.StrictModeMultivector(max_vectors=2)},
            sparse_config={"s": m.StrictModeSparse(max_length=2)}))
    # Vector sizes are checked before the write is charged.
    with refused(400) as r:
        client.upsert(name, [m.PointStruct(id=1, vector={"d": [1, 0], "mv": [[1, 0]] * 3})], wait=True)
    assert "max_vectors" in r.message, r.message
    with refused(400) as r:
        client.upsert(name, [m.PointStruct(id=1, vector={"s": m.SparseVector(indices=[1, 2, 3], values=[1, 1, 1])})])
    assert "max_length" in r.message, r.message
    # Writes: 4 tokens a minute, one per point.
    client.upsert(name, [m.PointStruct(id=i, vector={"d": [1, i]}, payload={"text": "x" * 60}) for i in range(3)],
                  wait=True)
    # The payload storage now holds over 100 bytes: writes of payload stop, deletes pass.
    with refused(400) as r:
        client.set_payload(name, payload={"a": 1}, points=[0], wait=True)
    assert "Max payload storage size limit of 100 bytes reached" in r.message, r.message
    client.delete(name, points_selector=m.PointIdsList(points=[2]), wait=True)
    with pytest.raises(ResourceExhaustedResponse) as e:
        client.delete(name, points_selector=m.PointIdsList(points=[1]), wait=True)
    assert "Write rate limit exceeded" in e.value.message and int(e.value.retry_after_s) >= 1
    # Reads: 5 tokens a minute, one per search (prefetches count).
    for _ in range(3):
        client.query_points(name, query=[1, 0], using="d", limit=2)
    with pytest.raises(ResourceExhaustedResponse) as e:
        client.query_points(name, prefetch=[m.Prefetch(query=[1, 0], using="d", limit=5)] * 2, query=[1, 0],
                            using="d", limit=2)
    assert "Read rate limit exceeded" in e.value.message
    # A limit raised is a new, full bucket; strict mode off lifts every limit.
    client.update_collection(name, strict_mode_config=m.StrictModeConfig(read_rate_limit=100))
    client.query_points(name, query=[1, 0], using="d", limit=2)
    client.update_collection(name, strict_mode_config=m.StrictModeConfig(enabled=False))
    client.upsert(name, [m.PointStruct(id=i, vector={"d": [1, i]}) for i in range(10, 20)], wait=True)


def test_strict_mode_max_timeout(server, client, request):
    """A `timeout` above `max_timeout` is refused: REST's `?timeout=` on any collection endpoint,
    gRPC's `timeout` field of every points call."""
    import httpx

    name = "timeout_" + request.node.callspec.id.replace("-", "_")
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                             strict_mode_config=models.StrictModeConfig(enabled=True, max_timeout=5))
    client.upsert(name, [models.PointStruct(id=1, vector=[1, 0])], wait=True)
    assert len(client.query_points(name, query=[1, 0], limit=1, timeout=5).points) == 1
    with refused(400) as r:
        client.query_points(name, query=[1, 0], limit=1, timeout=6)
    assert 'Limit exceeded 6 > 5 for' in r.message and 'timeout' in r.message, r.message
    with refused(400):
        client.scroll(name, limit=1, timeout=60)
    with refused(400):
        client.count(name, timeout=60)
    # Any REST endpoint on the collection's points, writes included; changing the collection
    # itself is not refused, so strict mode can always be turned off.
    r = httpx.put(f"{server.url}/collections/{name}/points?wait=true&timeout=60",
                  json={"points": [{"id": 2, "vector": [1, 0]}]})
    assert r.status_code == 400, r.text
    r = httpx.patch(f"{server.url}/collections/{name}?timeout=60", json={"strict_mode_config": {"enabled": False}})
    assert r.status_code == 200, r.text
    assert len(client.query_points(name, query=[1, 0], limit=1, timeout=60).points) == 1


def test_out_of_range_fields_are_qdrants_validation_errors(client, request):
    """422 "Validation error in JSON body: [<field>: <problem>]" over REST (INVALID_ARGUMENT with
    the same message over gRPC), as Qdrant's declarative validation answers."""
    m = models
    name = "valid_" + request.node.callspec.id.replace("-", "_")
    if client.collection_exists(name):
        client.delete_collection(name)
    with refused(422) as r:
        client.create_collection(name, vectors_config=m.VectorParams(size=0, distance=m.Distance.DOT))
    assert "Validation error in JSON body: [vectors.size: value 0 invalid, must be from 1 to 65536]" in r.message
    with refused(422) as r:
        client.create_collection(name, vectors_config=m.VectorParams(size=2, distance=m.Distance.DOT),
                                 strict_mode_config=m.StrictModeConfig(enabled=True, max_query_limit=0))
    assert "[strict_mode_config.max_query_limit: value 0 invalid, must be 1 or larger]" in r.message
    client.create_collection(name, vectors_config=m.VectorParams(size=2, distance=m.Distance.DOT))
    client.upsert(name, [m.PointStruct(id=1, vector=[1, 0])], wait=True)
    for call, field in [
        (lambda: client.query_points(name, query=[1, 0], limit=0), "limit"),
        (lambda: client.query_points(name, prefetch=[m.Prefetch(query=[1, 0], limit=0)], query=[1, 0]),
         "prefetch[0].limit"),
        (lambda: client.scroll(name, limit=0), "limit"),
        (lambda: client.query_points_groups(name, query=[1, 0], group_by="g", group_size=0), "group_size"),
    ]:
        with refused(422) as r:
            call()
        assert f"Validation error in JSON body: [{field}: value 0 invalid, must be 1 or larger]" in r.message, \
            r.message
    with refused(422) as r:
        client.query_points(name, query=[1, 0], search_params=m.SearchParams(
            quantization=m.QuantizationSearchParams(oversampling=0.5)))
    assert "oversampling: value 0.5 invalid, must be 1.0 or larger]" in r.message, r.message
    with refused(422) as r:
        client.query_batch_points(name, requests=[m.QueryRequest(query=[1, 0], limit=1),
                                                  m.QueryRequest(query=[1, 0], limit=0)])
    assert "[searches[1].limit: value 0 invalid" in r.message, r.message


def test_list_shard_keys(client, request):
    name = "keys_" + request.node.callspec.id.replace("-", "_")
    if client.collection_exists(name):
        client.delete_collection(name)
    client.create_collection(name, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                             sharding_method=models.ShardingMethod.CUSTOM)
    client.create_shard_key(name, "tenant_a")
    client.create_shard_key(name, 7)
    keys = sorted(str(k.key) for k in client.list_shard_keys(name).shard_keys)
    assert keys == ["7", "tenant_a"]
