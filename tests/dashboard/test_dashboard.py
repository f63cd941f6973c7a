"""End to end: the dashboard in headless Chromium (Debian's `chromium` package) against a real
server with data. The page is loaded, left to run its scripts and polls, and its DOM is read
back (`--dump-dom`); the figures it shows must be the ones the REST API gives. A screenshot is
saved under test-artifacts/ for people to look at.

Skips (does not fail) when Chromium is not installed: `apt-get install chromium`, which
scripts/install-deps.sh does. Only the standard library and pytest are needed.
"""

import html.parser
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("QDRANT_BIN", os.path.join(ROOT, "target", "debug", "qdrant"))
ARTIFACTS = os.environ.get("TEST_ARTIFACTS", os.path.join(ROOT, "test-artifacts"))


def find_chromium():
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed: the dashboard end-to-end test needs Debian's `chromium` package "
    "(apt-get install chromium; scripts/install-deps.sh installs it)",
)


# ---- a real server ---------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp, args=(), env=None):
        self.port = free_port()
        os.makedirs(tmp, exist_ok=True)
        self.log = open(os.path.join(tmp, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [BIN, "--storage-path", os.path.join(tmp, "storage"), "--http-port", str(self.port),
             "--grpc-port", str(free_port()), "--host", "127.0.0.1", *args],
            stdout=subprocess.DEVNULL, stderr=self.log, cwd=tmp,
            env=None if env is None else {**os.environ, **env},
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}")
            try:
                if self.call("GET", "/readyz", raw=True)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def call(self, method, path, body=None, raw=False):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, text = r.status, r.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        if raw:
            return status, text
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def ok(self, method, path, body=None):
        status, v = self.call(method, path, body)
        assert 200 <= status < 300, f"{method} {path} -> {status}: {v}"
        return v["result"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


# ---- a small DOM from Chromium's dump --------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.texts = tag, dict(attrs), parent, [], []

    def text(self):
        return "".join(t if isinstance(t, str) else t.text() for t in self.texts)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()

    def find_all(self, tag=None, **attrs):
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [n for n in self.iter()
                if (tag is None or n.tag == tag)
                and all((n.attrs.get(k) == v) if v is not True else (k in n.attrs) for k, v in want.items())]

    def find(self, tag=None, **attrs):
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def by_id(self, ident):
        return self.find(id=ident)


class DomBuilder(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.cur = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        self.cur.texts.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        self.cur.texts.append(node)

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.texts.append(data)


def parse_dom(text):
    b = DomBuilder()
    b.feed(text)
    return b.root


def chromium(args, timeout=120):
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", "--mute-audio", f"--user-data-dir={profile}", *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


# ---- data ------------------------------------------------------------------------------------


def load_data(s):
    s.ok("PUT", "/collections/products", {
        "vectors": {"size": 8, "distance": "Cosine"},
        "shard_number": 3,
        "optimizers_config": {"indexing_threshold": 2},
    })
    points = [{"id": i, "vector": [((i * (k + 3)) % 17) / 17.0 + 0.01 for k in range(8)],
               "payload": {"name": f"item {i}", "price": i * 1.5, "tags": ["a", "b"][: 1 + i % 2]}}
              for i in range(1, 601)]
    for start in range(0, len(points), 200):
        s.ok("PUT", "/collections/products/points?wait=true", {"points": points[start:start + 200]})
    s.ok("PUT", "/collections/notes", {"vectors": {"text": {"size": 4, "distance": "Dot"}}})
    s.ok("PUT", "/collections/notes/points?wait=true", {"points": [
        {"id": i, "vector": {"text": [1.0, i, 0.0, 0.5]}, "payload": {"note": f"<b>note {i}</b>"}}
        for i in range(1, 13)]})
    s.ok("PUT", "/collections/empty", {"vectors": {"size": 2, "distance": "Euclid"}})


def figures(info):
    return (info["status"], info["points_count"], info["indexed_vectors_count"], info["segments_count"],
            [(sh["points_count"], sh["segments_count"], sh["ram_vectors_bytes"], sh["ram_payload_bytes"],
              sh["ram_index_bytes"]) for sh in info["shards"]])


def wait_settled(s, names, timeout=120):
    """Until every collection is green, no optimization runs, and the figures stay the same
    over a few polls (the optimizer may still merge segments right after indexing)."""
    deadline = time.time() + timeout
    last, stable, infos = None, 0, {}
    while time.time() < deadline:
        infos = {n: s.ok("GET", f"/collections/{n}") for n in names}
        running = [n for n in names if s.ok("GET", f"/collections/{n}/optimizations")["running"]]
        now = {n: figures(i) for n, i in infos.items()}
        if all(i["status"] == "green" for i in infos.values()) and not running and now == last:
            stable += 1
            if stable >= 3:
                return infos
        else:
            stable = 0
        last = now
        time.sleep(0.5)
    raise AssertionError(f"collections did not settle: {infos}")


def cells(row):
    return {td.attrs["data-field"]: td for td in row.find_all("td") if "data-field" in td.attrs}


def digits(text):
    return text.replace(",", "").strip()


# ---- the test --------------------------------------------------------------------------------


@pytest.fixture()
def server():
    if not os.path.exists(BIN):
        pytest.fail(f"server binary {BIN} not built (cargo build --bin qdrant)")
    tmp = tempfile.mkdtemp(prefix="qdrant-dashboard-")
    srv = Server(tmp)
    yield srv
    srv.stop()


def test_dashboard_shows_what_the_api_says(server):
    s = server
    load_data(s)
    names = ["empty", "notes", "products"]

    snapshot = None
    status, body = s.call("POST", "/collections/products/snapshots?wait=true")
    if status == 404 and "no endpoint" in json.dumps(body):
        print("NOTE: snapshot endpoints are absent on this server; the snapshot part is skipped")
    else:
        assert status == 200, body
        snapshot = body["result"]

    infos = wait_settled(s, names)
    optimizations = s.ok("GET", "/collections/products/optimizations")
    scroll = s.ok("POST", "/collections/products/points/scroll", {"limit": 10, "with_payload": True})
    snapshots = s.ok("GET", "/collections/products/snapshots") if snapshot else None

    url = f"{s.url}/dashboard?collection=products&interval=1000"
    run = chromium(["--virtual-time-budget=15000", "--window-size=1400,2200", "--dump-dom", url])
    assert run.returncode == 0, run.stderr[-3000:]
    after = {n: figures(s.ok("GET", f"/collections/{n}")) for n in names}
    assert after == {n: figures(i) for n, i in infos.items()}, "figures changed while the page loaded"
    dom = parse_dom(run.stdout)
    body_el = dom.find("body")
    assert body_el is not None, run.stdout[:2000]
    error = dom.by_id("error")
    assert body_el.attrs.get("data-loaded") == "1", \
        f"page never finished loading; error box: {error.text() if error else ''}"
    assert "hidden" in error.attrs, f"dashboard shows an error: {error.text()}"

    # The collections table: one row per collection, figures equal to collection info.
    rows = dom.by_id("collections").find_all("tr", data_collection=True)
    assert [r.attrs["data-collection"] for r in rows] == names
    for row in rows:
        name = row.attrs["data-collection"]
        info = infos[name]
        c = cells(row)
        assert c["status"].attrs["data-value"] == info["status"] == "green"
        assert c["status"].text().strip() == info["status"]
        for field in ("points_count", "indexed_vectors_count", "segments_count"):
            assert int(c[field].attrs["data-value"]) == info[field], (name, field)
            assert digits(c[field].text()) == str(info[field]), (name, field, c[field].text())
        assert int(c["shards"].attrs["data-value"]) == len(info["shards"])
        ram = sum(sh["ram_vectors_bytes"] + sh["ram_payload_bytes"] + sh["ram_index_bytes"] for sh in info["shards"])
        assert int(c["ram_bytes"].attrs["data-value"]) == ram, name
        disk_shown = int(c["disk_bytes"].attrs["data-value"])
        disk_api = sum(sh["disk_bytes"] for sh in info["shards"])
        # Disk use moves a little on its own (background flushes); the same order is enough.
        assert disk_shown > 0 and abs(disk_shown - disk_api) <= 0.5 * disk_api, (name, disk_shown, disk_api)
    assert infos["products"]["points_count"] == 600
    assert infos["products"]["indexed_vectors_count"] > 0, "the low indexing threshold built an index"

    total = sum(i["points_count"] for i in infos.values())
    assert dom.by_id("total-points").attrs["data-value"] == str(total)
    assert digits(dom.by_id("total-points").text()) == str(total)
    assert dom.by_id("total-collections").attrs["data-value"] == "3"

    # RAM chart bars carry the same figures.
    for g in dom.by_id("usage-bars").find_all("g", data_collection=True):
        info = infos[g.attrs["data-collection"]]
        ram = sum(sh["ram_vectors_bytes"] + sh["ram_payload_bytes"] + sh["ram_index_bytes"] for sh in info["shards"])
        assert int(g.attrs["data-ram"]) == ram

    # The selected collection: shard distribution and per-shard table.
    detail = dom.by_id("detail")
    assert "hidden" not in detail.attrs and detail.attrs.get("data-collection") == "products"
    api_shards = {str(sh["shard_id"]): sh for sh in infos["products"]["shards"]}
    bars = dom.by_id("shard-distribution").find_all("g", data_shard=True)
    assert {b.attrs["data-shard"]: int(b.attrs["data-points"]) for b in bars} == \
        {k: v["points_count"] for k, v in api_shards.items()}
    shard_rows = dom.by_id("shards").find_all("tr", data_shard=True)
    assert len(shard_rows) == 3
    for r in shard_rows:
        c = cells(r)
        sh = api_shards[r.attrs["data-shard"]]
        for field in ("points_count", "segments_count", "ram_vectors_bytes", "ram_payload_bytes", "ram_index_bytes"):
            assert int(c[field].attrs["data-value"]) == sh[field], field
    assert sum(int(cells(r)["points_count"].attrs["data-value"]) for r in shard_rows) == 600

    # Optimization progress: the finished ones (the index builds) are listed.
    shown = dom.by_id("optimizations").find_all(data_optimization="completed")
    assert len(shown) == min(5, len(optimizations["completed"]))
    assert optimizations["completed"], "index builds are reported as completed optimizations"

    # The search console ran the default scroll: same points, same payloads.
    result_rows = dom.by_id("search-results").find_all("tr", data_id=True)
    assert [json.loads(r.attrs["data-id"]) for r in result_rows] == [p["id"] for p in scroll["points"]]
    first_payload = json.loads(cells(result_rows[0])["payload"].text())
    assert first_payload == scroll["points"][0]["payload"]
    assert dom.by_id("search-status").attrs.get("data-count") == str(len(scroll["points"]))

    # Snapshots: the one created above is listed with its size and a download link.
    if snapshot is not None:
        snap_rows = dom.by_id("snapshots").find_all("tr", data_snapshot=True)
        listed = {r.attrs["data-snapshot"]: r for r in snap_rows}
        assert set(listed) == {d["name"] for d in snapshots}
        row = listed[snapshot["name"]]
        assert int(cells(row)["size"].attrs["data-value"]) == snapshot["size"]
        link = row.find("a", download=True)
        assert link is not None and link.attrs["href"].endswith("/snapshots/" + snapshot["name"])
        # The link downloads the very file.
        status, data = s.call("GET", link.attrs["href"], raw=True)
        assert status == 200 and len(data) > 0

    # A screenshot for people, kept as a test artifact.
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "dashboard.png")
    if os.path.exists(shot):
        os.remove(shot)
    run = chromium(["--virtual-time-budget=8000", "--window-size=1400,2000", f"--screenshot={shot}", url])
    assert run.returncode == 0, run.stderr[-3000:]
    with open(shot, "rb") as f:
        png = f.read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, len(png)
    print(f"screenshot: {shot}")


def test_dashboard_shows_cluster_peers_and_replica_placement():
    """Three peers: the dashboard of one lists every peer with its URI and role, and the replica
    placement of a replicated collection, as /cluster and /collections/{name}/cluster say."""
    if not os.path.exists(BIN):
        pytest.fail(f"server binary {BIN} not built (cargo build --bin qdrant)")
    tmp = tempfile.mkdtemp(prefix="qdrant-dashboard-cluster-")
    p2p = [free_port() for _ in range(3)]
    peers = []
    try:
        for i, port in enumerate(p2p):
            args = ["--uri", f"http://127.0.0.1:{port}"] + (["--bootstrap", f"http://127.0.0.1:{p2p[0]}"] if i else [])
            env = {"QDRANT__CLUSTER__ENABLED": "true", "QDRANT__CLUSTER__P2P__PORT": str(port)}
            peers.append(Server(os.path.join(tmp, f"p{i}"), args, env))
        s = peers[1]
        deadline = time.time() + 30
        while len(s.ok("GET", "/cluster")["peers"]) < 3:
            assert time.time() < deadline
            time.sleep(0.1)
        s.ok("PUT", "/collections/replicated",
             {"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3, "replication_factor": 2})
        cluster = s.ok("GET", "/cluster")
        placement = s.ok("GET", "/collections/replicated/cluster")

        url = f"{s.url}/dashboard?collection=replicated&interval=1000"
        run = chromium(["--virtual-time-budget=10000", "--window-size=1400,2200", "--dump-dom", url])
        assert run.returncode == 0, run.stderr[-3000:]
        dom = parse_dom(run.stdout)
        assert dom.find("body").attrs.get("data-loaded") == "1"
        assert "hidden" not in dom.by_id("cluster").attrs
        rows = dom.by_id("peers").find_all("tr", data_peer=True)
        assert sorted(r.attrs["data-peer"] for r in rows) == sorted(cluster["peers"])
        for r in rows:
            c = cells(r)
            pid = r.attrs["data-peer"]
            assert c["uri"].attrs["data-value"] == cluster["peers"][pid]["uri"]
            assert c["role"].attrs["data-value"] == ("leader" if str(cluster["raft_info"]["leader"]) == pid else "follower")
        want = {}
        for sh in placement["local_shards"]:
            want.setdefault(str(sh["shard_id"]), []).append((str(placement["peer_id"]), sh["state"]))
        for sh in placement["remote_shards"]:
            want.setdefault(str(sh["shard_id"]), []).append((str(sh["peer_id"]), sh["state"]))
        shown = {r.attrs["data-shard"]: cells(r)["replicas"].attrs["data-value"]
                 for r in dom.by_id("placement").find_all("tr", data_shard=True)}
        assert shown == {k: ";".join(f"{p}={st}" for p, st in sorted(v)) for k, v in want.items()}
    finally:
        for p in peers:
            p.stop()
