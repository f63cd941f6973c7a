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
    pub backend: String,
    pub client: reqwest::blocking::Client,
    log: PathBuf,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
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
        let port = free_port();
        let log = storage.with_extension(format!("{port}.log"));
        let logf = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(bin());
        cmd.args(["--storage", backend, "--storage-path"])
            .arg(storage)
            .args(["--http-port", &port.to_string(), "--host", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(logf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn qdrant");
        let s = Server {
            child: Some(child),
            port,
            backend: backend.to_string(),
            client: reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("client"),
            log,
        };
        s.wait_ready();
        s
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
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
    }
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
