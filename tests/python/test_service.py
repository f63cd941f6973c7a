"""Collection metadata and strict mode through the official client's own models; shard key
listing."""

from qdrant_client import models

from test_points import both, pair  # noqa: F401  (pair is a fixture)


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
