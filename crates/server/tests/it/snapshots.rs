//! Snapshots through the REST API and the CLI: create -> download -> upload/recover into a
//! second server with identical answers, for both backends and across them; damaged input
//! refused with the old collection untouched; atomic replacement under reads; consistency
//! under concurrent writes; full-storage snapshots and the start-up / offline tools.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{assert_same, bin, create_collection, free_port, vector, Server, BACKENDS};

/// A server whose snapshots live in `<dir>/snapshots` and storage in `<dir>/<name>`.
fn start(dir: &Path, name: &str, backend: &str) -> Server {
    let snaps = dir.join("snapshots");
    let snaps = snaps.to_str().expect("utf8");
    Server::start_with(&dir.join(name), backend, &[("QDRANT__STORAGE__SNAPSHOTS_PATH", snaps)])
}

const DIM: usize = 16;

/// A collection with `n` points in `shards` shards, a payload index, small segments (so some
/// are sealed and get HNSW indexes: index data is part of the snapshot) and a few deletions.
fn fill(s: &Server, name: &str, n: u64, shards: u32) {
    create_collection(
        s,
        name,
        json!({
            "vectors": {"size": DIM, "distance": "Cosine"},
            "shard_number": shards,
            "optimizers_config": {"indexing_threshold": 20},
        }),
    );
    s.ok(
        "PUT",
        &format!("/collections/{name}/index?wait=true"),
        Some(&json!({"field_name": "city", "field_schema": "keyword"})),
    );
    let cities = ["Berlin", "London", "Paris", "Rome"];
    for start in (0..n).step_by(500) {
        let points: Vec<Value> = (start..(start + 500).min(n))
            .map(|i| {
                let id = if i % 10 == 3 { json!(format!("00000000-0000-0000-0000-{i:012}")) } else { json!(i) };
                json!({"id": id, "vector": vector(i, DIM), "payload": {"n": i, "city": cities[(i % 4) as usize], "tags": [i % 3, i % 5]}})
            })
            .collect();
        s.ok("PUT", &format!("/collections/{name}/points?wait=true"), Some(&json!({ "points": points })));
    }
    s.ok(
        "POST",
        &format!("/collections/{name}/points/delete?wait=true"),
        Some(&json!({"filter": {"must": [{"key": "n", "range": {"gte": 100, "lt": 110}}]}})),
    );
    // Snapshot with the indexes built: a snapshot taken earlier holds unindexed segments, and
    // the restored copy builds its own graphs (equally valid, not bit-identical answers).
    wait_green(s, name);
}

fn wait_green(s: &dyn Api, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if s.get_ok("GET", &format!("/collections/{name}"), None)["status"] == "green" {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("collection {name} did not become green");
}

/// Answers that must be identical between a collection and its restored copy.
fn answers(s: &dyn Api, name: &str) -> Vec<Value> {
    wait_green(s, name);
    let mut out = Vec::new();
    for q in 0..4u64 {
        for exact in [true, false] {
            let r = s.get_ok(
                "POST",
                &format!("/collections/{name}/points/search"),
                Some(&json!({"vector": vector(1_000_000 + q, DIM), "limit": 10, "with_payload": true, "params": {"exact": exact}})),
            );
            out.push(r);
        }
        out.push(s.get_ok(
            "POST",
            &format!("/collections/{name}/points/search"),
            Some(&json!({"vector": vector(2_000_000 + q, DIM), "limit": 5,
                "filter": {"must": [{"key": "city", "match": {"value": "Paris"}}]}, "with_vector": true})),
        ));
    }
    out.push(s.get_ok(
        "POST",
        &format!("/collections/{name}/points/scroll"),
        Some(&json!({"limit": 40, "offset": 450, "with_vector": true})),
    ));
    out.push(s.get_ok("POST", &format!("/collections/{name}/points/count"), Some(&json!({"exact": true}))));
    let info = s.get_ok("GET", &format!("/collections/{name}"), None);
    out.push(json!({"points": info["points_count"], "schema": info["payload_schema"], "vectors": info["config"]["params"]["vectors"]}));
    out
}

fn download(s: &Server, path: &str) -> Vec<u8> {
    let resp = s.client.get(s.url(path)).send().expect("download");
    assert_eq!(resp.status().as_u16(), 200, "GET {path}");
    assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/octet-stream"));
    resp.bytes().expect("body").to_vec()
}

/// Multipart upload built by hand (field `snapshot`); returns (status, body).
fn upload(s: &Server, name: &str, query: &str, bytes: &[u8]) -> (u16, Value) {
    let boundary = "----qdrant-test-boundary-7d3f";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"snapshot\"; filename=\"x.snapshot\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let resp = s
        .client
        .post(s.url(&format!("/collections/{name}/snapshots/upload{query}")))
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .expect("upload");
    let status = resp.status().as_u16();
    let text = resp.text().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn create_snapshot(s: &Server, name: &str) -> Value {
    let d = s.ok("POST", &format!("/collections/{name}/snapshots?wait=true"), None);
    let checksum = d["checksum"].as_str().expect("checksum");
    assert_eq!(checksum.len(), 64, "{d}");
    assert!(d["name"].as_str().expect("name").ends_with(".snapshot"), "{d}");
    assert!(d["size"].as_u64().expect("size") > 0);
    assert!(d["creation_time"].is_string(), "{d}");
    d
}

/// A private CA and a certificate for `localhost` / 127.0.0.1 signed by it, made with the
/// `openssl` command (scripts/install-deps.sh installs it). Returns (ca.pem, cert.pem, key.pem).
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (apt install openssl)");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=qdrant test CA",
    ]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "req.csr", "-subj", "/CN=localhost"]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
        .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

