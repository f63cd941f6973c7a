//! Monitoring against the real server: `/metrics` (Prometheus text), `/telemetry`, `/cluster`,
//! `/issues`, the dashboard's files, and request logging.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::common::{create_collection, Server, BACKENDS};

/// One sample of the text format: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A strict little parser of the Prometheus text format (0.0.4) as this server writes it:
/// checks that every sample belongs to a family announced by `# HELP` and `# TYPE` lines,
/// that label values are properly quoted and escaped, and that values parse.
fn parse_exposition(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut helps = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').expect("HELP has text");
            assert!(helps.insert(name.to_string(), ()).is_none(), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind), "{line}");
            assert!(helps.contains_key(name), "TYPE before HELP for {name}");
            assert!(types.insert(name.to_string(), kind.to_string()).is_none(), "TYPE twice for {name}");
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value: {line}"),
        };
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                && !name.starts_with(|c: char| c.is_ascii_digit()),
            "bad metric name {name:?}"
        );
        let mut labels = BTreeMap::new();
        let value_part = if let Some(body) = rest.strip_prefix('{') {
            // key="value",key="value"} value
            let mut chars = body.chars().peekable();
            loop {
                let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
                assert_eq!(chars.next(), Some('='), "{line}");
                assert_eq!(chars.next(), Some('"'), "{line}");
                let mut val = String::new();
                loop {
                    match chars.next().expect("unterminated label value") {
                        '\\' => match chars.next() {
                            Some('\\') => val.push('\\'),
                            Some('"') => val.push('"'),
                            Some('n') => val.push('\n'),
                            other => panic!("bad escape {other:?} in {line}"),
                        },
                        '"' => break,
                        '\n' => panic!("raw newline in {line}"),
                        c => val.push(c),
                    }
                }
                labels.insert(key, val);
                match chars.next() {
                    Some(',') => continue,
                    Some('}') => break,
                    other => panic!("bad label separator {other:?} in {line}"),
                }
            }
            chars.collect::<String>()
        } else {
            rest.to_string()
        };
        let value_text = value_part.trim();
        let value = match value_text {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().unwrap_or_else(|_| panic!("bad value {v:?} in {line}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suf| name.strip_suffix(suf).filter(|f| types.get(*f).is_some_and(|t| t == "histogram")))
            .unwrap_or(name);
        assert!(types.contains_key(family), "sample {name} without TYPE");
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    (types, samples)
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .collect()
}

fn one(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

fn get_text(s: &Server, path: &str) -> (u16, String, String) {
    let r = s.client.get(s.url(path)).send().expect("request");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    (status, ct, r.text().unwrap_or_default())
}

fn upsert_points(s: &Server, name: &str, n: u64) {
    let points: Vec<Value> = (0..n)
        .map(|i| json!({"id": i, "vector": [i as f32 + 1.0, 1.0, 0.5, 0.25], "payload": {"n": i, "tag": format!("t{}", i % 3)}}))
        .collect();
    s.ok("PUT", &format!("/collections/{name}/points?wait=true"), Some(&json!({ "points": points })));
}

fn metrics_reflect_collections_and_requests(backend: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("s"), backend);
    create_collection(&s, "secret_name", json!({"vectors": {"size": 4, "distance": "Dot"}, "shard_number": 3}));
    create_collection(
        &s,
        "multi",
        json!({"vectors": {"a": {"size": 2, "distance": "Cosine"}, "b": {"size": 3, "distance": "Euclid"}}}),
    );
    upsert_points(&s, "secret_name", 25);
    s.ok(
        "PUT",
        "/collections/multi/points?wait=true",
        Some(&json!({"points": [
            {"id": 1, "vector": {"a": [1.0, 0.0], "b": [1.0, 2.0, 3.0]}},
            {"id": 2, "vector": {"a": [0.0, 1.0]}}
        ]})),
    );
    for _ in 0..3 {
        s.ok(
            "POST",
            "/collections/secret_name/points/search",
            Some(&json!({"vector": [1.0, 0.0, 0.0, 0.0], "limit": 3})),
        );
    }
    let (st, _) = s.call("GET", "/collections/does_not_exist", None);
    assert_eq!(st, 404);
    let (st, _) = s.call("GET", "/no/such/endpoint/at/all", None);
    assert_eq!(st, 404);

    let (st, ct, text) = get_text(&s, "/metrics");
    assert_eq!(st, 200, "{text}");
    assert!(ct.starts_with("text/plain") && ct.contains("version=0.0.4"), "{ct}");
    let (types, samples) = parse_exposition(&text);

    for (family, kind) in [
        ("app_info", "gauge"),
        ("collections_total", "gauge"),
        ("collections_vector_total", "gauge"),
        ("collection_points", "gauge"),
        ("collection_vectors", "gauge"),
        ("collection_running_optimizations", "gauge"),
        ("collection_shard_points", "gauge"),
        ("collection_ram_bytes", "gauge"),
        ("collection_disk_bytes", "gauge"),
        ("rest_responses_total", "counter"),
        ("rest_responses_fail_total", "counter"),
        ("rest_responses_duration_seconds", "histogram"),
        ("snapshot_creation_running", "gauge"),
        ("snapshot_created_total", "counter"),
        ("process_open_fds", "gauge"),
        ("memory_resident_bytes", "gauge"),
    ] {
        assert_eq!(types.get(family).map(String::as_str), Some(kind), "{family}");
    }
    assert_eq!(one(&samples, "app_info", &[("name", "qdrant")]), 1.0);
    assert_eq!(one(&samples, "collections_total", &[]), 2.0);
    assert_eq!(one(&samples, "collection_points", &[("id", "secret_name")]), 25.0);
    assert_eq!(one(&samples, "collection_points", &[("id", "multi")]), 2.0);
    assert_eq!(one(&samples, "collection_vectors", &[("collection", "multi"), ("vector", "a")]), 2.0);
    assert_eq!(one(&samples, "collection_vectors", &[("collection", "multi"), ("vector", "b")]), 1.0);
    assert_eq!(one(&samples, "collections_vector_total", &[]), 25.0 + 3.0);

    // Per-shard points add up, and sizes are the ones collection info reports.
    let info = s.ok("GET", "/collections/secret_name", None);
    let shard_points = find(&samples, "collection_shard_points", &[("collection", "secret_name")]);
    assert_eq!(shard_points.len(), 3);
    assert_eq!(shard_points.iter().map(|s| s.value).sum::<f64>(), 25.0);
    for sh in info["shards"].as_array().expect("shards") {
        let id = sh["shard_id"].to_string();
        let got = one(&samples, "collection_shard_points", &[("collection", "secret_name"), ("shard", &id)]);
        assert_eq!(got, sh["points_count"].as_f64().expect("n"));
    }
    let sum_of = |field: &str| {
        info["shards"].as_array().expect("shards").iter().map(|s| s[field].as_f64().unwrap_or(0.0)).sum::<f64>()
    };
    for (kind, field) in
        [("vectors", "ram_vectors_bytes"), ("payload", "ram_payload_bytes"), ("index", "ram_index_bytes")]
    {
        assert_eq!(
            one(&samples, "collection_ram_bytes", &[("collection", "secret_name"), ("kind", kind)]),
            sum_of(field),
            "{kind}"
        );
    }
    assert!(sum_of("ram_vectors_bytes") >= 25.0 * 4.0 * 4.0, "vectors are measured: {info}");
    assert!(one(&samples, "collection_disk_bytes", &[("collection", "secret_name")]) > 0.0);
    assert_eq!(one(&samples, "collection_status", &[("collection", "secret_name"), ("status", "green")]), 1.0);

    // Requests: labelled by route template, method and status, never by the raw URI.
    let search = [("method", "POST"), ("endpoint", "/collections/{name}/points/search"), ("status", "200")];
    assert_eq!(one(&samples, "rest_responses_total", &search), 3.0);
    assert_eq!(one(&samples, "rest_responses_fail_total", &search), 0.0);
    let missing = [("method", "GET"), ("endpoint", "/collections/{name}"), ("status", "404")];
    assert_eq!(one(&samples, "rest_responses_total", &missing), 1.0);
    assert_eq!(one(&samples, "rest_responses_fail_total", &missing), 1.0);
    let unmatched = [("method", "GET"), ("endpoint", "unmatched"), ("status", "404")];
    assert_eq!(one(&samples, "rest_responses_total", &unmatched), 1.0);
    for smp in &samples {
        if let Some(e) = smp.labels.get("endpoint") {
            assert!(!e.contains("secret_name") && !e.contains("no/such"), "raw URI in endpoint label: {smp:?}");
        }
    }
    // Histogram: cumulative buckets ending in +Inf == _count, and a _sum.
    let buckets = find(&samples, "rest_responses_duration_seconds_bucket", &search);
    assert!(buckets.len() >= 2);
    let mut prev = 0.0;
    let mut prev_le = f64::NEG_INFINITY;
    for b in &buckets {
        let le = match b.labels["le"].as_str() {
            "+Inf" => f64::INFINITY,
            v => v.parse::<f64>().expect("le"),
        };
        assert!(le > prev_le && b.value >= prev, "{buckets:?}");
        prev = b.value;
        prev_le = le;
    }
    assert_eq!(buckets.last().map(|b| b.labels["le"].as_str()), Some("+Inf"));
    assert_eq!(prev, one(&samples, "rest_responses_duration_seconds_count", &search));
    assert!(one(&samples, "rest_responses_duration_seconds_sum", &search) > 0.0);

    // Process figures.
    assert!(one(&samples, "process_open_fds", &[]) > 3.0);
    assert!(one(&samples, "memory_resident_bytes", &[]) > 1e6);
    assert!(one(&samples, "process_threads", &[]) >= 2.0);

    // Anonymized: collection names are hashed, figures kept.
    let (_, _, anon) = get_text(&s, "/metrics?anonymize=true");
    let (_, anon_samples) = parse_exposition(&anon);
    assert!(!anon.contains("secret_name"), "{anon}");
    assert_eq!(find(&anon_samples, "collection_points", &[]).len(), 2);
    assert!(find(&anon_samples, "collection_points", &[]).iter().any(|s| s.value == 25.0));

    // The metrics request itself is counted on the next scrape.
    let (_, _, again) = get_text(&s, "/metrics");
    let (_, again) = parse_exposition(&again);
    assert!(
        one(&again, "rest_responses_total", &[("method", "GET"), ("endpoint", "/metrics"), ("status", "200")]) >= 2.0
    );
}

#[test]
fn metrics_reflect_collections_and_requests_sqlite() {
    metrics_reflect_collections_and_requests(BACKENDS[0]);
}

#[test]
fn metrics_reflect_collections_and_requests_rocksdb() {
    metrics_reflect_collections_and_requests(BACKENDS[1]);
}

#[test]
fn telemetry_levels_and_anonymize() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("s"), "rocksdb");
    create_collection(&s, "private_coll", json!({"vectors": {"size": 4, "distance": "Cosine"}, "shard_number": 2}));
    upsert_points(&s, "private_coll", 10);
    s.ok("POST", "/collections/private_coll/points/scroll", Some(&json!({"limit": 2})));

    let t0 = s.ok("GET", "/telemetry", None);
    assert!(t0["id"].is_string());
    assert_eq!(t0["app"]["name"], "qdrant");
    assert!(t0["app"]["version"].is_string() && t0["app"]["startup"].is_string());
    assert_eq!(t0["collections"]["number_of_collections"], 1);
    assert!(t0["collections"].get("collections").is_none(), "level 0 has no per-collection details");
    assert_eq!(t0["cluster"]["enabled"], false);
    let scroll = &t0["requests"]["rest"]["responses"]["POST /collections/{name}/points/scroll"]["200"];
    assert_eq!(scroll["count"], 1, "{t0}");
    assert!(scroll["avg_duration_micros"].as_f64().expect("avg") > 0.0);
    assert!(t0["memory"]["resident_bytes"].as_u64().expect("rss") > 0);

    let t1 = s.ok("GET", "/telemetry?details_level=1", None);
    let c = &t1["collections"]["collections"][0];
    assert_eq!(c["id"], "private_coll");
    assert_eq!(c["points_count"], 10);
    assert_eq!(c["vectors_count_by_name"][""], 10);
    assert!(c.get("shards").is_none());
    assert!(t1["app"]["system"]["cores"].as_u64().expect("cores") >= 1);

    let t2 = s.ok("GET", "/telemetry?details_level=2", None);
    let c = &t2["collections"]["collections"][0];
    assert_eq!(c["config"]["params"]["shard_number"], 2);
    let shards = c["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2);
    let total: u64 = shards.iter().map(|s| s["local"]["num_points"].as_u64().expect("n")).sum();
    assert_eq!(total, 10);
    assert!(c.get("optimizations").is_none());

    let t3 = s.ok("GET", "/telemetry?details_level=3&anonymize=true", None);
    let text = t3.to_string();
    assert!(!text.contains("private_coll"), "{text}");
    let c = &t3["collections"]["collections"][0];
    assert_eq!(c["points_count"], 10);
    assert!(c["optimizations"]["running"].is_array() && c["optimizations"]["completed"].is_array());

    let (st, body) = s.call("GET", "/telemetry?details_level=many", None);
    assert_eq!(st, 400, "{body}");
    assert!(body["status"]["error"].as_str().expect("msg").contains("details_level"));
}

#[test]
fn cluster_and_issues() {
    let dir = tempfile::tempdir().expect("tmp");
    let storage = dir.path().join("s");
    let s = Server::start(&storage, "sqlite");
    assert_eq!(s.ok("GET", "/cluster", None), json!({"status": "disabled"}));
    let (st, body) = s.call("GET", "/issues", None);
    assert_eq!(st, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["result"], json!({"issues": []}));
    assert_eq!(s.ok("DELETE", "/issues", None), json!(true));
    create_collection(&s, "fragile", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    upsert_points_2d(&s, "fragile");
    assert_eq!(s.ok("GET", "/issues", None)["issues"], json!([]));
    drop(s);

    // Damage the collection's shard database: it loads red and /issues names it.
    let coll_dir = std::fs::read_dir(storage.join("collections")).expect("dirs").flatten().next().expect("a dir");
    for f in std::fs::read_dir(coll_dir.path().join("shards/0")).expect("shard").flatten() {
        let p = f.path();
        if p.is_dir() {
            for g in std::fs::read_dir(&p).expect("db dir").flatten() {
                std::fs::write(g.path(), b"garbage").expect("damage");
            }
        } else {
            std::fs::write(&p, b"garbage, not a database").expect("damage");
        }
    }
    let s = Server::start(&storage, "sqlite");
    let issues = s.ok("GET", "/issues", None)["issues"].clone();
    let list = issues.as_array().expect("issues");
    assert_eq!(list.len(), 1, "{issues}");
    assert_eq!(list[0]["related_collection"], "fragile");
    assert!(list[0]["id"].as_str().expect("id").contains("fragile"));
    assert!(list[0]["description"].as_str().expect("text").contains("fragile"));
    let (_, _, text) = get_text(&s, "/metrics");
    let (_, samples) = parse_exposition(&text);
    assert_eq!(one(&samples, "collection_status", &[("collection", "fragile"), ("status", "red")]), 1.0);
}

fn upsert_points_2d(s: &Server, name: &str) {
    s.ok(
        "PUT",
        &format!("/collections/{name}/points?wait=true"),
        Some(&json!({"points": [{"id": 1, "vector": [1.0, 2.0]}, {"id": 2, "vector": [3.0, 4.0]}]})),
    );
}

#[test]
fn dashboard_is_served() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("s"), "sqlite");
    for path in ["/dashboard", "/dashboard/"] {
        let (st, ct, body) = get_text(&s, path);
        assert_eq!(st, 200, "{path}");
        assert!(ct.starts_with("text/html"), "{ct}");
        assert!(body.contains("/dashboard/app.js") && body.contains("/dashboard/style.css"), "{body}");
        assert!(!body.contains("http://") && !body.contains("https://"), "nothing loaded from outside");
    }
    let (st, ct, js) = get_text(&s, "/dashboard/app.js");
    assert_eq!(st, 200);
    assert!(ct.starts_with("text/javascript"), "{ct}");
    assert!(js.contains("/points/") && js.contains("/optimizations") && js.contains("/snapshots"));
    let (st, ct, _) = get_text(&s, "/dashboard/style.css");
    assert_eq!((st, ct.starts_with("text/css")), (200, true), "{ct}");
    let (st, _, body) = get_text(&s, "/dashboard/secret.txt");
    assert_eq!(st, 404, "{body}");
}

