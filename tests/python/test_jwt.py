"""JWT role-based access (`service.jwt_rbac`) as Qdrant documents it, through the official client
over REST and gRPC: tokens signed HS256 with the API key, `exp`, global `"r"` / `"m"` access,
per-collection `"r"` / `"rw"` access, `value_exists` revocation, and refusals for forged,
expired and unsigned tokens. Tokens are made here with the standard library only."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time

import grpc
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from conftest import BIN, free_port

KEY = "jwt-secret-key"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims, key=KEY, alg="HS256"):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(key.encode(), head.encode(), hashlib.sha256).digest() if alg == "HS256" else b""
    return head + "." + b64(sig)


@pytest.fixture(scope="module", params=["sqlite", "rocksdb"])
def server(request):
    tmp = tempfile.mkdtemp(prefix="qdrant-jwt-")
    port, grpc_port = free_port(), free_port()
    env = dict(os.environ, QDRANT__SERVICE__API_KEY=KEY, QDRANT__SERVICE__JWT_RBAC="true")
    log = open(os.path.join(tmp, "server.log"), "wb")
    proc = subprocess.Popen([BIN, "--storage", request.param, "--storage-path", os.path.join(tmp, "s"),
                             "--http-port", str(port), "--grpc-port", str(grpc_port), "--host", "127.0.0.1"],
                            env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=log)
    admin = QdrantClient(url=f"http://127.0.0.1:{port}", api_key=KEY, timeout=30)
    deadline = time.time() + 30
    while True:
        try:
            admin.get_collections()
            break
        except Exception:
            assert time.time() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
    for name in ("a", "b", "users"):
        admin.create_collection(name, vectors_config=models.VectorParams(size=2, distance="Dot"))
    admin.upsert("a", [models.PointStruct(id=1, vector=[1, 0], payload={"x": 1})])
    admin.upsert("b", [models.PointStruct(id=1, vector=[0, 1])])
    admin.upsert("users", [models.PointStruct(id=1, vector=[1, 1], payload={"user": "ann", "role": "manager"})])
    admin.update_collection_aliases(change_aliases_operations=[
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="a", alias_name="a_alias"))])
    yield {"port": port, "grpc_port": grpc_port, "admin": admin}
    admin.close()
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
    shutil.rmtree(tmp, ignore_errors=True)


def client(server, tok, grpc_api=False):
    return QdrantClient(url=f"http://127.0.0.1:{server['port']}", grpc_port=server["grpc_port"],
                        prefer_grpc=grpc_api, api_key=tok, timeout=30)


def status_of(call):
    try:
        call()
    except UnexpectedResponse as e:
        return e.status_code
    except grpc.RpcError as e:
        return {grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403}.get(e.code(), e.code())
    return 200


def point():
    return [models.PointStruct(id=9, vector=[1, 1])]


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_global_tokens(server, api):
    g = api == "grpc"
    manage = client(server, token({"access": "m", "exp": time.time() + 60}), g)
    assert status_of(lambda: manage.upsert("a", point())) == 200
    assert status_of(lambda: manage.create_collection("tmp_" + api, vectors_config=models.VectorParams(size=2, distance="Dot"))) == 200
    assert status_of(lambda: manage.delete_collection("tmp_" + api)) == 200
    no_access_claim = client(server, token({}), g)
    assert status_of(lambda: no_access_claim.upsert("a", point())) == 200, "no access claim means manage"
    read = client(server, token({"access": "r"}), g)
    assert status_of(lambda: read.query_points("a", query=[1, 0])) == 200
    assert status_of(lambda: read.get_collections()) == 200
    assert status_of(lambda: read.upsert("a", point())) == 403
    assert status_of(lambda: read.delete_collection("a")) == 403
    for bad in [token({"access": "m"}, key="wrong"), token({"access": "m", "exp": time.time() - 120}),
                token({"access": "m"}, alg="none"), "not.a.jwt", token({"access": "x"}),
                # Payload restrictions (removed in Qdrant 1.16) are refused, never widened.
                token({"access": [{"collection": "a", "access": "r", "payload": {"user": "ann"}}]})]:
        assert status_of(lambda: client(server, bad, g).get_collections()) == 401, bad


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_collection_tokens(server, api):
    tok = client(server, token({"access": [{"collection": "a", "access": "rw"}, {"collection": "b", "access": "r"}]}),
                 api == "grpc")
    # Lists are filtered to the token's collections.
    assert sorted(c.name for c in tok.get_collections().collections) == ["a", "b"]
    assert [a.alias_name for a in tok.get_aliases().aliases] == ["a_alias"]
    # rw: reads, writes, payload indexes, snapshots.
    assert status_of(lambda: tok.upsert("a", point())) == 200
    assert status_of(lambda: tok.upsert("a_alias", point())) == 200, "an alias is checked as its collection"
    assert status_of(lambda: tok.create_payload_index("a", "x", models.PayloadSchemaType.INTEGER)) == 200
    assert status_of(lambda: tok.create_snapshot("a")) == 200
    # r: reads only.
    assert status_of(lambda: tok.query_points("b", query=[0, 1])) == 200
    assert status_of(lambda: tok.count("b")) == 200
    assert status_of(lambda: tok.upsert("b", point())) == 403
    assert status_of(lambda: tok.create_payload_index("b", "x", models.PayloadSchemaType.INTEGER)) == 403
    # Other collections and everything needing global access.
    assert status_of(lambda: tok.query_points("users", query=[1, 1])) == 403
    assert status_of(lambda: tok.get_collection("users")) == 403
    assert status_of(lambda: tok.delete_collection("a")) == 403
    assert status_of(lambda: tok.create_collection("c", vectors_config=models.VectorParams(size=2, distance="Dot"))) == 403
    assert status_of(lambda: tok.list_full_snapshots()) == 403
    assert status_of(lambda: tok.update_collection_aliases(change_aliases_operations=[
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="a_alias"))])) == 403
    # Reads of a listed collection's details, and of others.
    assert status_of(lambda: tok.collection_exists("b")) == 200
    assert status_of(lambda: tok.collection_exists("users")) == 403
    assert status_of(lambda: tok.list_snapshots("b")) == 200
    assert status_of(lambda: tok.create_snapshot("b")) == 403


@pytest.mark.parametrize("api", ["rest", "grpc"])
def test_value_exists_revokes(server, api):
    claims = {"access": "r", "value_exists": {"collection": "users",
                                              "matches": [{"key": "user", "value": "ann"}, {"key": "role", "value": "manager"}]}}
    c = client(server, token(claims), api == "grpc")
    assert status_of(lambda: c.query_points("a", query=[1, 0])) == 200
    server["admin"].set_payload("users", payload={"role": "former"}, points=[1])
    assert status_of(lambda: c.query_points("a", query=[1, 0])) == 403
    server["admin"].set_payload("users", payload={"role": "manager"}, points=[1])
    assert status_of(lambda: c.query_points("a", query=[1, 0])) == 200