/// A static HTTPS file server (Python's http.server over TLS) for `root` on `port`.
struct HttpsServer(Child);

impl HttpsServer {
    fn start(root: &Path, cert: &Path, key: &Path, port: u16) -> HttpsServer {
        let script = format!(
            "import http.server, ssl, functools\n\
             h = functools.partial(http.server.SimpleHTTPRequestHandler, directory={root:?})\n\
             s = http.server.ThreadingHTTPServer(('127.0.0.1', {port}), h)\n\
             c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
             c.load_cert_chain({cert:?}, {key:?})\n\
             s.socket = c.wrap_socket(s.socket, server_side=True)\n\
             s.serve_forever()\n",
            root = root.display().to_string(),
            cert = cert.display().to_string(),
            key = key.display().to_string(),
        );
        let child = Command::new("python3").args(["-c", &script]).stderr(Stdio::null()).spawn().expect("python3");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the HTTPS test server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        HttpsServer(child)
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn recover_from_https() {
    let dir = tempfile::tempdir().expect("tmp");
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).expect("dir");
    let (ca, cert, key) = make_certs(dir.path());
    let a = start(dir.path(), "a", BACKENDS[1]);
    fill(&a, "src", 600, 2);
    let d = create_snapshot(&a, "src");
    let bytes = download(&a, &format!("/collections/src/snapshots/{}", d["name"].as_str().expect("name")));
    std::fs::write(served.join("x.snapshot"), &bytes).expect("write");
    let expected = answers(&a, "src");
    let port = free_port();
    let _https = HttpsServer::start(&served, &cert, &key, port);
    let ca_env = ca.to_str().expect("utf8");
    for (i, backend) in BACKENDS.iter().enumerate() {
        // A server that trusts the private CA (SSL_CERT_FILE, as for any system store).
        let b = Server::start_with(&dir.path().join(format!("b{i}")), backend, &[("SSL_CERT_FILE", ca_env)]);
        let body = json!({"location": format!("https://localhost:{port}/x.snapshot"), "checksum": d["checksum"]});
        b.ok("PUT", "/collections/dst/snapshots/recover", Some(&body));
        assert_same(&answers(&b, "dst"), &expected, &format!("recover over https into {backend}"));
        // A missing file: 400 naming the HTTP status, nothing created.
        let missing = json!({"location": format!("https://localhost:{port}/nope.snapshot")});
        let (code, v) = b.call("PUT", "/collections/other/snapshots/recover", Some(&missing));
        assert_eq!(code, 400, "{v}");
        assert!(v.to_string().contains("404"), "{v}");
        assert_eq!(b.call("GET", "/collections/other", None).0, 404);
    }
    // A server that does not trust the certificate refuses the download with a clear 400.
    let c = start(dir.path(), "c", BACKENDS[0]);
    let body = json!({"location": format!("https://localhost:{port}/x.snapshot")});
    let (code, v) = c.call("PUT", "/collections/dst/snapshots/recover", Some(&body));
    assert_eq!(code, 400, "{v}");
    let msg = v["status"]["error"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("TLS handshake failed") && msg.contains("certificate"), "{msg}");
    assert_eq!(c.call("GET", "/collections/dst", None).0, 404, "nothing restored");
}

#[test]
fn round_trip_between_every_backend_pair() {
    for from in BACKENDS {
        let dir = tempfile::tempdir().expect("tmp");
        let a = start(dir.path(), "a", from);
        fill(&a, "src", 1500, 2);
        let d = create_snapshot(&a, "src");
        let name = d["name"].as_str().expect("name");
        let list = a.ok("GET", "/collections/src/snapshots", None);
        assert_eq!(list.as_array().map(|l| l.len()), Some(1), "{list}");
        assert_eq!(list[0], d, "listing shows what creation returned");
        let bytes = download(&a, &format!("/collections/src/snapshots/{name}"));
        assert_eq!(bytes.len() as u64, d["size"].as_u64().expect("size"));
        let expected = answers(&a, "src");
        for to in BACKENDS {
            let dir_b = tempfile::tempdir().expect("tmp");
            let b = start(dir_b.path(), "b", to);
            // Upload with the checksum the source reported: the server checks it.
            let q = format!("?priority=snapshot&checksum={}", d["checksum"].as_str().expect("sum"));
            let (status, body) = upload(&b, "dst", &q, &bytes);
            assert_eq!(status, 200, "{from} -> {to}: {body}");
            assert_eq!(body["result"], json!(true));
            assert_same(&answers(&b, "dst"), &expected, &format!("{from} -> {to}: upload"));
            // Recover straight from the source's download URL.
            let url = a.url(&format!("/collections/src/snapshots/{name}"));
            b.ok("PUT", "/collections/dst2/snapshots/recover", Some(&json!({"location": url, "priority": "replica"})));
            assert_same(&answers(&b, "dst2"), &expected, &format!("{from} -> {to}: recover from URL"));
            // The restored copy takes writes and survives a restart.
            b.ok(
                "PUT",
                "/collections/dst2/points?wait=true",
                Some(&json!({"points": [{"id": 999_999, "vector": vector(1, DIM)}]})),
            );
            drop(b);
            let b = start(dir_b.path(), "b", to);
            assert_same(&answers(&b, "dst"), &expected, &format!("{from} -> {to}: after restart"));
            assert_eq!(b.ok("POST", "/collections/dst2/points/count", None)["count"], json!(1500 - 10 + 1));
        }
    }
}

#[test]
fn local_locations_and_their_limits() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = start(dir.path(), "s", backend);
        fill(&s, "src", 600, 1);
        let d = create_snapshot(&s, "src");
        let name = d["name"].as_str().expect("name");
        let file = dir.path().join("snapshots").join("src").join(name);
        assert!(file.is_file());
        let expected = answers(&s, "src");
        // file:// URL inside the snapshots path, with the right checksum.
        s.ok(
            "PUT",
            "/collections/c1/snapshots/recover",
            Some(&json!({"location": format!("file://{}", file.display()), "checksum": d["checksum"]})),
        );
        // The seed form, a path relative to the snapshots path.
        s.ok("POST", "/collections/c2/restore", Some(&json!({"snapshot": format!("src/{name}")})));
        // An absolute path too.
        s.ok("POST", "/collections/c3/restore?wait=true", Some(&json!({"snapshot": file.display().to_string()})));
        let mut want = expected.clone();
        for c in ["c1", "c2", "c3"] {
            let got = answers(&s, c);
            // Everything but the collection's own name matches.
            if let Some(v) = want.last_mut() {
                *v = got.last().cloned().unwrap_or_default();
            }
            assert_same(&got, &want, &format!("{backend}: {c}"));
        }
        // Outside the allowed directories: 400, whatever the file.
        let outside = dir.path().join("elsewhere.snapshot");
        std::fs::copy(&file, &outside).expect("copy");
        for loc in
            [format!("file://{}", outside.display()), "/etc/passwd".into(), "src/../../elsewhere.snapshot".to_string()]
        {
            let (st, v) = s.call("PUT", "/collections/c4/snapshots/recover", Some(&json!({"location": loc})));
            assert_eq!(st, 400, "{loc}: {v}");
            assert!(v["status"]["error"].as_str().unwrap_or("").contains("outside the allowed directories"), "{v}");
        }
        let (st, _) = s.call("POST", "/collections/c4/restore", Some(&json!({"snapshot": "src/missing.snapshot"})));
        assert_eq!(st, 404);
        // Bad requests: unknown priority, a malformed checksum, https.
        let (st, _) = s.call(
            "PUT",
            "/collections/c4/snapshots/recover",
            Some(&json!({"location": loc_of(&file), "priority": "first"})),
        );
        assert_eq!(st, 400);
        let (st, _) = s.call(
            "PUT",
            "/collections/c4/snapshots/recover",
            Some(&json!({"location": loc_of(&file), "checksum": "abc"})),
        );
        assert_eq!(st, 400);
        let (st, v) = s.call(
            "PUT",
            "/collections/c4/snapshots/recover",
            Some(&json!({"location": "https://example.invalid/x.snapshot"})),
        );
        assert_eq!(st, 400, "{v}");
        assert!(!s.ok("GET", "/collections/c4/exists", None)["exists"].as_bool().unwrap_or(true));
        // Unknown collections and snapshots.
        assert_eq!(s.call("POST", "/collections/nope/snapshots", None).0, 404);
        assert_eq!(s.call("GET", "/collections/nope/snapshots", None).0, 404);
        assert_eq!(s.call("GET", "/collections/src/snapshots/nope.snapshot", None).0, 404);
        assert_eq!(s.call("GET", "/collections/src/snapshots/..", None).0, 404);
    }
}

