"""gRPC at the wire level, beside the client: malformed messages and unknown methods get a
status (never a dropped connection or a dead server), and REST keeps serving."""

import grpc
import pytest
from qdrant_client import QdrantClient


@pytest.fixture()
def channel(server):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield ch
    ch.close()


def raw_call(channel, method, payload):
    call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
    return call(payload, timeout=10)


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x12" * 64])
def test_malformed_protobuf_is_a_status(server, channel, payload):
    with pytest.raises(grpc.RpcError) as e:
        raw_call(channel, "/qdrant.Points/Upsert", payload)
    assert e.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT), e.value
    assert e.value.details()
    # The same connection and the REST server still answer.
    client = QdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=True, timeout=10)
    assert client.get_collections() is not None
    assert QdrantClient(url=server.url, timeout=10).get_collections() is not None


def test_unknown_method_is_unimplemented(channel):
    with pytest.raises(grpc.RpcError) as e:
        raw_call(channel, "/qdrant.Points/NoSuchMethod", b"")
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_empty_message_names_what_is_missing(channel):
    # An UpsertPoints with no collection name: the collection "" does not exist.
    with pytest.raises(grpc.RpcError) as e:
        raw_call(channel, "/qdrant.Points/Upsert", b"")
    assert e.value.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT), e.value
