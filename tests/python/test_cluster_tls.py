"""Cluster mode with TLS between peers (`cluster.p2p.enable_tls`, mutual TLS as Qdrant runs it:
each peer presents `tls.cert` and checks the other's against `tls.ca_cert`). Three real peers
with certificates of one CA form a cluster over https:// URIs and serve a replicated collection
(a shard copied between peers included) through the official client; the P2P port refuses
plain connections and clients without a certificate of that CA; a peer holding another CA's
certificate cannot join; a URI of the wrong scheme and a missing CA file stop start-up.
Certificates come from the `openssl` command."""

import os
import socket
import ssl
import subprocess
import tempfile
import time

import pytest
from qdrant_client import QdrantClient, models

from conftest import BACKENDS, ServerProcess, free_port, wait_formed

DIM = 8


def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "2", "-subj", f"/CN={name}")


def make_cert(d, ca, name, names="DNS:localhost,IP:127.0.0.1"):
    """A certificate for `names` signed by `ca`, usable by servers and clients."""
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write(f"subjectAltName={names}\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", "/CN=localhost")
    openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "ext.cnf")


@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="qdrant-p2p-tls-")
    make_ca(d, "ca")
    make_cert(d, "ca", "peer")
    make_cert(d, "ca", "misnamed", names="DNS:elsewhere.invalid")
    make_ca(d, "rogue_ca")
    make_cert(d, "rogue_ca", "rogue")
    return d


def tls_env(certs, p2p, cert="peer", ca="ca"):
    return {
        "QDRANT__CLUSTER__ENABLED": "true",
        "QDRANT__CLUSTER__P2P__PORT": str(p2p),
        "QDRANT__CLUSTER__P2P__ENABLE_TLS": "true",
        "QDRANT__TLS__CERT": os.path.join(certs, f"{cert}.pem"),
        "QDRANT__TLS__KEY": os.path.join(certs, f"{cert}.key"),
        "QDRANT__TLS__CA_CERT": os.path.join(certs, f"{ca}.pem"),
    }


def peer_args(p2p, bootstrap=None):
    args = ["--uri", f"https://127.0.0.1:{p2p}"]
    if bootstrap:
        args += ["--bootstrap", f"https://127.0.0.1:{bootstrap}"]
    return args


@pytest.fixture(scope="module", params=BACKENDS)
def peers(request, certs):
    root = tempfile.mkdtemp(prefix=f"qdrant-p2p-tls-{request.param}-")
    ports = [free_port() for _ in range(3)]
    procs = []
    for i, (name, p2p) in enumerate(zip("abc", ports)):
        boot = ports[0] if i else None
        procs.append(ServerProcess(request.param, os.path.join(root, name), args=peer_args(p2p, boot),
                                   env=tls_env(certs, p2p)))
    wait_formed(procs, 3)
    yield procs, ports, root
    for p in procs:
        p.stop()


def holders(client, name):
    info = client.collection_cluster_info(name)
    out = {}
    for s in info.local_shards:
        out.setdefault(s.shard_id, []).append((info.peer_id, s.state))
    for s in info.remote_shards:
        out.setdefault(s.shard_id, []).append((s.peer_id, s.state))
    return info, out


def test_peers_talk_over_tls(peers):
    procs, ports, _ = peers
    a, b, c = (QdrantClient(url=p.url, grpc_port=p.grpc_port, prefer_grpc=g) for p, g in
               zip(procs, (False, True, False)))
    status = a.cluster_status()
    assert sorted(p.uri for p in status.peers.values()) == sorted(f"https://127.0.0.1:{p}" for p in ports)

    name = "p2p_tls"
    a.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT),
                        shard_number=3, replication_factor=2)
    pts = [models.PointStruct(id=i, vector=[float((i * 7 + j) % 11) for j in range(DIM)], payload={"n": i})
           for i in range(300)]
    b.upsert(name, pts, wait=True)
    for reader in (a, b, c):
        assert reader.count(name, exact=True).count == 300
        got = reader.retrieve(name, [0, 150, 299], with_payload=True)
        assert sorted(p.payload["n"] for p in got) == [0, 150, 299]
    info, by_shard = holders(a, name)
    assert all(state == models.ReplicaState.ACTIVE for reps in by_shard.values() for _, state in reps)

    # A copy between peers goes over the same TLS connections.
    all_peers = [int(p) for p in status.peers]
    shard, reps = next(iter(by_shard.items()))
    source = reps[0][0]
    target = next(p for p in all_peers if p not in [r[0] for r in reps])
    op = models.MoveShardOperation(move_shard=models.MoveShard(shard_id=shard, from_peer_id=source,
                                                               to_peer_id=target))
    assert c.cluster_collection_update(name, op)
    deadline = time.time() + 30
    while True:
        info, by_shard = holders(a, name)
        if not info.shard_transfers and target in [r[0] for r in by_shard[shard]]:
            break
        assert time.time() < deadline, info
        time.sleep(0.1)
    assert all(state == models.ReplicaState.ACTIVE for reps in by_shard.values() for _, state in reps)
    for reader in (a, b, c):
        assert reader.count(name, exact=True).count == 300
    a.delete_collection(name)