fn loc_of(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Serves `bytes[..cut]` under a Content-Length of the full size, then hangs up.
fn broken_http_server(bytes: Vec<u8>, cut: usize) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let h = std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                bytes.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&bytes[..cut]);
            let _ = conn.flush();
        }
    });
    (port, h)
}

fn tmp_files(storage: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(storage.join("tmp")).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

fn collection_dirs(storage: &Path) -> usize {
    std::fs::read_dir(storage.join("collections")).map(|rd| rd.count()).unwrap_or(0)
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = start(dir.path(), "s", backend);
        fill(&s, "src", 1200, 2);
        fill(&s, "dst", 300, 1);
        let d = create_snapshot(&s, "src");
        let bytes = download(&s, &format!("/collections/src/snapshots/{}", d["name"].as_str().expect("name")));
        let before = answers(&s, "dst");
        let dirs = collection_dirs(&dir.path().join("s"));
        let n = bytes.len();
        let mut flipped = bytes.clone();
        flipped[n / 2] ^= 0x41;
        let mut newer = bytes.clone();
        // The manifest's format_version (first entry, JSON) rewritten in place.
        let text = String::from_utf8_lossy(&newer[..4096]).to_string();
        let at = text.find("\"format_version\": 2").expect("version field") + "\"format_version\": ".len();
        newer[at] = b'7';
        let cases: Vec<(&str, Vec<u8>, String)> = vec![
            ("truncated", bytes[..n / 2].to_vec(), String::new()),
            ("truncated near the end", bytes[..n - 2000].to_vec(), String::new()),
            ("flipped byte", flipped, String::new()),
            ("garbage", b"definitely not a tar archive".repeat(100), String::new()),
            ("empty", Vec::new(), String::new()),
            ("wrong checksum", bytes.clone(), format!("?checksum={}", "ab".repeat(32))),
            ("newer format", newer, String::new()),
        ];
        for (what, data, q) in cases {
            let (st, v) = upload(&s, "dst", &q, &data);
            assert_eq!(st, 400, "{backend} {what}: {v}");
            let msg = v["status"]["error"].as_str().unwrap_or("");
            assert!(!msg.is_empty(), "{what}: {v}");
            if what == "wrong checksum" {
                assert!(msg.contains("checksum mismatch"), "{msg}");
            }
            if what == "newer format" {
                assert!(msg.contains("incompatible snapshot format version"), "{msg}");
            }
            assert_same(&answers(&s, "dst"), &before, &format!("{backend} {what}: dst untouched"));
            assert_eq!(collection_dirs(&dir.path().join("s")), dirs, "{what}: no directory left behind");
            assert!(tmp_files(&dir.path().join("s")).is_empty(), "{what}: temp files removed");
        }
        // A URL that fails midway.
        let (port, h) = broken_http_server(bytes.clone(), n / 3);
        let (st, v) = s.call(
            "PUT",
            "/collections/dst/snapshots/recover",
            Some(&json!({"location": format!("http://127.0.0.1:{port}/x.snapshot")})),
        );
        h.join().expect("server thread");
        assert_eq!(st, 400, "{v}");
        assert_same(&answers(&s, "dst"), &before, "dst untouched");
        assert!(tmp_files(&dir.path().join("s")).is_empty());
        // A URL that answers 404 and one where nothing listens.
        let (st, _) = s.call(
            "PUT",
            "/collections/dst/snapshots/recover",
            Some(&json!({"location": s.url("/collections/src/snapshots/none.snapshot")})),
        );
        assert_eq!(st, 400);
        let (st, _) = s.call(
            "PUT",
            "/collections/dst/snapshots/recover",
            Some(&json!({"location": format!("http://127.0.0.1:{}/x", free_port())})),
        );
        assert_eq!(st, 400);
        // Multipart without the file field.
        let (st, _) =
            upload_raw(&s, "dst", b"--b\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--b--\r\n");
        assert_eq!(st, 400);
        assert_same(&answers(&s, "dst"), &before, "dst untouched");
    }
}

