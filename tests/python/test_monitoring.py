"""Monitoring endpoints against the real server: `/metrics` read by the official Prometheus
client's text parser, `/telemetry` and `/cluster` read by the official qdrant-client models."""

import urllib.request

from prometheus_client.parser import text_string_to_metric_families
import pytest
from qdrant_client import QdrantClient, models

COLLECTION = "monitoring_py"


@pytest.fixture(scope="module")
def client(server):
    """REST only: these tests check the REST request counters (gRPC's have their own test)."""
    c = QdrantClient(url=server.url, prefer_grpc=False, timeout=60)
    yield c
    c.close()


def fetch(server, path):
    with urllib.request.urlopen(server.url + path, timeout=30) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def families(server, path="/metrics"):
    status, ctype, text = fetch(server, path)
    assert status == 200
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
    # The parser raises on anything malformed; collect everything.
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams, family, sample_name=None, **labels):
    fam = fams[family]
    name = sample_name or family
    return [s for s in fam.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def setup_data(client):
    if client.collection_exists(COLLECTION):
        client.delete_collection(COLLECTION)
    client.create_collection(
        COLLECTION, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE), shard_number=2
    )
    client.upsert(
        COLLECTION,
        [models.PointStruct(id=i, vector=[1.0, i, 0.5, 0.25], payload={"i": i, "q": 'quote"and\\slash'})
         for i in range(30)],
        wait=True,
    )
    for _ in range(2):
        client.query_points(COLLECTION, query=[1.0, 0.0, 0.0, 0.0], limit=5)
    client.scroll(COLLECTION, limit=3)


def test_metrics_parse_with_prometheus_client(server, client):
    setup_data(client)
    fams = families(server)

    expected_types = {
        "app_info": "gauge",
        "collections_total": "gauge",
        "collections_vector_total": "gauge",
        "collection_points": "gauge",
        "collection_vectors": "gauge",
        "collection_shard_points": "gauge",
        "collection_ram_bytes": "gauge",
        "collection_disk_bytes": "gauge",
        "collection_running_optimizations": "gauge",
        # Counter families lose the `_total` suffix in the parser's names.
        "rest_responses": "counter",
        "rest_responses_fail": "counter",
        "rest_responses_duration_seconds": "histogram",
        "snapshot_created": "counter",
        "process_open_fds": "gauge",
        "process_cpu_seconds": "counter",
        "memory_resident_bytes": "gauge",
    }
    for name, kind in expected_types.items():
        assert name in fams, f"{name} missing; have {sorted(fams)}"
        assert fams[name].type == kind, (name, fams[name].type)
        assert fams[name].documentation, name

    assert samples(fams, "app_info", name="qdrant")[0].value == 1
    assert samples(fams, "collection_points", id=COLLECTION)[0].value == 30
    assert sum(s.value for s in samples(fams, "collection_shard_points", collection=COLLECTION)) == 30
    assert samples(fams, "collection_vectors", collection=COLLECTION, vector="")[0].value == 30

    info = client.get_collection(COLLECTION)
    assert info.points_count == 30

    query = samples(fams, "rest_responses", "rest_responses_total",
                    method="POST", endpoint="/collections/{name}/points/query", status="200")
    assert query and query[0].value == 2

    # The histogram: buckets cumulative, +Inf equal to _count, _sum present.
    labels = dict(method="POST", endpoint="/collections/{name}/points/query", status="200")
    buckets = samples(fams, "rest_responses_duration_seconds", "rest_responses_duration_seconds_bucket", **labels)
    bounds = [float(b.labels["le"]) for b in buckets]
    assert bounds == sorted(bounds) and bounds[-1] == float("inf")
    values = [b.value for b in buckets]
    assert values == sorted(values)
    count = samples(fams, "rest_responses_duration_seconds", "rest_responses_duration_seconds_count", **labels)
    total = samples(fams, "rest_responses_duration_seconds", "rest_responses_duration_seconds_sum", **labels)
    assert count[0].value == values[-1] == 2
    assert total[0].value > 0

    # Endpoint labels are route templates, not raw paths.
    for fam in fams.values():
        for s in fam.samples:
            assert COLLECTION not in s.labels.get("endpoint", ""), s

    assert samples(fams, "process_open_fds")[0].value > 0
    assert samples(fams, "memory_resident_bytes")[0].value > 0


def test_metrics_anonymized_still_parse(server, client):
    setup_data(client)
    status, _, text = fetch(server, "/metrics?anonymize=true")
    assert status == 200
    assert COLLECTION not in text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert any(s.value == 30 for s in fams["collection_points"].samples)


def test_telemetry_and_cluster_parse_with_client_models(server, client):
    setup_data(client)
    for level in (0, 1, 2, 3):
        t = client.http.service_api.telemetry(details_level=level).result
        assert isinstance(t, models.TelemetryData)
        assert t.app.name == "qdrant"
        assert t.collections.number_of_collections >= 1
        assert t.cluster.enabled is False
        assert "POST /collections/{name}/points/query" in t.requests.rest.responses
        if level >= 1:
            ids = [c.id for c in t.collections.collections]
            assert COLLECTION in ids
        if level >= 2:
            mine = [c for c in t.collections.collections if c.id == COLLECTION][0]
            assert sum(s.local.num_points for s in mine.shards) == 30
    anon = client.http.service_api.telemetry(details_level=2, anonymize=True).result
    assert COLLECTION not in [c.id for c in anon.collections.collections]

    status = client.http.distributed_api.cluster_status().result
    assert status.status == "disabled"
    issues = client.http.beta_api.get_issues()
    assert issues["result"]["issues"] == [] or all("description" in i for i in issues["result"]["issues"])


def test_grpc_requests_are_counted(server):
    grpc_client = QdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=True, timeout=60)
    setup_data(grpc_client)
    try:
        grpc_client.get_collection("no_such_collection")
    except Exception:
        pass
    fams = families(server)
    query = samples(fams, "grpc_responses", "grpc_responses_total", endpoint="/qdrant.Points/Query")
    assert query and query[0].value >= 2, query
    fails = samples(fams, "grpc_responses_fail", "grpc_responses_fail_total", endpoint="/qdrant.Collections/Get")
    assert fails and fails[0].value >= 1, fails
    for name in ("grpc_responses_avg_duration_seconds", "grpc_responses_max_duration_seconds"):
        assert samples(fams, name, endpoint="/qdrant.Points/Query"), name
    # Telemetry reports them per method and status code, and the client's models read it.
    rest_client = QdrantClient(url=server.url, timeout=60)
    telemetry = rest_client.http.service_api.telemetry(details_level=1).result
    grpc = telemetry.requests.grpc.responses
    assert grpc["/qdrant.Points/Query"]["0"].count >= 2
    assert grpc["/qdrant.Collections/Get"]["5"].fail_count >= 1
    grpc_client.close()
    rest_client.close()
