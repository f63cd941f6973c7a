"""TLS as Qdrant configures it (`service.enable_tls`, `tls.cert`, `tls.key`, `tls.ca_cert`,
`service.verify_https_client_certificate`, `tls.cert_ttl` rotation), through the official client over https and gRPC,
plus `qdrant healthcheck` and refusals. Certificates come from the `openssl` command."""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import httpx
import pytest
from qdrant_client import QdrantClient, models

from conftest import BIN, free_port


def context(certs, client=False):
    """Trusts the test CA; with `client`, presents the client certificate."""
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    if client:
        ctx.load_cert_chain(os.path.join(certs, "client.pem"), os.path.join(certs, "client.key"))
    return ctx


def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="qdrant-tls-")
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=qdrant test CA")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for name in ("server", "client"):
        openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN=localhost")
        openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.pem", "-days", "2", "-extfile", "ext.cnf")
    return d


class TlsServer:
    def __init__(self, certs, mtls=False, extra_env=None):
        self.tmp = tempfile.mkdtemp(prefix="qdrant-tls-srv-")
        self.port, self.grpc_port = free_port(), free_port()
        self.env = dict(os.environ,
                        QDRANT__SERVICE__ENABLE_TLS="true",
                        QDRANT__TLS__CERT=os.path.join(certs, "server.pem"),
                        QDRANT__TLS__KEY=os.path.join(certs, "server.key"),
                        QDRANT__TLS__CA_CERT=os.path.join(certs, "ca.pem"),
                        QDRANT__SERVICE__VERIFY_HTTPS_CLIENT_CERTIFICATE="true" if mtls else "false",
                        QDRANT__SERVICE__HTTP_PORT=str(self.port),
                        QDRANT__SERVICE__GRPC_PORT=str(self.grpc_port))
        self.env.update(extra_env or {})
        self.log = open(os.path.join(self.tmp, "server.log"), "wb")
        self.proc = subprocess.Popen([BIN, "--storage", "sqlite", "--storage-path", os.path.join(self.tmp, "s"),
                                      "--host", "127.0.0.1"], env=self.env, cwd=self.tmp,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        ctx = context(certs, client=mtls)
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"https://localhost:{self.port}/readyz", verify=ctx, timeout=2)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"TLS server did not start: {open(self.log.name).read()}")
            time.sleep(0.1)

    def healthcheck(self):
        return subprocess.run([BIN, "healthcheck"], env=self.env, cwd=self.tmp, capture_output=True, timeout=30)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def tls_server(certs):
    s = TlsServer(certs)
    yield s
    s.stop()


def round_trip(client, name):
    client.create_collection(name, vectors_config=models.VectorParams(size=3, distance=models.Distance.DOT))
    client.upsert(name, points=[models.PointStruct(id=i, vector=[1.0, i, 0.0]) for i in range(5)], wait=True)
    hits = client.query_points(name, query=[0.0, 1.0, 0.0], limit=2).points
    assert [p.id for p in hits] == [4, 3]


def test_rest_over_https(tls_server, certs):
    client = QdrantClient(url=f"https://localhost:{tls_server.port}", verify=context(certs), timeout=30)
    round_trip(client, "tls_rest")
    # No clear-text fallback on the same port.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/collections", timeout=5)


def test_grpc_over_tls(tls_server, certs, monkeypatch):
    monkeypatch.setenv("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", os.path.join(certs, "ca.pem"))
    client = QdrantClient(url=f"https://localhost:{tls_server.port}", grpc_port=tls_server.grpc_port,
                          prefer_grpc=True, verify=context(certs), timeout=30)
    round_trip(client, "tls_grpc")
    assert client.info().version == "1.19.0"


def test_healthcheck_speaks_tls(tls_server):
    r = tls_server.healthcheck()
    assert r.returncode == 0, r.stderr


def test_client_certificates_are_required_with_mtls(certs):
    s = TlsServer(certs, mtls=True)
    try:
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"https://localhost:{s.port}/collections", verify=context(certs), timeout=5)
        r = httpx.get(f"https://localhost:{s.port}/collections", verify=context(certs, client=True), timeout=5)
        assert r.status_code == 200
        r = s.healthcheck()
        assert r.returncode == 0, r.stderr
    finally:
        s.stop()


def served_certificate(certs, port, alpn):
    """The DER certificate a new TLS connection to `port` is served (offering `alpn`)."""
    ctx = context(certs)
    ctx.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def test_certificates_are_reloaded_after_cert_ttl(certs):
    # The server reads its certificate from a copy that is rotated while it runs.
    rot = tempfile.mkdtemp(prefix="qdrant-tls-rot-")
    for f in ("server.pem", "server.key"):
        shutil.copy(os.path.join(certs, f), os.path.join(rot, f))
    openssl(certs, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "next.key", "-out", "next.csr",
            "-subj", "/CN=localhost")
    openssl(certs, "x509", "-req", "-in", "next.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "next.pem", "-days", "2", "-extfile", "ext.cnf")
    s = TlsServer(certs, extra_env={"QDRANT__TLS__CERT": os.path.join(rot, "server.pem"),
                                    "QDRANT__TLS__KEY": os.path.join(rot, "server.key"),
                                    "QDRANT__TLS__CERT_TTL": "1"})
    try:
        first = served_certificate(certs, s.port, ["http/1.1"])
        assert served_certificate(certs, s.grpc_port, ["h2"]) == first
        # A pair that does not match (new certificate, old key) is not taken: the old one stays.
        shutil.copy(os.path.join(certs, "next.pem"), os.path.join(rot, "server.pem"))
        time.sleep(1.5)
        assert served_certificate(certs, s.port, ["http/1.1"]) == first
        # The matching key arrives: the next reload serves the new certificate on both ports.
        shutil.copy(os.path.join(certs, "next.key"), os.path.join(rot, "server.key"))
        time.sleep(1.5)
        second = served_certificate(certs, s.port, ["http/1.1"])
        assert second != first
        assert served_certificate(certs, s.grpc_port, ["h2"]) == second
        client = QdrantClient(url=f"https://localhost:{s.port}", verify=context(certs), timeout=30)
        round_trip(client, "rotated")
        assert b"do not match" in open(s.log.name, "rb").read()
    finally:
        s.stop()


def test_missing_certificate_stops_startup(certs):
    tmp = tempfile.mkdtemp(prefix="qdrant-tls-bad-")
    env = dict(os.environ, QDRANT__SERVICE__ENABLE_TLS="true", QDRANT__TLS__CERT=os.path.join(tmp, "nope.pem"),
               QDRANT__TLS__KEY=os.path.join(certs, "server.key"))
    r = subprocess.run([BIN, "--storage", "sqlite", "--storage-path", os.path.join(tmp, "s"), "--host", "127.0.0.1",
                        "--http-port", str(free_port()), "--grpc-port", str(free_port())],
                       env=env, cwd=tmp, capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"tls.cert" in r.stderr, r.stderr