#[test]
fn uploads_are_not_limited_by_the_request_size() {
    let dir = tempfile::tempdir().expect("tmp");
    let snaps = dir.path().join("snapshots");
    let env = [
        ("QDRANT__STORAGE__SNAPSHOTS_PATH", snaps.to_str().expect("utf8")),
        ("QDRANT__SERVICE__MAX_REQUEST_SIZE_MB", "1"),
    ];
    let s = Server::start_with(&dir.path().join("s"), "rocksdb", &env);
    create_collection(&s, "big", json!({"vectors": {"size": 256, "distance": "Dot"}}));
    for start in (0..3000u64).step_by(100) {
        let points: Vec<Value> = (start..start + 100).map(|i| json!({"id": i, "vector": vector(i, 256)})).collect();
        s.ok("PUT", "/collections/big/points?wait=true", Some(&json!({ "points": points })));
    }
    let d = create_snapshot(&s, "big");
    assert!(d["size"].as_u64().expect("size") > 2 << 20, "{d}");
    let bytes = download(&s, &format!("/collections/big/snapshots/{}", d["name"].as_str().expect("name")));
    let (st, v) = upload(&s, "big2", "", &bytes);
    assert_eq!(st, 200, "{v}");
    assert_eq!(s.ok("POST", "/collections/big2/points/count", None)["count"], json!(3000));
}

