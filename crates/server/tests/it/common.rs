//! A real server process for tests, and small HTTP helpers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BACKENDS: [&str; 2] = ["sqlite", "rocksdb"];

pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub grpc_port: u16,
    pub backend: String,
    pub client: reqwest::blocking::Client,
    log: PathBuf,
}

/// A loopback port nothing listens on, never one handed out before in this test process: the
/// port is free again once this returns, so without that a server's HTTP port could be the
/// P2P port chosen for a peer that has not started yet.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_qdrant")
}

impl Server {
    /// Start on `storage` with `backend` and wait until /readyz says ready.
    pub fn start(storage: &Path, backend: &str) -> Server {
        Self::start_with(storage, backend, &[])
    }

    pub fn start_with(storage: &Path, backend: &str, env: &[(&str, &str)]) -> Server {
        let mut s = Self::spawn(storage, backend, env, &[]);
        s.wait_ready();
        s
    }

    /// Start with extra command-line arguments; does not wait for readiness.
    pub fn spawn(storage: &Path, backend: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
        let port = free_port();
        let grpc_port = free_port();
        let log = storage.with_extension(format!("{port}.log"));
        let logf = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(bin());
        cmd.args(["--storage", backend, "--storage-path"])
            .arg(storage)
            .args(["--http-port", &port.to_string(), "--grpc-port", &grpc_port.to_string(), "--host", "127.0.0.1"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(logf);
        // Snapshots next to the storage, not in the working directory (unless the test says).
        if !env.iter().any(|(k, _)| *k == "QDRANT__STORAGE__SNAPSHOTS_PATH") {
            cmd.env("QDRANT__STORAGE__SNAPSHOTS_PATH", storage.with_extension("snapshots"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn qdrant");
        Server {
            child: Some(child),
            port,
            grpc_port,
            backend: backend.to_string(),
            client: reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
            log,
        }
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("server exited ({status}) before it was ready; log:\n{}", self.log_text());
            }
            if let Ok(r) = self.client.get(self.url("/readyz")).send() {
                if r.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not become ready; log:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// Send a request; returns (status, body as JSON or Null).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(m, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Like `call` but asserts a 2xx status and returns `result`.
    pub fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.call(method, path, body);
        assert!((200..300).contains(&status), "{method} {path} -> {status}: {v}");
        v["result"].clone()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        // A failed test shows what the server said.
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- server log (last lines) ---");
            tail.iter().rev().for_each(|l| eprintln!("{l}"));
        }
    }
}

/// Every file with extension `ext` under `root`.
pub fn files_with(root: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn create_collection(s: &Server, name: &str, body: Value) {
    s.ok("PUT", &format!("/collections/{name}"), Some(&body));
}

/// Deterministic pseudo-random vector with values in [-1, 1) (xorshift seeded by `i`).
pub fn vector(i: u64, dim: usize) -> Vec<f32> {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Wait until the collection is green with indexed vectors (the optimizer has nothing left).
/// Sum over the local shards of `collection` of one figure from `/telemetry` (e.g.
/// `ram_vectors_bytes`).
pub fn shard_sum_of(s: &Server, collection: &str, field: &str) -> u64 {
    let t = s.ok("GET", "/telemetry?details_level=2", None);
    let c = t["collections"]["collections"]
        .as_array()
        .expect("collections")
        .iter()
        .find(|c| c["id"] == collection)
        .cloned();
    let shards = c.unwrap_or_else(|| panic!("collection {collection} in telemetry"))["shards"]
        .as_array()
        .expect("shards")
        .clone();
    shards.iter().map(|sh| sh["local"][field].as_u64().expect("figure")).sum()
}

/// Wait until the optimizer has built a payload index created on existing segments (an
/// `IndexPayload` run completed) and the collection is green again.
pub fn wait_payload_index_built(s: &Server, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let opt = s.ok("GET", &format!("/collections/{name}/optimizations"), None);
        let built = opt["completed"]
            .as_array()
            .expect("completed")
            .iter()
            .any(|o| o["name"].as_str().is_some_and(|n| n.ends_with("payload_index")));
        if built && s.ok("GET", &format!("/collections/{name}"), None)["status"] == "green" {
            return;
        }
        assert!(Instant::now() < deadline, "payload index never built: {opt}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn wait_indexed(s: &Server, name: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let info = s.ok("GET", &format!("/collections/{name}"), None);
        if info["status"] == "green" && info["indexed_vectors_count"].as_u64().unwrap_or(0) > 0 {
            return info;
        }
        assert!(Instant::now() < deadline, "collection never became green and indexed: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What a crash test knows about each point: the states it may be in after a kill -9, the
/// last acknowledged one first, plus the state of a request in flight at the kill (it may or
/// may not have committed). `None` is a deleted (or never written) point.
pub struct Acked<S>(std::collections::BTreeMap<u64, Vec<Option<S>>>);

impl<S> Default for Acked<S> {
    fn default() -> Self {
        Acked(std::collections::BTreeMap::new())
    }
}

impl<S: PartialEq + std::fmt::Debug> Acked<S> {
    /// A write of `ids` answered (`acknowledged`) or cut off by the kill.
    pub fn record(&mut self, ids: &[u64], state: impl Fn(u64) -> Option<S>, acknowledged: bool) {
        for &id in ids {
            let entry = self.0.entry(id).or_default();
            if acknowledged {
                *entry = vec![state(id)];
            } else {
                if entry.is_empty() {
                    entry.push(None);
                }
                entry.push(state(id));
            }
        }
    }

    /// Every point must be in one of its allowed states (`fetch` reads a chunk of ids back from
    /// the server); the state found becomes the only one.
    pub fn check(&mut self, server: &Server, fetch: impl Fn(&Server, &[u64]) -> std::collections::BTreeMap<u64, S>) {
        assert!(self.0.values().any(|st| st.len() == 1 && st[0].is_some()), "some writes must have been acknowledged");
        let ids: Vec<u64> = self.0.keys().copied().collect();
        for chunk in ids.chunks(500) {
            let mut got = fetch(server, chunk);
            for id in chunk {
                let found = got.remove(id);
                let allowed = self.0.get_mut(id).expect("tracked");
                assert!(
                    allowed.contains(&found),
                    "point {id} on {}: found {found:?}, acknowledged state was {:?}",
                    server.backend,
                    allowed.first()
                );
                *allowed = vec![found];
            }
        }
    }

    /// Whether point `id` exists (as last checked).
    pub fn is_live(&self, id: u64) -> bool {
        self.0.get(&id).is_some_and(|st| st[0].is_some())
    }

    pub fn live_count(&self) -> usize {
        self.0.values().filter(|st| st[0].is_some()).count()
    }
}

/// Writers of a crash test: `(port, writer number, stop flag, model)`, writing until stopped
/// or until a request fails (the server was killed).
pub type CrashWriter<S> =
    fn(u16, u64, std::sync::Arc<std::sync::atomic::AtomicBool>, std::sync::Arc<std::sync::Mutex<Acked<S>>>);

/// Kill -9 the server once per entry of `kills` (ms after three writers started), restart it on
/// the same storage and check every point against the model. Returns the running server.
pub fn kill_cycles<S: PartialEq + std::fmt::Debug + Send + 'static>(
    mut server: Server,
    storage: &Path,
    kills: &[u64],
    acked: &std::sync::Arc<std::sync::Mutex<Acked<S>>>,
    writer: CrashWriter<S>,
    fetch: impl Fn(&Server, &[u64]) -> std::collections::BTreeMap<u64, S>,
) -> Server {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let backend = server.backend.clone();
    for (cycle, &kill_after_ms) in kills.iter().enumerate() {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|t| {
                let (stop, acked, port) = (stop.clone(), acked.clone(), server.port);
                std::thread::spawn(move || writer(port, t + cycle as u64 * 10, stop, acked))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.join().expect("writer");
        }
        server = Server::start(storage, &backend);
        acked.lock().expect("lock").check(&server, &fetch);
    }
    server
}

/// Compare answers, reporting only the first that differs.
#[track_caller]
pub fn assert_same(got: &[Value], want: &[Value], ctx: &str) {
    assert_eq!(got.len(), want.len(), "{ctx}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g == w, "{ctx}: answer {i} differs:\n got  {g}\n want {w}");
    }
}
