"""Fixtures: a real `qdrant` server process per backend, and the client's own local mode as the
reference implementation to compare against."""

import contextlib
import os
import socket
import subprocess
import tempfile
import time

import grpc
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import UnexpectedResponse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("QDRANT_BIN", os.path.join(ROOT, "target", "debug", "qdrant"))
BACKENDS = ["sqlite", "rocksdb"]


_GIVEN_PORTS = set()


def free_port():
    """A loopback port nothing listens on, never one handed out before in this session: the
    port is free again once this returns, so a server's HTTP port could otherwise be the P2P
    port chosen for a peer that has not started yet."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


class ServerProcess:
    """`wait=False`: return once started, for a server expected to stop by itself."""

    def __init__(self, backend, storage, args=(), env=None, wait=True):
        self.backend = backend
        self.storage = storage
        self.port = free_port()
        self.grpc_port = free_port()
        self.log = open(os.path.join(os.path.dirname(storage), f"server-{self.port}.log"), "wb")
        self.proc = subprocess.Popen(
            [BIN, "--storage", backend, "--storage-path", storage,
             "--http-port", str(self.port), "--grpc-port", str(self.grpc_port),
             "--host", "127.0.0.1", *args],
            stdout=subprocess.DEVNULL, stderr=self.log,
            env=None if env is None else {**os.environ, **env},
        )
        if wait:
            self.wait_ready()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout=60):
        import urllib.request
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def wait_formed(procs, n, timeout=30):
    """Wait until every peer of `procs` reports a cluster of `n` peers with a leader."""
    deadline = time.time() + timeout
    for p in procs:
        c = QdrantClient(url=p.url)
        while True:
            status = c.cluster_status()
            if status.status == "enabled" and len(status.peers) == n and status.raft_info.leader:
                break
            assert time.time() < deadline, status
            time.sleep(0.1)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request):
    tmp = tempfile.mkdtemp(prefix=f"qdrant-py-{request.param}-")
    srv = ServerProcess(request.param, os.path.join(tmp, "storage"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module", params=["rest", "grpc"])
def client(server, request):
    """The official client as users run it: over REST, and with `prefer_grpc=True` (every call
    the client has a gRPC form for goes over gRPC)."""
    c = QdrantClient(url=server.url, grpc_port=server.grpc_port, prefer_grpc=request.param == "grpc", timeout=60)
    yield c
    c.close()


@pytest.fixture()
def local():
    """The client's own in-process implementation: the reference for results."""
    c = QdrantClient(":memory:")
    yield c
    c.close()


# HTTP statuses and the gRPC codes the same refusals carry.
GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.ALREADY_EXISTS,
    422: grpc.StatusCode.INVALID_ARGUMENT,
}


class Refusal:
    message = ""


@contextlib.contextmanager
def refused(status):
    """The call must fail with HTTP `status` over REST, or with the matching gRPC code over
    gRPC; the yielded object's `message` holds the error text afterwards."""
    info = Refusal()
    try:
        yield info
    except UnexpectedResponse as e:
        assert e.status_code == status, f"HTTP {e.status_code}, expected {status}: {e}"
        info.message = str(e)
    except grpc.RpcError as e:
        assert e.code() == GRPC_CODES[status], f"{e.code()}, expected {GRPC_CODES[status]}: {e.details()}"
        info.message = e.details()
    else:
        pytest.fail(f"expected a refusal with status {status}")