fn upload_raw(s: &Server, name: &str, body: &[u8]) -> (u16, String) {
    let resp = s
        .client
        .post(s.url(&format!("/collections/{name}/snapshots/upload")))
        .header("content-type", "multipart/form-data; boundary=b")
        .body(body.to_vec())
        .send()
        .expect("upload");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

#[test]
fn restore_over_a_live_collection_is_atomic_for_readers() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Arc::new(start(dir.path(), "s", backend));
        fill(&s, "src", 2000, 2);
        fill(&s, "dst", 500, 1);
        let d = create_snapshot(&s, "src");
        let name = d["name"].as_str().expect("name").to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                while !stop.load(Ordering::SeqCst) {
                    let (st, v) = s.call("POST", "/collections/dst/points/count", Some(&json!({"exact": true})));
                    assert_eq!(st, 200, "{v}");
                    seen.insert(v["result"]["count"].as_u64().expect("count"));
                    let (st, v) = s.call(
                        "POST",
                        "/collections/dst/points/search",
                        Some(&json!({"vector": vector(5, DIM), "limit": 3})),
                    );
                    assert_eq!(st, 200, "{v}");
                }
                seen
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..3 {
            s.ok("POST", "/collections/dst/restore", Some(&json!({"snapshot": format!("src/{name}")})));
        }
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::SeqCst);
        let seen = reader.join().expect("reader");
        assert_eq!(seen, [490u64, 1990].into_iter().collect(), "{backend}: only the old or the new collection");
        assert_eq!(collection_dirs(&dir.path().join("s")), 2, "replaced directories are removed");
    }
}