#[test]
fn request_logging_text_and_json() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start_with(&dir.path().join("t"), "sqlite", &[("QDRANT__LOG_LEVEL", "debug")]);
    create_collection(&s, "logged", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    let log = s.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("request") && l.contains("/collections/{name}") && l.contains("PUT"))
        .unwrap_or_else(|| panic!("no request line at debug level:\n{log}"));
    assert!(line.contains("DEBUG") && line.contains("200"), "{line}");
    drop(s);

    let s = Server::start_with(
        &dir.path().join("j"),
        "sqlite",
        &[("QDRANT__LOG_LEVEL", "debug"), ("QDRANT__LOG_FORMAT", "json")],
    );
    create_collection(&s, "logged", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    let log = s.log_text();
    let mut found = false;
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        if v["fields"]["message"] == "request" && v["fields"]["endpoint"] == "/collections/{name}" {
            assert_eq!(v["level"], "DEBUG");
            assert_eq!(v["fields"]["method"], "PUT");
            assert_eq!(v["fields"]["status"], 200);
            found = true;
        }
    }
    assert!(found, "no JSON request line:\n{log}");
    drop(s);

    // At the default level requests are not logged.
    let s = Server::start(&dir.path().join("i"), "sqlite");
    create_collection(&s, "quiet", json!({"vectors": {"size": 2, "distance": "Dot"}}));
    assert!(!s.log_text().contains("/collections/{name}"), "{}", s.log_text());
}

#[test]
fn metrics_need_the_api_key_when_one_is_set() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start_with(&dir.path().join("s"), "sqlite", &[("QDRANT__SERVICE__API_KEY", "sekret")]);
    let (st, _, _) = get_text(&s, "/metrics");
    assert_eq!(st, 401);
    let r = s.client.get(s.url("/metrics")).header("api-key", "sekret").send().expect("request");
    assert_eq!(r.status().as_u16(), 200);
    let (_, samples) = parse_exposition(&r.text().expect("text"));
    assert_eq!(one(&samples, "rest_responses_total", &[("endpoint", "/metrics"), ("status", "401")]), 1.0);
}
