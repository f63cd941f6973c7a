"""Snapshots through the official client: create, list, recover (URL and file), upload, delete,
full-storage snapshots, custom sharding carried over. Both backends."""

import os
import tempfile

import httpx
import pytest
from qdrant_client import QdrantClient, models

from conftest import refused, BACKENDS, ServerProcess
from test_points import make_points

SNAPSHOTS_ENV = "QDRANT__STORAGE__SNAPSHOTS_PATH"


@pytest.fixture(scope="module", params=BACKENDS)
def snap_server(request):
    """A server whose snapshots path is a temp dir (the shared fixture uses ./snapshots)."""
    tmp = tempfile.mkdtemp(prefix=f"qdrant-py-snap-{request.param}-")
    old = os.environ.get(SNAPSHOTS_ENV)
    os.environ[SNAPSHOTS_ENV] = os.path.join(tmp, "snapshots")
    try:
        srv = ServerProcess(request.param, os.path.join(tmp, "storage"))
    finally:
        if old is None:
            del os.environ[SNAPSHOTS_ENV]
        else:
            os.environ[SNAPSHOTS_ENV] = old
    srv.snapshots = os.path.join(tmp, "snapshots")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def sclient(snap_server):
    c = QdrantClient(url=snap_server.url, prefer_grpc=False, timeout=60, check_compatibility=False)
    yield c
    c.close()


def answers(client, name):
    out = []
    for q in ([0.1] * 8, [0.5, -0.2, 0.3, 0.0, -0.4, 0.2, 0.1, -0.3]):
        out.append([(p.id, round(p.score, 5), p.payload) for p in
                    client.query_points(name, query=q, limit=10, with_payload=True).points])
    out.append(client.count(name, exact=True).count)
    return out


def fresh(client, name):
    if client.collection_exists(name):
        client.delete_collection(name)


def test_create_list_recover_delete(sclient, snap_server):
    src = "snap_src"
    fresh(sclient, src)
    sclient.create_collection(src, vectors_config=models.VectorParams(size=8, distance=models.Distance.COSINE),
                              shard_number=2)
    sclient.upsert(src, points=make_points(300, 8), wait=True)
    want = answers(sclient, src)

    d = sclient.create_snapshot(src, wait=True)
    assert d.name.endswith(".snapshot") and d.size > 0 and len(d.checksum) == 64
    listed = sclient.list_snapshots(src)
    assert [s.name for s in listed] == [d.name]
    assert listed[0].checksum == d.checksum and listed[0].size == d.size

    # From the server's own download URL, with the checksum it reported.
    url = f"{snap_server.url}/collections/{src}/snapshots/{d.name}"
    for target in ("snap_copy", "snap_copy"):  # the second time replaces the first copy
        assert sclient.recover_snapshot(target, location=url, checksum=d.checksum,
                                        priority=models.SnapshotPriority.SNAPSHOT, wait=True)
        assert answers(sclient, target) == want

    # From a file:// location inside the snapshots path.
    path = os.path.join(snap_server.snapshots, src, d.name)
    assert sclient.recover_snapshot("snap_copy2", location="file://" + path, wait=True)
    assert answers(sclient, "snap_copy2") == want

    # A wrong checksum is refused and creates nothing.
    fresh(sclient, "snap_copy3")
    with refused(400) as e:
        sclient.recover_snapshot("snap_copy3", location=url, checksum="0" * 64, wait=True)
    assert not sclient.collection_exists("snap_copy3")

    # Upload (multipart field `snapshot`).
    data = httpx.get(url, timeout=60).content
    assert len(data) == d.size
    r = httpx.post(f"{snap_server.url}/collections/snap_up/snapshots/upload?priority=snapshot&checksum={d.checksum}",
                   files={"snapshot": (d.name, data, "application/octet-stream")}, timeout=60)
    assert r.status_code == 200, r.text
    assert answers(sclient, "snap_up") == want

    assert sclient.delete_snapshot(src, d.name, wait=True)
    assert sclient.list_snapshots(src) == []


def test_full_snapshot(sclient):
    fresh(sclient, "snap_full")
    sclient.create_collection("snap_full", vectors_config=models.VectorParams(size=8, distance=models.Distance.DOT))
    sclient.upsert("snap_full", points=make_points(50, 8), wait=True)
    d = sclient.create_full_snapshot(wait=True)
    assert d.name.startswith("full-snapshot-") and d.size > 0
    assert d.name in [s.name for s in sclient.list_full_snapshots()]
    assert sclient.delete_full_snapshot(d.name, wait=True)
    assert d.name not in [s.name for s in sclient.list_full_snapshots()]


def test_custom_shard_keys_survive_a_snapshot(sclient, snap_server):
    src = "snap_keys"
    fresh(sclient, src)
    sclient.create_collection(src, vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT),
                              sharding_method=models.ShardingMethod.CUSTOM)
    sclient.create_shard_key(src, "tenant_a")
    sclient.create_shard_key(src, "tenant_b")
    sclient.upsert(src, points=[models.PointStruct(id=1, vector=[1, 0]), models.PointStruct(id=2, vector=[0, 1])],
                   shard_key_selector="tenant_a")
    sclient.upsert(src, points=[models.PointStruct(id=3, vector=[1, 1])], shard_key_selector="tenant_b")
    d = sclient.create_snapshot(src, wait=True)
    url = f"{snap_server.url}/collections/{src}/snapshots/{d.name}"
    assert sclient.recover_snapshot("snap_keys_copy", location=url, wait=True)
    for key, ids in (("tenant_a", [1, 2]), ("tenant_b", [3])):
        got = sclient.scroll("snap_keys_copy", limit=10, shard_key_selector=key)[0]
        assert sorted(p.id for p in got) == ids
    sclient.upsert("snap_keys_copy", points=[models.PointStruct(id=4, vector=[2, 2])], shard_key_selector="tenant_b")
    assert sclient.count("snap_keys_copy").count == 4