#[test]
fn snapshot_while_writing_is_a_consistent_point_in_time() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Arc::new(start(dir.path(), "s", backend));
        create_collection(&s, "w", json!({"vectors": {"size": 4, "distance": "Dot"}}));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut batch = 0u64;
                while !stop.load(Ordering::SeqCst) && batch < 400 {
                    let points: Vec<Value> = (0..50)
                        .map(|j| json!({"id": batch * 50 + j, "vector": [1.0, 2.0, 3.0, j as f32], "payload": {"batch": batch}}))
                        .collect();
                    s.ok("PUT", "/collections/w/points?wait=true", Some(&json!({ "points": points })));
                    batch += 1;
                }
                batch
            })
        };
        let mut names = Vec::new();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(150));
            names.push(create_snapshot(&s, "w")["name"].as_str().expect("name").to_string());
        }
        stop.store(true, Ordering::SeqCst);
        let written = writer.join().expect("writer");
        assert!(written > 0);
        for (i, name) in names.iter().enumerate() {
            let c = format!("copy{i}");
            s.ok("POST", &format!("/collections/{c}/restore"), Some(&json!({"snapshot": format!("w/{name}")})));
            let r = s.ok(
                "POST",
                &format!("/collections/{c}/points/scroll"),
                Some(&json!({"limit": 100_000, "with_payload": true})),
            );
            let mut per_batch = std::collections::BTreeMap::<u64, u64>::new();
            for p in r["points"].as_array().expect("points") {
                *per_batch.entry(p["payload"]["batch"].as_u64().expect("batch")).or_default() += 1;
            }
            assert!(per_batch.values().all(|n| *n == 50), "{backend}: every write fully in or out: {per_batch:?}");
            let batches: Vec<u64> = per_batch.keys().copied().collect();
            assert_eq!(batches, (0..batches.len() as u64).collect::<Vec<_>>(), "a prefix of the writes");
        }
    }
}

#[test]
fn async_creation_deletion_and_full_snapshots() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = start(dir.path(), "s", backend);
        fill(&s, "a", 300, 1);
        fill(&s, "b", 200, 2);
        s.ok(
            "POST",
            "/collections/aliases",
            Some(&json!({"actions": [{"create_alias": {"collection_name": "a", "alias_name": "al"}}]})),
        );
        // wait=false: 202 accepted, the file shows up.
        let (st, v) = s.call("POST", "/collections/a/snapshots?wait=false", None);
        assert_eq!((st, v["status"].clone()), (202, json!("accepted")), "{v}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let listed = loop {
            let l = s.ok("GET", "/collections/a/snapshots", None);
            if l.as_array().is_some_and(|l| !l.is_empty()) || Instant::now() > deadline {
                break l;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let name = listed[0]["name"].as_str().expect("snapshot listed").to_string();
        // Snapshots through an alias land with the collection.
        create_snapshot(&s, "al");
        assert_eq!(s.ok("GET", "/collections/a/snapshots", None).as_array().map(|l| l.len()), Some(2));
        assert_eq!(s.ok("DELETE", &format!("/collections/a/snapshots/{name}"), None), json!(true));
        assert_eq!(s.call("DELETE", &format!("/collections/a/snapshots/{name}"), None).0, 404);
        assert_eq!(s.ok("GET", "/collections/a/snapshots", None).as_array().map(|l| l.len()), Some(1));

        // Full snapshot: listed, downloadable, restorable at start-up into a new storage.
        let full = s.ok("POST", "/snapshots", None);
        let fname = full["name"].as_str().expect("name").to_string();
        assert!(fname.starts_with("full-snapshot-"), "{full}");
        let l = s.ok("GET", "/snapshots", None);
        assert_eq!(l.as_array().map(|l| l.len()), Some(1), "{l}");
        let bytes = download(&s, &format!("/snapshots/{fname}"));
        assert_eq!(bytes.len() as u64, full["size"].as_u64().expect("size"));
        let want_a = answers(&s, "a");
        let want_b = answers(&s, "b");
        let file = dir.path().join("full.snapshot");
        std::fs::write(&file, &bytes).expect("write");
        for to in BACKENDS {
            let p = Proc::start(
                &dir.path().join(format!("restored-{to}")),
                to,
                &["--storage-snapshot", file.to_str().expect("utf8")],
            );
            assert_same(&answers(&p, "a"), &want_a, &format!("{backend} -> {to}"));
            assert_same(&answers(&p, "b"), &want_b, &format!("{backend} -> {to}"));
            let aliases = p.get_ok("GET", "/aliases", None);
            assert_eq!(aliases["aliases"], json!([{"alias_name": "al", "collection_name": "a"}]));
        }
        assert_eq!(s.ok("DELETE", &format!("/snapshots/{fname}"), None), json!(true));
        assert_eq!(s.ok("GET", "/snapshots", None), json!([]));
    }
}

/// A server started with extra flags; `server()` borrows it as a `Server` for requests.
struct Proc {
    child: Option<Child>,
    port: u16,
}