def tls_handshake(port, certs, cert=None):
    """A TLS handshake and one read with the P2P port; returns the error, or None."""
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.pem"))
    ctx.set_alpn_protocols(["h2"])
    if cert:
        ctx.load_cert_chain(os.path.join(certs, f"{cert}.pem"), os.path.join(certs, f"{cert}.key"))
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                # TLS 1.3 reports a refused client certificate on the first read.
                s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                s.recv(1)
        return None
    except (ssl.SSLError, OSError) as e:
        return e


def test_the_p2p_port_requires_a_certificate_of_the_cluster_ca(peers, certs):
    _, ports, _ = peers
    # With the cluster's certificate the handshake completes (the check can tell a refusal).
    assert tls_handshake(ports[1], certs, cert="peer") is None
    assert tls_handshake(ports[1], certs) is not None, "no client certificate"
    assert tls_handshake(ports[1], certs, cert="rogue") is not None, "another CA's certificate"
    # Plain HTTP/2 gets no answer from a TLS port.
    with socket.create_connection(("127.0.0.1", ports[1]), timeout=5) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00" * 64)
        try:
            got = s.recv(64)
        except OSError:
            got = b""
        assert not got.startswith(b"\x00\x00"), got


def start_peer_process(backend, root, name, args, env):
    """A peer that must not make it into the cluster, started without waiting for it."""
    return ServerProcess(backend, os.path.join(root, name), args=args, env=env, wait=False)


def finish(srv, timeout=90):
    """Wait for such a peer to stop; returns (exit code, log text)."""
    try:
        code = srv.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait()
        code = None
    srv.log.close()
    with open(srv.log.name) as f:
        return code, f.read()


def start_failing(backend, root, name, args, env):
    return finish(start_peer_process(backend, root, name, args, env))


def test_peers_check_each_others_certificates(certs, tmp_path):
    """Transport only (one backend). Both refused peers retry their bootstrap for about 30 s,
    side by side: one presents a certificate of another CA (the member refuses it), the other
    reaches a member whose certificate does not name the URI's host (the joiner refuses it)."""
    p2p, misnamed_p2p = free_port(), free_port()
    first = ServerProcess("sqlite", str(tmp_path / "first"), args=peer_args(p2p), env=tls_env(certs, p2p))
    misnamed = ServerProcess("sqlite", str(tmp_path / "misnamed"), args=peer_args(misnamed_p2p),
                             env=tls_env(certs, misnamed_p2p, cert="misnamed"))
    try:
        rogue_p2p, joiner_p2p = free_port(), free_port()
        rogue = start_peer_process("sqlite", str(tmp_path), "rogue", peer_args(rogue_p2p, p2p),
                                   tls_env(certs, rogue_p2p, cert="rogue"))
        joiner = start_peer_process("sqlite", str(tmp_path), "joiner", peer_args(joiner_p2p, misnamed_p2p),
                                    tls_env(certs, joiner_p2p))
        code, log = finish(rogue)
        assert code not in (0, None) and "cannot join the cluster" in log, log
        code, log = finish(joiner)
        assert code not in (0, None) and "certificate not valid for name" in log, log
        with open(first.log.name) as f:
            refused = f.read()
        assert "P2P TLS handshake failed" in refused and "UnknownIssuer" in refused, refused
        assert len(QdrantClient(url=first.url).cluster_status().peers) == 1
        assert len(QdrantClient(url=misnamed.url).cluster_status().peers) == 1
    finally:
        first.stop()
        misnamed.stop()


def test_wrong_scheme_and_missing_files_stop_start_up(certs, tmp_path):
    p2p = free_port()
    env = tls_env(certs, p2p)
    code, log = start_failing("sqlite", str(tmp_path), "http_uri", ["--uri", f"http://127.0.0.1:{p2p}"], env)
    assert code not in (0, None) and "must start with https://" in log, log
    code, log = start_failing("sqlite", str(tmp_path), "http_bootstrap",
                              peer_args(p2p) + ["--bootstrap", f"http://127.0.0.1:{free_port()}"], env)
    assert code not in (0, None) and "--bootstrap" in log and "must start with https://" in log, log
    plain = {k: v for k, v in env.items() if "TLS" not in k}
    code, log = start_failing("sqlite", str(tmp_path), "https_uri", ["--uri", f"https://127.0.0.1:{p2p}"], plain)
    assert code not in (0, None) and "cluster.p2p.enable_tls" in log, log
    # A cluster formed without TLS keeps its http:// URIs: switching TLS on is refused at start.
    plain_peer = ServerProcess("sqlite", str(tmp_path / "formed"), args=["--uri", f"http://127.0.0.1:{p2p}"],
                               env=plain)
    plain_peer.stop()
    code, log = start_failing("sqlite", str(tmp_path), "formed", peer_args(p2p), env)
    assert code not in (0, None) and "cannot be switched on or off for an existing cluster" in log, log
    missing = dict(env, QDRANT__TLS__CA_CERT=str(tmp_path / "nope.pem"))
    code, log = start_failing("sqlite", str(tmp_path), "no_ca", peer_args(p2p), missing)
    assert code not in (0, None) and "tls.ca_cert" in log, log