impl Proc {
    fn start(storage: &Path, backend: &str, args: &[&str]) -> Proc {
        let port = free_port();
        let log = std::fs::File::create(storage.with_extension("log")).expect("log");
        let child = Command::new(bin())
            .args(["--storage", backend, "--storage-path"])
            .arg(storage)
            .args(["--http-port", &port.to_string(), "--grpc-port", &free_port().to_string(), "--host", "127.0.0.1"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn");
        let p = Proc { child: Some(child), port };
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if client.get(format!("http://127.0.0.1:{port}/readyz")).send().is_ok_and(|r| r.status().is_success()) {
                return p;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "server with {args:?} did not start: {}",
            std::fs::read_to_string(storage.with_extension("log")).unwrap_or_default()
        );
    }
}

/// The requests `answers` needs, from a `Server` or a `Proc`.
trait Api {
    fn get_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value;
}

impl Api for Server {
    fn get_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.ok(method, path, body)
    }
}

impl Api for Proc {
    fn get_ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("client");
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = client.request(m, format!("http://127.0.0.1:{}{path}", self.port));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let v: Value = resp.json().unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "{method} {path} -> {status}: {v}");
        v["result"].clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().expect("run qdrant");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn offline_cli_and_start_up_restores() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = |name: &str| dir.path().join(name).to_str().expect("utf8").to_string();
    let mut a = start(dir.path(), "a", "sqlite");
    fill(&a, "src", 800, 2);
    fill(&a, "other", 100, 1);
    let want = answers(&a, "src");
    assert_eq!(a.terminate(), Some(0));

    // create (server stopped) -> inspect -> verify.
    let (code, out, err) =
        cli(&["snapshot", "create", "--collection", "src", "--storage-path", &p("a"), "--snapshots-path", &p("snaps")]);
    assert_eq!(code, 0, "{out}{err}");
    let file = out
        .lines()
        .find_map(|l| l.strip_prefix("created "))
        .and_then(|l| l.split(" (").next())
        .expect("path")
        .to_string();
    assert!(file.starts_with(&p("snaps")) && file.ends_with(".snapshot"), "{out}");
    let (code, out, err) = cli(&["snapshot", "inspect", &file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("collection: src") && out.contains("complete:  yes"), "{out}");
    let (code, out, _) = cli(&["snapshot", "inspect", "--json", &file]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["manifest"]["shard_ids"], json!([0, 1]));
    assert_eq!(v["manifest"]["source_backend"], json!("sqlite"));
    let (code, out, err) = cli(&["snapshot", "verify", &file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("OK: "), "{out}");
    let mut bytes = std::fs::read(&file).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(p("damaged.snapshot"), &bytes).expect("write");
    let (code, _, err) = cli(&["snapshot", "verify", &p("damaged.snapshot")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Invalid snapshot"), "{err}");

    // restore into a RocksDB storage; a second restore needs --force.
    let restore = |extra: &[&str]| {
        let mut args = vec!["snapshot", "restore", file.as_str(), "--collection", "copy", "--storage", "rocksdb"];
        let b = p("b");
        args.extend(["--storage-path", b.as_str()]);
        args.extend(extra);
        let out = Command::new(bin()).args(&args).output().expect("run");
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = restore(&[]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = restore(&[]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, err) = restore(&["--force"]);
    assert_eq!(code, 0, "{err}");
    {
        let b = Server::start(&dir.path().join("b"), "rocksdb");
        assert_same(&answers(&b, "copy"), &want, "offline restore");
    }

    // Full storage snapshot offline, restored offline into a SQLite storage.
    let (code, out, err) = cli(&["snapshot", "create", "--storage-path", &p("a"), "--output", &p("full.snapshot")]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) =
        cli(&["snapshot", "restore", &p("full.snapshot"), "--storage", "sqlite", "--storage-path", &p("c")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("restored 2 collection(s)"), "{out}");
    {
        let c = Server::start(&dir.path().join("c"), "sqlite");
        assert_same(&answers(&c, "src"), &want, "full offline restore");
        assert!(c.ok("GET", "/collections/other/exists", None)["exists"].as_bool().unwrap_or(false));
    }

    // Start-up restore of one collection; an existing one is kept without --force-snapshot.
    let spec = format!("{file}:again");
    {
        let d = Proc::start(&dir.path().join("d"), "rocksdb", &["--snapshot", &spec]);
        assert_same(&answers(&d, "again"), &want, "--snapshot");
    }
    {
        let d =
            Proc::start(&dir.path().join("d"), "rocksdb", &["--snapshot", &format!("{}:again", p("damaged.snapshot"))]);
        assert_same(&answers(&d, "again"), &want, "existing collection kept");
    }
    let (code, _, err) = cli(&[
        "--storage",
        "rocksdb",
        "--storage-path",
        &p("e"),
        "--snapshot",
        &format!("{}:x", p("damaged.snapshot")),
    ]);
    assert_eq!(code, 1, "a damaged start-up snapshot stops the server: {err}");
    assert!(err.contains("Invalid snapshot"), "{err}");
    let (code, _, err) = cli(&["--snapshot", "no-colon-here"]);
    assert_eq!(code, 2, "{err}");
    // In cluster mode they are refused before anything is opened, as Qdrant documents.
    for flag in ["--snapshot", "--storage-snapshot"] {
        let arg = if flag == "--snapshot" { format!("{file}:x") } else { file.clone() };
        let out = Command::new(bin())
            .env("QDRANT__CLUSTER__ENABLED", "true")
            .args(["--storage", "rocksdb", "--storage-path", &p("f"), flag, &arg])
            .output()
            .expect("run qdrant");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag} in cluster mode: {err}");
        assert!(err.contains("cannot be used in cluster mode"), "{err}");
        assert!(!dir.path().join("f").exists(), "nothing opened or restored");
    }
}

/// Shard snapshots: create/list/download/delete one shard, and recover (upload and file
/// location) it into the live collection, replacing only that shard.
#[test]
fn shard_snapshots_round_trip() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = start(dir.path(), "a", backend);
        fill(&s, "c", 1500, 3);
        wait_green(&s, "c");
        let shard_points = |s: &Server| -> Vec<u64> {
            let cl = s.ok("GET", "/collections/c/cluster", None);
            cl["local_shards"]
                .as_array()
                .expect("shards")
                .iter()
                .map(|sh| sh["points_count"].as_u64().expect("n"))
                .collect()
        };
        let before = shard_points(&s);
        assert!(before[1] > 0, "{before:?}");
        let d = s.ok("POST", "/collections/c/shards/1/snapshots?wait=true", None);
        let name = d["name"].as_str().expect("name").to_string();
        let listed = s.ok("GET", "/collections/c/shards/1/snapshots", None);
        assert!(listed.as_array().expect("list").iter().any(|x| x["name"] == name.as_str()), "{listed}");
        assert_eq!(s.ok("GET", "/collections/c/shards/0/snapshots", None), json!([]), "filed per shard");
        let bytes = download(&s, &format!("/collections/c/shards/1/snapshots/{name}"));

        // Empty the collection, then bring shard 1 back from the uploaded snapshot.
        s.ok("POST", "/collections/c/points/delete?wait=true", Some(&json!({"filter": {"must": []}})));
        assert_eq!(shard_points(&s), vec![0, 0, 0]);
        let (st, body) = upload(&s, "c/shards/1", "?wait=true", &bytes);
        assert_eq!(st, 200, "{body}");
        assert_eq!(shard_points(&s), vec![0, before[1], 0], "only shard 1 was replaced");
        let hits = s.ok("POST", "/collections/c/points/search", Some(&json!({"vector": vector(7, DIM), "limit": 3})));
        assert_eq!(hits.as_array().expect("hits").len(), 3, "the restored shard serves searches");
        // Writes keep working on the new shard.
        s.ok(
            "PUT",
            "/collections/c/points?wait=true",
            Some(&json!({"points": [{"id": 999_999, "vector": vector(1, DIM)}]})),
        );

        // Recover from the snapshot file by location (a file under the snapshots path).
        let file = dir.path().join("snapshots/c/shards/1").join(&name);
        let loc = format!("file://{}", file.display());
        s.ok("PUT", "/collections/c/shards/1/snapshots/recover?wait=true", Some(&json!({"location": loc})));
        assert_eq!(shard_points(&s)[1], before[1]);

        // A snapshot of several shards cannot replace one shard; the shard stays as it was.
        let full = create_snapshot(&s, "c");
        let full_bytes = download(&s, &format!("/collections/c/snapshots/{}", full["name"].as_str().expect("name")));
        let (st, _) = upload(&s, "c/shards/2", "?wait=true", &full_bytes);
        assert_eq!(st, 400);
        let (st, _) = upload(&s, "c/shards/9", "?wait=true", &bytes);
        assert_eq!(st, 404);
        assert_eq!(shard_points(&s)[1], before[1]);

        s.ok("DELETE", &format!("/collections/c/shards/1/snapshots/{name}"), None);
        assert_eq!(s.ok("GET", "/collections/c/shards/1/snapshots", None), json!([]));
        drop(s);
        // The swapped shard is what a restart loads.
        let s = start(dir.path(), "a", backend);
        assert_eq!(shard_points(&s)[1], before[1]);
    }
}
