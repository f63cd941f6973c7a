//! Cluster mode with three real server processes on loopback ports, on both backends: forming
//! a cluster, a replicated collection written through every node, a peer killed mid-write and
//! a peer frozen (SIGSTOP) while writes go on, their recovery, metadata through consensus.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{free_port, vector, Server, BACKENDS};

/// One peer: its storage and P2P port survive restarts.
struct Peer {
    dir: PathBuf,
    p2p: u16,
    backend: String,
    bootstrap: Option<u16>,
    server: Server,
}

impl Peer {
    fn start(dir: PathBuf, backend: &str, p2p: u16, bootstrap: Option<u16>) -> Peer {
        let server = Self::spawn(&dir, backend, p2p, bootstrap);
        Peer { dir, p2p, backend: backend.to_string(), bootstrap, server }
    }

    fn spawn(dir: &std::path::Path, backend: &str, p2p: u16, bootstrap: Option<u16>) -> Server {
        let uri = format!("http://127.0.0.1:{p2p}");
        let port = p2p.to_string();
        let boot = bootstrap.map(|b| format!("http://127.0.0.1:{b}"));
        let mut args = vec!["--uri", uri.as_str()];
        if let Some(b) = &boot {
            args.extend(["--bootstrap", b.as_str()]);
        }
        let env = [
            ("QDRANT__CLUSTER__ENABLED", "true"),
            ("QDRANT__CLUSTER__P2P__PORT", port.as_str()),
            ("QDRANT__LOG_LEVEL", "info"),
        ];
        let mut s = Server::spawn(dir, backend, &env, &args);
        s.wait_ready();
        s
    }

    fn restart(&mut self) {
        self.server.kill9();
        self.server = Self::spawn(&self.dir, &self.backend, self.p2p, self.bootstrap);
    }

    fn peer_id(&self) -> u64 {
        self.server.ok("GET", "/cluster", None)["peer_id"].as_u64().expect("peer id")
    }

    fn pid(&self) -> i32 {
        self.server.child.as_ref().map(|c| c.id() as i32).expect("running")
    }
}

/// Points copied by the replica recoveries a peer's log reports ("replica recovered ...
/// points=N"), colour codes aside.
fn recovered_points(log: &str) -> u64 {
    let mut plain = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            plain.push(c);
        }
    }
    plain
        .lines()
        .filter(|l| l.contains("replica recovered"))
        .filter_map(|l| l.split("points=").nth(1)?.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
        .sum()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a child process of this test.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn start_cluster(root: &std::path::Path, backend: &str) -> Vec<Peer> {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut peers = vec![Peer::start(root.join("a"), backend, ports[0], None)];
    for (i, p) in ports.iter().enumerate().skip(1) {
        peers.push(Peer::start(root.join(["a", "b", "c"][i]), backend, *p, Some(ports[0])));
    }
    for p in &peers {
        wait_for("three voters", Duration::from_secs(30), || {
            let c = p.server.ok("GET", "/cluster", None);
            let voters = c["peers"].as_object().map_or(0, |m| m.len());
            match (c["status"].as_str(), voters, c["raft_info"]["leader"].is_u64()) {
                (Some("enabled"), 3, true) => Ok(()),
                _ => Err(c.to_string()),
            }
        });
    }
    peers
}

/// Replica states of `collection` over the cluster: (shard, peer) -> state, as `peer` sees it.
fn replica_states(peer: &Peer, collection: &str) -> BTreeMap<(u64, u64), String> {
    let info = peer.server.ok("GET", &format!("/collections/{collection}/cluster"), None);
    let me = info["peer_id"].as_u64().expect("peer id");
    let mut states = BTreeMap::new();
    for s in info["local_shards"].as_array().expect("local") {
        states.insert((s["shard_id"].as_u64().expect("id"), me), s["state"].as_str().expect("state").to_string());
    }
    for s in info["remote_shards"].as_array().expect("remote") {
        let key = (s["shard_id"].as_u64().expect("id"), s["peer_id"].as_u64().expect("peer"));
        states.insert(key, s["state"].as_str().expect("state").to_string());
    }
    states
}

fn all_points(s: &Server, collection: &str) -> BTreeMap<u64, Value> {
    let r = s.ok(
        "POST",
        &format!("/collections/{collection}/points/scroll"),
        Some(&json!({"limit": 100000, "with_payload": true, "with_vector": true})),
    );
    r["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| (p["id"].as_u64().expect("id"), json!([p["payload"], p["vector"]])))
        .collect()
}

fn batch(from: u64, n: u64) -> Value {
    let points: Vec<Value> =
        (from..from + n).map(|i| json!({"id": i, "vector": vector(i, 8), "payload": {"i": i, "g": i % 7}})).collect();
    json!({ "points": points })
}

/// Kill every peer but `alone`: creating collection `refused` through it answers 503 within
/// its `timeout`. The others come back, and creating `after` through it then succeeds.
fn refused_alone_then_recovers(peers: &mut [Peer], alone: usize, refused: &str, after: &str) {
    let others: Vec<usize> = (0..peers.len()).filter(|i| *i != alone).collect();
    for i in &others {
        peers[*i].server.kill9();
    }
    let body = json!({"vectors": {"size": 2, "distance": "Dot"}});
    let started = Instant::now();
    let (status, text) = peers[alone].server.call("PUT", &format!("/collections/{refused}?timeout=2"), Some(&body));
    assert_eq!(status, 503, "{text}");
    assert!(started.elapsed() < Duration::from_secs(15), "the timeout is honoured");
    // Without a leader this peer cannot synchronize with the others.
    let (status, text) = peers[alone].server.call("POST", "/cluster/recover", None);
    assert_eq!(status, 503, "{text}");
    for i in &others {
        peers[*i].restart();
    }
    wait_for("majority back", Duration::from_secs(30), || {
        match peers[alone].server.call("PUT", &format!("/collections/{after}"), Some(&body)).0 {
            200 => Ok(()),
            s => Err(format!("status {s}")),
        }
    });
    for p in peers.iter() {
        assert_eq!(p.server.ok("POST", "/cluster/recover", None), json!(true));
        assert_eq!(p.server.call("GET", &format!("/collections/{after}"), None).0, 200, "applied once synchronized");
    }
}

fn all_active(peer: &Peer, collection: &str) -> Result<(), String> {
    let states = replica_states(peer, collection);
    if states.values().all(|s| s == "Active") {
        Ok(())
    } else {
        Err(format!("{states:?}"))
    }
}

#[test]
fn three_peers_replicate_survive_a_kill_and_a_freeze_and_catch_up() {
    for backend in BACKENDS {
        let root = tempfile::tempdir().expect("tempdir");
        let mut peers = start_cluster(root.path(), backend);

        // Created through a follower; shards and replicas placed over all three peers.
        let body = json!({"vectors": {"size": 8, "distance": "Cosine"}, "shard_number": 6,
                          "replication_factor": 2, "write_consistency_factor": 1});
        peers[1].server.ok("PUT", "/collections/c", Some(&body));
        for p in &peers {
            let states = replica_states(p, "c");
            assert_eq!(states.len(), 12, "6 shards x 2 replicas as seen by every peer: {states:?}");
            let info = p.server.ok("GET", "/collections/c/cluster", None);
            assert_eq!(info["shard_count"], 6);
            assert_eq!(info["local_shards"].as_array().map(Vec::len), Some(4), "replicas spread evenly: {info}");
        }
        let (status, dup) = peers[2].server.call("PUT", "/collections/c", Some(&body));
        assert_eq!(status, 409, "{dup}");

        // 20k points written through the three peers in turn; peer c is killed a third of the
        // way in and the writes go on through the others.
        let mut next = 0;
        for round in 0..100u64 {
            if round == 33 {
                peers[2].server.kill9();
            }
            let alive: Vec<&Peer> = peers.iter().filter(|p| p.server.child.is_some()).collect();
            let via = &alive[(round as usize) % alive.len()].server;
            via.ok("PUT", "/collections/c/points?wait=true", Some(&batch(next, 200)));
            next += 200;
        }
        via_deletes(&peers[0].server);
        let expected = all_points(&peers[0].server, "c");
        assert_eq!(expected.len(), 20_000 - 100, "every acknowledged write is there");
        assert_eq!(all_points(&peers[1].server, "c"), expected, "both live peers answer the same");
        let count = peers[1].server.ok("POST", "/collections/c/points/count", Some(&json!({"exact": true})));
        assert_eq!(count["count"], 19_900);
        let states = replica_states(&peers[0], "c");
        let c_id = {
            let known: Vec<u64> = states.keys().map(|(_, p)| *p).collect();
            let a = peers[0].peer_id();
            let b = peers[1].peer_id();
            *known.iter().find(|p| **p != a && **p != b).expect("c's id")
        };
        assert!(
            states.iter().filter(|((_, p), _)| *p == c_id).all(|(_, s)| s == "Dead"),
            "the killed peer's replicas missed writes and are Dead: {states:?}"
        );
        let status = peers[0].server.ok("GET", "/cluster", None);
        let failures = status["message_send_failures"].as_object().expect("failures by peer URI");
        assert!(
            failures.iter().any(|(uri, f)| uri.ends_with(&peers[2].p2p.to_string()) && f["count"].as_u64() > Some(0)),
            "calls to the killed peer are counted: {status}"
        );
        let hits = peers[0].server.ok(
            "POST",
            "/collections/c/points/query",
            Some(
                &json!({"query": vector(5, 8), "limit": 5, "filter": {"must": [{"key": "g", "match": {"value": 5}}]}}),
            ),
        );
        assert_eq!(hits["points"].as_array().map(Vec::len), Some(5), "searches answer with a peer down: {hits}");

        // Back up: its replicas are recovered from live ones and it answers the same.
        peers[2].restart();
        // At once, before it caught up: its stored state still calls its replicas Active, but it
        // reads through the others until it has applied what the leader had.
        assert_eq!(all_points(&peers[2].server, "c"), expected, "a restarted peer answers no stale point");
        wait_for("killed peer recovered", Duration::from_secs(90), || all_active(&peers[0], "c"));
        assert_eq!(all_points(&peers[2].server, "c"), expected, "the restarted peer caught up");
        // A delta: it was fetched what it missed, not its whole replicas again.
        let copied = recovered_points(&peers[2].server.log_text());
        let held: u64 = peers[2].server.ok("GET", "/collections/c/cluster", None)["local_shards"]
            .as_array()
            .expect("local shards")
            .iter()
            .map(|s| s["points_count"].as_u64().unwrap_or(0))
            .sum();
        assert!(copied > 0 && copied < held, "recovery copied {copied} of the {held} points it holds");

        // A frozen peer (a partition, as far as the others can tell): writes go on and mark its
        // replicas Dead; when it thaws it recovers by itself.
        let frozen = peers.iter().position(|p| {
            let c = p.server.ok("GET", "/cluster", None);
            c["raft_info"]["role"] != "Leader"
        });
        let frozen = frozen.expect("a follower");
        let live = (frozen + 1) % 3;
        signal(peers[frozen].pid(), libc::SIGSTOP);
        peers[live].server.ok("PUT", "/collections/c/points?wait=true", Some(&batch(30_000, 50)));
        peers[live].server.ok("PUT", "/collections/c/points?wait=true", Some(&batch(30_050, 50)));
        signal(peers[frozen].pid(), libc::SIGCONT);
        wait_for("frozen peer recovered", Duration::from_secs(90), || all_active(&peers[live], "c"));
        let after = all_points(&peers[live].server, "c");
        assert_eq!(after.len(), 20_000);
        for p in &peers {
            assert_eq!(all_points(&p.server, "c"), after, "all peers agree after the freeze");
        }

        // Metadata through consensus: aliases and payload indexes show on every peer.
        peers[2].server.ok(
            "POST",
            "/collections/aliases",
            Some(&json!({"actions": [{"create_alias": {"alias_name": "al", "collection_name": "c"}}]})),
        );
        peers[0].server.ok(
            "PUT",
            "/collections/al/index",
            Some(&json!({"field_name": "g", "field_schema": "integer"})),
        );
        for p in &peers {
            wait_for("alias and index everywhere", Duration::from_secs(10), || {
                let info = p.server.ok("GET", "/collections/al", None);
                match info["payload_schema"]["g"]["data_type"].as_str() {
                    Some("integer") => Ok(()),
                    _ => Err(info.to_string()),
                }
            });
        }

        // The leader killed: another peer is elected, metadata changes go on, and the old leader
        // catches up when it is back.
        let leader = peers
            .iter()
            .position(|p| p.server.ok("GET", "/cluster", None)["raft_info"]["role"] == "Leader")
            .expect("a leader");
        peers[leader].server.kill9();
        let other = (leader + 1) % 3;
        let body = json!({"vectors": {"size": 2, "distance": "Dot"}, "replication_factor": 2});
        peers[other].server.ok("PUT", "/collections/after_election", Some(&body));
        peers[other].server.ok("PATCH", "/collections/after_election", Some(&json!({"metadata": {"k": 1}})));
        peers[leader].restart();
        wait_for("the old leader caught up", Duration::from_secs(30), || {
            match peers[leader].server.call("GET", "/collections/after_election", None) {
                (200, v) if v["result"]["config"]["metadata"]["k"] == 1 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });

        // Removing a peer that holds replicas needs force; unknown peers are 404.
        let (status, body) = peers[0].server.call("DELETE", &format!("/cluster/peer/{c_id}"), None);
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("Cannot remove peer"), "{body}");
        let (status, body) = peers[0].server.call("DELETE", "/cluster/peer/12345", None);
        assert_eq!(status, 404, "{body}");

        // A follower left without a majority (the leader and the other follower down) refuses
        // metadata changes within the request's timeout; once they are back it agrees with them.
        let leader = peers
            .iter()
            .position(|p| p.server.ok("GET", "/cluster", None)["raft_info"]["role"] == "Leader")
            .expect("a leader");
        refused_alone_then_recovers(&mut peers, (leader + 1) % 3, "minority", "after_partition");
        for p in &peers {
            assert_eq!(p.server.call("GET", "/collections/minority", None).0, 404, "the refused change never applied");
            wait_for("converged", Duration::from_secs(10), || {
                match p.server.call("GET", "/collections/after_partition", None).0 {
                    200 => Ok(()),
                    s => Err(format!("status {s}")),
                }
            });
        }

        // A leader left without a majority cannot commit either: the call fails at its timeout.
        let leader = peers
            .iter()
            .position(|p| p.server.ok("GET", "/cluster", None)["raft_info"]["role"] == "Leader")
            .expect("a leader");
        refused_alone_then_recovers(&mut peers, leader, "lonely", "after_partition_2");

        // Deleting goes everywhere too.
        peers[1].server.ok("DELETE", "/collections/c", None);
        for p in &peers {
            wait_for("collection gone everywhere", Duration::from_secs(10), || {
                match p.server.call("GET", "/collections/c", None).0 {
                    404 => Ok(()),
                    s => Err(format!("status {s}")),
                }
            });
        }
    }
}

/// Deletes through the first peer (ids 0..100), acknowledged with a peer down.
fn via_deletes(s: &Server) {
    let ids: Vec<u64> = (0..100).collect();
    s.ok("POST", "/collections/c/points/delete?wait=true", Some(&json!({ "points": ids })));
}

#[test]
fn single_node_answers_cluster_endpoints_as_disabled() {
    let root = tempfile::tempdir().expect("tempdir");
    let s = Server::start(&root.path().join("s"), "sqlite");
    assert_eq!(s.ok("GET", "/cluster", None), json!({"status": "disabled"}));
    let (status, body) = s.call("DELETE", "/cluster/peer/1", None);
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("Distributed mode disabled"), "{body}");
}

/// Where each shard's replicas are: shard -> peers.
fn placement(peer: &Peer, collection: &str) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for ((shard, p), _) in replica_states(peer, collection) {
        out.entry(shard).or_default().push(p);
    }
    out
}

fn no_transfers(peer: &Peer, collection: &str) -> Result<(), String> {
    let info = peer.server.ok("GET", &format!("/collections/{collection}/cluster"), None);
    match info["shard_transfers"].as_array().map(Vec::len) {
        Some(0) => all_active(peer, collection),
        _ => Err(info["shard_transfers"].to_string()),
    }
}

#[test]
fn shards_move_and_replicate_under_writes_and_peers_leave_and_join() {
    for backend in BACKENDS {
        let root = tempfile::tempdir().expect("tempdir");
        let mut peers = start_cluster(root.path(), backend);
        let ids: Vec<u64> = peers.iter().map(Peer::peer_id).collect();
        peers[0].server.ok(
            "PUT",
            "/collections/m",
            Some(&json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 3, "replication_factor": 1})),
        );
        for k in 0..10 {
            peers[0].server.ok("PUT", "/collections/m/points?wait=true", Some(&batch(k * 500, 500)));
        }
        let before = placement(&peers[0], "m");

        // A writer keeps going through peer b while shards are copied: it adds points, and
        // deletes a quarter of the ones it added the round before.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (stop, port) = (stop.clone(), peers[1].server.port);
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let (mut acked, mut deleted) = (Vec::new(), Vec::new());
                let mut next = 100_000;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let url = format!("http://127.0.0.1:{port}/collections/m/points?wait=true");
                    let r = client.put(url).json(&batch(next, 20)).send();
                    if r.is_ok_and(|r| r.status().is_success()) {
                        acked.extend(next..next + 20);
                    }
                    if next > 100_000 {
                        let gone: Vec<u64> = (next - 20..next - 15).collect();
                        let url = format!("http://127.0.0.1:{port}/collections/m/points/delete?wait=true");
                        let r = client.post(url).json(&json!({ "points": gone })).send();
                        // A failed delete may still have reached some replicas: those points
                        // are neither promised present nor absent.
                        acked.retain(|id| !gone.contains(id));
                        if r.is_ok_and(|r| r.status().is_success()) {
                            deleted.extend(gone);
                        }
                    }
                    next += 20;
                }
                (acked, deleted)
            })
        };
        let src0 = before[&0][0];
        let dst0 = *ids.iter().find(|p| **p != src0).expect("another peer");
        let op = json!({"move_shard": {"shard_id": 0, "from_peer_id": src0, "to_peer_id": dst0, "method": "snapshot"}});
        peers[2].server.ok("POST", "/collections/m/cluster", Some(&op));
        let src1 = before[&1][0];
        let dst1 = *ids.iter().find(|p| **p != src1).expect("another peer");
        let op = json!({"replicate_shard": {"shard_id": 1, "from_peer_id": src1, "to_peer_id": dst1, "method": "wal_delta"}});
        peers[0].server.ok("POST", "/collections/m/cluster", Some(&op));
        std::thread::sleep(Duration::from_millis(500));
        wait_for("transfers done", Duration::from_secs(60), || no_transfers(&peers[0], "m"));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (acked, deleted) = writer.join().expect("writer");
        assert!(!acked.is_empty() && !deleted.is_empty());
        let after = placement(&peers[0], "m");
        assert_eq!(after[&0], vec![dst0], "shard 0 moved");
        let mut replicated = vec![src1, dst1];
        replicated.sort();
        assert_eq!(after[&1], replicated, "shard 1 replicated");
        let reference = all_points(&peers[0].server, "m");
        for id in (0..5000).chain(acked.iter().copied()) {
            assert!(reference.contains_key(&id), "acknowledged point {id} is there after the transfers");
        }
        for id in &deleted {
            assert!(!reference.contains_key(id), "deleted point {id} stays deleted after the transfers");
        }
        for p in &peers[1..] {
            assert_eq!(all_points(&p.server, "m"), reference, "every peer answers the same");
        }

        // Bad transfers are refused with the reason.
        let (status, body) = peers[0].server.call(
            "POST",
            "/collections/m/cluster",
            Some(&json!({"move_shard": {"shard_id": 9, "from_peer_id": src0, "to_peer_id": dst0}})),
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("Shard 9 of m does not exist"), "{body}");
        let (status, body) = peers[0].server.call(
            "POST",
            "/collections/m/cluster",
            Some(&json!({"replicate_shard": {"shard_id": 0, "from_peer_id": dst0, "to_peer_id": 42}})),
        );
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("Peer 42 does not exist"), "{body}");
        let (status, body) = peers[0].server.call(
            "POST",
            "/collections/m/cluster",
            Some(&json!({"abort_transfer": {"shard_id": 0, "from_peer_id": src0, "to_peer_id": dst0}})),
        );
        assert_eq!(status, 404, "{body}");
        let (status, body) = peers[0].server.call(
            "POST",
            "/collections/m/cluster",
            Some(&json!({"drop_replica": {"shard_id": 0, "peer_id": dst0}})),
        );
        assert_eq!(status, 400, "the last replica stays: {body}");
        peers[0].server.ok(
            "POST",
            "/collections/m/cluster",
            Some(&json!({"drop_replica": {"shard_id": 1, "peer_id": src1}})),
        );
        assert_eq!(placement(&peers[0], "m")[&1], vec![dst1]);

        // A sparse vector added through one peer is usable through the others; dropping it
        // goes everywhere too.
        peers[1].server.ok("PUT", "/collections/m/vectors/s", Some(&json!({"sparse": {}})));
        let sparse_point =
            json!({"points": [{"id": 777_777, "vector": {"": vector(1, 8), "s": {"indices": [3], "values": [0.5]}}}]});
        peers[2].server.ok("PUT", "/collections/m/points?wait=true", Some(&sparse_point));
        let hits = peers[0].server.ok(
            "POST",
            "/collections/m/points/query",
            Some(&json!({"query": {"indices": [3], "values": [1.0]}, "using": "s", "limit": 3})),
        );
        assert_eq!(hits["points"][0]["id"], 777_777, "{hits}");
        peers[0].server.ok("DELETE", "/collections/m/vectors/s", None);
        for p in &peers {
            let info = p.server.ok("GET", "/collections/m", None);
            assert!(info["config"]["params"]["sparse_vectors"].is_null(), "{info}");
        }
        peers[0].server.ok("POST", "/collections/m/points/delete?wait=true", Some(&json!({"points": [777_777]})));

        // Empty a peer by moving its shards away, then remove it; a new peer joins.
        let leaving = 2;
        let gone = ids[leaving];
        for (shard, holders) in placement(&peers[0], "m") {
            if holders.contains(&gone) {
                let to = *ids.iter().find(|p| **p != gone && !holders.contains(p)).expect("a target");
                let method = if shard % 2 == 0 { "wal_delta" } else { "stream_records" };
                let op = json!({"move_shard": {"shard_id": shard, "from_peer_id": gone, "to_peer_id": to,
                                               "method": method}});
                peers[0].server.ok("POST", "/collections/m/cluster", Some(&op));
            }
        }
        wait_for("peer emptied", Duration::from_secs(60), || no_transfers(&peers[0], "m"));
        assert_eq!(all_points(&peers[0].server, "m"), reference, "nothing lost moving shards off the peer");
        peers[0].server.ok("DELETE", &format!("/cluster/peer/{gone}"), None);
        wait_for("two peers", Duration::from_secs(10), || {
            let c = peers[1].server.ok("GET", "/cluster", None);
            match c["peers"].as_object().map(|m| m.len()) {
                Some(2) => Ok(()),
                _ => Err(c.to_string()),
            }
        });
        drop(peers.remove(leaving));
        let newcomer = Peer::start(root.path().join("d"), backend, free_port(), Some(peers[0].p2p));
        wait_for("newcomer sees the collection", Duration::from_secs(30), || {
            match newcomer.server.call("POST", "/collections/m/points/count", Some(&json!({"exact": true}))) {
                (200, v) if v["result"]["count"].as_u64() == Some(reference.len() as u64) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        let c = newcomer.server.ok("GET", "/cluster", None);
        assert_eq!(c["peers"].as_object().map(|m| m.len()), Some(3), "{c}");
    }
}

#[test]
fn shard_keys_are_placed_replicated_and_dropped_through_consensus() {
    for backend in BACKENDS {
        let root = tempfile::tempdir().expect("tempdir");
        let peers = start_cluster(root.path(), backend);
        let ids: Vec<u64> = peers.iter().map(Peer::peer_id).collect();
        peers[0].server.ok(
            "PUT",
            "/collections/k",
            Some(&json!({"vectors": {"size": 8, "distance": "Dot"}, "sharding_method": "custom",
                         "shard_number": 2, "replication_factor": 2})),
        );
        // The collection's defaults (2 shards x 2 replicas), and a key pinned to one peer.
        peers[1].server.ok("PUT", "/collections/k/shards", Some(&json!({"shard_key": "tenant_a"})));
        let pinned = json!({"shard_key": 7, "shards_number": 1, "replication_factor": 1, "placement": [ids[2]]});
        peers[0].server.ok("PUT", "/collections/k/shards", Some(&pinned));
        let (status, body) =
            peers[2].server.call("PUT", "/collections/k/shards", Some(&json!({"shard_key": "tenant_a"})));
        assert!(!(200..300).contains(&status) && body.to_string().contains("already exists"), "{status} {body}");
        let unknown = json!({"shard_key": "x", "placement": [42]});
        let (status, body) = peers[0].server.call("PUT", "/collections/k/shards", Some(&unknown));
        assert_eq!(status, 400, "{body}");
        assert!(body.to_string().contains("Peer 42 does not exist"), "{body}");

        let states = replica_states(&peers[0], "k");
        assert_eq!(states.len(), 2 * 2 + 1, "{states:?}");
        let on_pinned: Vec<u64> = states.keys().filter(|(s, _)| *s == 2).map(|(_, p)| *p).collect();
        assert_eq!(on_pinned, vec![ids[2]], "the pinned key's shard is where placement put it");
        let info = peers[2].server.ok("GET", "/collections/k/cluster", None);
        let keyed = info["local_shards"].as_array().expect("local").iter().any(|s| s["shard_key"] == json!(7));
        assert!(keyed, "{info}");

        // Writes through any peer land in the key's shards; every peer reads them all.
        let mut a = batch(0, 100);
        a["shard_key"] = json!("tenant_a");
        peers[2].server.ok("PUT", "/collections/k/points?wait=true", Some(&a));
        let mut seven = batch(1000, 50);
        seven["shard_key"] = json!(7);
        peers[0].server.ok("PUT", "/collections/k/points?wait=true", Some(&seven));
        let reference = all_points(&peers[0].server, "k");
        assert_eq!(reference.len(), 150);
        for p in &peers {
            assert_eq!(all_points(&p.server, "k"), reference, "every peer answers the same");
            let n = p.server.ok(
                "POST",
                "/collections/k/points/count",
                Some(&json!({"shard_key": "tenant_a", "exact": true})),
            );
            assert_eq!(n["count"], 100);
            let keys = p.server.ok("GET", "/collections/k/shards", None);
            assert_eq!(keys["shard_keys"].as_array().map(Vec::len), Some(2), "{keys}");
        }

        // A tenant promoted to a key of its own: `replicate_points` copies what the filter
        // selects from one key into the other, seen alike through every peer.
        peers[1].server.ok("PUT", "/collections/k/shards", Some(&json!({"shard_key": "big", "shards_number": 1})));
        let chosen: Vec<u64> = (0..30).collect();
        let promote = json!({"replicate_points": {"from_shard_key": "tenant_a", "to_shard_key": "big",
                                                  "filter": {"must": [{"has_id": chosen}]}}});
        peers[2].server.ok("POST", "/collections/k/cluster", Some(&promote));
        let read = |p: &Peer, key: &str| {
            let body = json!({"ids": [0, 5, 29, 30], "shard_key": key, "with_vector": true, "with_payload": true});
            p.server.ok("POST", "/collections/k/points", Some(&body))
        };
        for p in &peers {
            let n =
                p.server.ok("POST", "/collections/k/points/count", Some(&json!({"shard_key": "big", "exact": true})));
            assert_eq!(n["count"], 30, "copied through one peer, counted through another");
            let (copied, source) = (read(p, "big"), read(p, "tenant_a"));
            assert_eq!(copied.as_array().map(Vec::len), Some(3), "{copied}");
            assert_eq!(copied.as_array().map(|a| &a[..]), source.as_array().map(|a| &a[..3]), "the same points");
        }
        for (bad, why) in [
            (json!({"from_shard_key": "tenant_a", "to_shard_key": "nope"}), "nope"),
            (json!({"from_shard_key": "big", "to_shard_key": "big"}), "must differ"),
        ] {
            let (status, body) =
                peers[0].server.call("POST", "/collections/k/cluster", Some(&json!({"replicate_points": bad})));
            assert!((400..500).contains(&status) && body.to_string().contains(why), "{status} {body}");
        }
        peers[0].server.ok("POST", "/collections/k/shards/delete", Some(&json!({"shard_key": "big"})));

        // Keys come and go through the cluster endpoint too; a dropped key takes its points.
        peers[1].server.ok("POST", "/collections/k/cluster", Some(&json!({"create_sharding_key": {"shard_key": "b"}})));
        peers[2].server.ok("POST", "/collections/k/cluster", Some(&json!({"drop_sharding_key": {"shard_key": "b"}})));
        peers[1].server.ok("POST", "/collections/k/shards/delete", Some(&json!({"shard_key": "tenant_a"})));
        for p in &peers {
            assert_eq!(all_points(&p.server, "k").len(), 50);
            let keys = p.server.ok("GET", "/collections/k/shards", None);
            assert_eq!(keys["shard_keys"], json!([{"key": 7}]), "{keys}");
        }
        assert_eq!(replica_states(&peers[1], "k").len(), 1);
    }
}

/// Every peer overwrites point 1 of `collection` at the same moment, writer `w` with payload
/// `{"w": w, "round": round}`; `params` are added to each write's query string.
fn write_point_one_at_once(peers: &[Peer], collection: &str, round: u64, params: &str) {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(peers.len()));
    let writers: Vec<_> = peers
        .iter()
        .enumerate()
        .map(|(w, p)| {
            let (port, barrier) = (p.server.port, barrier.clone());
            let url = format!("http://127.0.0.1:{port}/collections/{collection}/points?wait=true{params}");
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let body = json!({"points": [{"id": 1, "vector": vector(1, 8), "payload": {"w": w, "round": round}}]});
                barrier.wait();
                let r = client.put(url).json(&body).send().expect("sent");
                assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
}

#[test]
fn ordered_writes_reach_every_replica_in_one_order() {
    let backend = BACKENDS[0];
    let root = tempfile::tempdir().expect("tempdir");
    let peers = start_cluster(root.path(), backend);
    peers[0].server.ok(
        "PUT",
        "/collections/o",
        Some(&json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 1, "replication_factor": 3})),
    );
    // Each round three writers overwrite the same point through different peers at the same
    // moment; with `strong` and `medium` ordering every replica then holds the same last write
    // (each peer reads its own replica). With `weak` the replicas disagree in most rounds on
    // this machine (33 of 40 when measured), which is what the ordering is for.
    for ordering in ["strong", "medium"] {
        for round in 0..30u64 {
            write_point_one_at_once(&peers, "o", round, &format!("&ordering={ordering}"));
            let reference = all_points(&peers[0].server, "o");
            for p in &peers[1..] {
                assert_eq!(all_points(&p.server, "o"), reference, "replicas agree after {ordering} round {round}");
            }
        }
    }
    let (status, body) = peers[1].server.call("PUT", "/collections/o/points?ordering=sometimes", Some(&batch(0, 1)));
    assert_eq!(status, 400, "{body}");
}

#[test]
fn a_stuck_transfer_restarts_by_another_method() {
    let backend = BACKENDS[0];
    let root = tempfile::tempdir().expect("tempdir");
    let peers = start_cluster(root.path(), backend);
    let ids: Vec<u64> = peers.iter().map(Peer::peer_id).collect();
    let body = json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 3, "replication_factor": 1});
    peers[0].server.ok("PUT", "/collections/t", Some(&body));
    for k in 0..6 {
        peers[0].server.ok("PUT", "/collections/t/points?wait=true", Some(&batch(k * 500, 500)));
    }
    // A shard whose holder is not the Raft leader, so freezing the holder leaves consensus up.
    let leader = peers[0].server.ok("GET", "/cluster", None)["raft_info"]["leader"].as_u64().expect("leader");
    let (shard, source) =
        placement(&peers[0], "t").into_iter().map(|(s, p)| (s, p[0])).find(|(_, p)| *p != leader).expect("shard");
    let target = *ids.iter().find(|p| **p != source).expect("target");
    let frozen = ids.iter().position(|p| *p == source).expect("source peer");
    let via = &peers[(frozen + 1) % 3].server;
    // The source stops answering: the streamed copy hangs; it is restarted by snapshot.
    signal(peers[frozen].pid(), libc::SIGSTOP);
    let op = json!({"replicate_shard": {"shard_id": shard, "from_peer_id": source, "to_peer_id": target}});
    via.ok("POST", "/collections/t/cluster", Some(&op));
    let restart = json!({"restart_transfer": {"shard_id": shard, "from_peer_id": source, "to_peer_id": target, "method": "snapshot"}});
    via.ok("POST", "/collections/t/cluster", Some(&restart));
    let info = via.ok("GET", "/collections/t/cluster", None);
    assert_eq!(info["shard_transfers"][0]["method"], "snapshot", "{info}");
    let (status, body) = via.call(
        "POST",
        "/collections/t/cluster",
        Some(&json!({"restart_transfer": {"shard_id": shard, "from_peer_id": target, "to_peer_id": source, "method": "snapshot"}})),
    );
    assert_eq!(status, 404, "no such transfer: {body}");
    signal(peers[frozen].pid(), libc::SIGCONT);
    wait_for("restarted transfer done", Duration::from_secs(120), || no_transfers(&peers[0], "t"));
    let mut holders = placement(&peers[0], "t")[&shard].clone();
    holders.sort();
    let mut want = vec![source, target];
    want.sort();
    assert_eq!(holders, want, "the shard was replicated");
    let reference = all_points(&peers[0].server, "t");
    assert_eq!(reference.len(), 3000);
    for p in &peers[1..] {
        assert_eq!(all_points(&p.server, "t"), reference, "every peer answers the same");
    }
}

/// The ids (and payloads) a read of point 1 through `peer` returns under `consistency`.
fn point_one(peer: &Peer, consistency: &str) -> Vec<Value> {
    let r = peer.server.ok(
        "POST",
        &format!("/collections/rc/points?consistency={consistency}"),
        Some(&json!({"ids": [1], "with_payload": true})),
    );
    r.as_array().expect("records").iter().map(|p| p["payload"].clone()).collect()
}

#[test]
fn reads_with_consistency_ask_several_replicas_and_keep_what_they_agree_on() {
    let backend = BACKENDS[1];
    let root = tempfile::tempdir().expect("tempdir");
    let mut peers = start_cluster(root.path(), backend);
    peers[0].server.ok(
        "PUT",
        "/collections/rc",
        Some(&json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 2, "replication_factor": 3})),
    );
    peers[1].server.ok("PUT", "/collections/rc/points?wait=true", Some(&batch(0, 300)));
    peers[0].server.ok(
        "PUT",
        "/collections/rc/index?wait=true",
        Some(&json!({"field_name": "i", "field_schema": "integer"})),
    );
    wait_for("replicas active", Duration::from_secs(30), || all_active(&peers[0], "rc"));

    // Replicas that agree: every setting answers as a one-replica read does.
    let search = json!({"vector": vector(7, 8), "limit": 5, "filter": {"must": [{"key": "g", "match": {"value": 3}}]}});
    let reads = |s: &Server, c: &str| -> Vec<Value> {
        let q = if c.is_empty() { String::new() } else { format!("?consistency={c}") };
        vec![
            s.ok("POST", &format!("/collections/rc/points/search{q}"), Some(&search)),
            s.ok("POST", &format!("/collections/rc/points/scroll{q}"), Some(&json!({"limit": 20, "offset": 100}))),
            s.ok("POST", &format!("/collections/rc/points/count{q}"), Some(&json!({"exact": true}))),
            s.ok("POST", &format!("/collections/rc/points{q}"), Some(&json!({"ids": [5, 250, 999]}))),
            s.ok(
                "POST",
                &format!("/collections/rc/points/query{q}"),
                Some(&json!({"query": vector(9, 8), "limit": 3})),
            ),
            s.ok(
                "POST",
                &format!("/collections/rc/points/scroll{q}"),
                Some(&json!({"limit": 7, "order_by": {"key": "i", "direction": "desc"}})),
            ),
        ]
    };
    let plain = reads(&peers[1].server, "");
    assert_eq!(plain[2]["count"], 300);
    assert_eq!(plain[5]["points"][0]["id"], 299, "order_by scroll: {}", plain[5]);
    for c in ["2", "quorum", "majority", "all", "7"] {
        assert_eq!(reads(&peers[1].server, c), plain, "consistency={c}");
    }
    // Bad values are refused, naming the parameter.
    for (c, says) in [("0", "cannot be less than 1"), ("most", "\"most\"")] {
        let (status, body) =
            peers[0].server.call("POST", &format!("/collections/rc/points/count?consistency={c}"), Some(&json!({})));
        assert_eq!(status, 400, "{body}");
        assert!(
            body["status"]["error"].as_str().is_some_and(|e| e.contains("consistency") && e.contains(says)),
            "{body}"
        );
        let (status, body) = peers[0].server.call(
            "POST",
            &format!("/collections/rc/points/search/matrix/pairs?consistency={c}"),
            Some(&json!({"sample": 5, "limit": 2})),
        );
        assert_eq!(status, 400, "{body}");
    }

    // Replicas that disagree: unordered writes of one point through three peers at once leave
    // the replicas with different last writes in most rounds. Each peer reads its own replica;
    // `all` keeps the point only if the three copies agree, `majority` if two of them do.
    let mut disagreed = 0;
    for round in 0..40u64 {
        write_point_one_at_once(&peers, "rc", round, "");
        let copies: Vec<Value> = peers.iter().map(|p| point_one(p, "1")[0].clone()).collect();
        let agreeing = copies.iter().map(|c| copies.iter().filter(|d| *d == c).count()).max().unwrap_or(0);
        let all = point_one(&peers[0], "all");
        let majority = point_one(&peers[0], "majority");
        match agreeing {
            3 => assert_eq!((all.len(), majority.len()), (1, 1), "round {round}: {copies:?}"),
            2 => {
                assert!(all.is_empty(), "round {round}: `all` kept a point the replicas disagree on: {copies:?}");
                assert_eq!(majority.len(), 1, "round {round}: {copies:?}");
                assert!(copies.iter().filter(|c| **c == majority[0]).count() == 2, "round {round}");
                disagreed += 1;
            }
            _ => {
                assert!(all.is_empty() && majority.is_empty(), "round {round}: {copies:?} gave {all:?} / {majority:?}");
                disagreed += 1;
            }
        }
        if disagreed >= 3 {
            break;
        }
    }
    assert!(disagreed > 0, "the replicas never disagreed in 40 rounds; the test proved nothing");

    // A peer down: reads that need every replica fail with 503 naming the shortfall; those
    // that need fewer go on.
    peers[2].server.kill9();
    for c in ["all", "majority"] {
        let (status, body) =
            peers[0].server.call("POST", &format!("/collections/rc/points/count?consistency={c}"), Some(&json!({})));
        assert_eq!(status, 503, "consistency={c}: {body}");
        assert!(body["status"]["error"].as_str().is_some_and(|e| e.contains("needs 3")), "{body}");
    }
    for c in ["quorum", "2", "1"] {
        let n = peers[0].server.ok("POST", &format!("/collections/rc/points/count?consistency={c}"), Some(&json!({})));
        assert_eq!(n["count"], 300, "consistency={c}");
    }
    peers[2].restart();
}

/// Payload `v` of every point `peer` reads of `collection`, by id.
fn versions(peer: &Peer, collection: &str) -> BTreeMap<u64, Value> {
    all_points(&peer.server, collection).into_iter().map(|(id, p)| (id, p[0]["v"].clone())).collect()
}

/// Points `0..n` with payload `v`.
fn generation(peer: &Peer, collection: &str, n: u64, v: u64) {
    let points: Vec<Value> = (0..n).map(|i| json!({"id": i, "vector": vector(i, 8), "payload": {"v": v}})).collect();
    peer.server.ok("PUT", &format!("/collections/{collection}/points?wait=true"), Some(&json!({ "points": points })));
}

/// The file of a snapshot `peer` just took of `collection` (a shard's, with `shard`).
fn take_snapshot(peer: &Peer, collection: &str, shard: Option<u64>) -> PathBuf {
    let path = match shard {
        Some(s) => format!("/collections/{collection}/shards/{s}/snapshots"),
        None => format!("/collections/{collection}/snapshots"),
    };
    let name = peer.server.ok("POST", &path, None)["name"].as_str().expect("name").to_string();
    let mut dir = peer.dir.with_extension("snapshots").join(collection);
    if let Some(s) = shard {
        dir = dir.join("shards").join(s.to_string());
    }
    let file = dir.join(&name);
    assert!(file.is_file(), "{} exists", file.display());
    file
}

/// `PUT path` (a snapshot recovery) on `peer` with `file`, copied into that peer's snapshots
/// directory first (a location must lie there).
fn recover(peer: &Peer, path: &str, file: &std::path::Path, priority: Option<&str>) -> (u16, Value) {
    let dir = peer.dir.with_extension("snapshots");
    std::fs::create_dir_all(&dir).expect("snapshots dir");
    let local = dir.join(format!("copy-{}", file.file_name().expect("name").to_string_lossy()));
    std::fs::copy(file, &local).expect("copy");
    let mut body = json!({"location": format!("file://{}", local.display())});
    if let Some(p) = priority {
        body["priority"] = json!(p);
    }
    peer.server.call("PUT", path, Some(&body))
}

/// Every peer reads `want` (payload `v` by id) of `collection`, with every replica Active.
fn converged(peers: &[Peer], collection: &str, want: &BTreeMap<u64, Value>) -> Result<(), String> {
    for p in peers {
        all_active(p, collection)?;
        let got = versions(p, collection);
        if &got != want {
            return Err(format!("peer {} reads {} points, {:?}...", p.peer_id(), got.len(), got.values().next()));
        }
    }
    Ok(())
}

fn uniform(n: u64, v: u64) -> BTreeMap<u64, Value> {
    (0..n).map(|i| (i, json!(v))).collect()
}

/// Snapshot recovery on a peer of a cluster, as in Qdrant: each peer recovers its own
/// replicas; `priority` `snapshot` makes the other replicas copy the recovered one, `replica`
/// (the default) makes the recovered one copy the others, `no_sync` changes nothing else. A
/// collection the cluster lacks is created from the snapshot; the shard form replaces one shard.
fn snapshots_recover_into_a_cluster(backend: &str) {
    let root = tempfile::tempdir().expect("tempdir");
    let peers = start_cluster(root.path(), backend);
    let body = json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 1, "replication_factor": 3});
    peers[0].server.ok("PUT", "/collections/s", Some(&body));
    peers[0].server.ok(
        "PUT",
        "/collections/s/index?wait=true",
        Some(&json!({"field_name": "v", "field_schema": "integer"})),
    );
    generation(&peers[0], "s", 600, 1);
    let snap_a = take_snapshot(&peers[0], "s", None);
    let shard_b = take_snapshot(&peers[1], "s", Some(0));
    generation(&peers[1], "s", 700, 2);
    wait_for("generation 2 everywhere", Duration::from_secs(30), || converged(&peers, "s", &uniform(700, 2)));

    // priority snapshot: the snapshot's 600 points of generation 1 win on every peer.
    let (status, v) = recover(&peers[0], "/collections/s/snapshots/recover", &snap_a, Some("snapshot"));
    assert_eq!(status, 200, "{v}");
    wait_for("snapshot priority", Duration::from_secs(60), || converged(&peers, "s", &uniform(600, 1)));

    // priority replica (the default): the recovered replica copies the others again.
    generation(&peers[2], "s", 650, 3);
    let (status, v) = recover(&peers[1], "/collections/s/snapshots/recover", &snap_a, None);
    assert_eq!(status, 200, "{v}");
    wait_for("replica priority", Duration::from_secs(60), || converged(&peers, "s", &uniform(650, 3)));

    // no_sync: only the recovering peer holds the snapshot's data; reads through it show it.
    let (status, v) = recover(&peers[2], "/collections/s/snapshots/recover", &snap_a, Some("no_sync"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(versions(&peers[2], "s"), uniform(600, 1));
    assert_eq!(versions(&peers[0], "s"), uniform(650, 3));
    all_active(&peers[0], "s").expect("no replica state changed");

    // The shard form, with a shard snapshot taken on another peer: its data wins everywhere.
    let (status, v) = recover(&peers[0], "/collections/s/shards/0/snapshots/recover", &shard_b, Some("snapshot"));
    assert_eq!(status, 200, "{v}");
    wait_for("shard snapshot priority", Duration::from_secs(60), || converged(&peers, "s", &uniform(600, 1)));

    // A collection the cluster does not have is created from the snapshot on every peer.
    let (status, v) = recover(&peers[1], "/collections/fresh/snapshots/recover", &snap_a, Some("snapshot"));
    assert_eq!(status, 200, "{v}");
    wait_for("new collection", Duration::from_secs(60), || converged(&peers, "fresh", &uniform(600, 1)));
    let info = peers[2].server.ok("GET", "/collections/fresh", None);
    assert_eq!(info["config"]["params"]["replication_factor"], 3, "{info}");
    assert_eq!(info["payload_schema"]["v"]["data_type"], "integer", "the snapshot's payload index: {info}");
    // With the default priority a new collection stays empty where other replicas exist (they
    // are Active and empty), as Qdrant documents.
    let (status, v) = recover(&peers[2], "/collections/empty/snapshots/recover", &snap_a, None);
    assert_eq!(status, 200, "{v}");
    wait_for("default priority, new collection", Duration::from_secs(60), || {
        converged(&peers, "empty", &BTreeMap::new())
    });

    // One replica per shard, each peer recovering its own snapshot (restoring a whole cluster):
    // with no other replica, the default priority keeps each snapshot's data.
    let body = json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 3, "replication_factor": 1});
    peers[0].server.ok("PUT", "/collections/one", Some(&body));
    generation(&peers[0], "one", 300, 1);
    let own: Vec<PathBuf> = peers.iter().map(|p| take_snapshot(p, "one", None)).collect();
    generation(&peers[1], "one", 400, 2);
    for (p, file) in peers.iter().zip(&own) {
        let (status, v) = recover(p, "/collections/one/snapshots/recover", file, None);
        assert_eq!(status, 200, "{v}");
    }
    wait_for("each peer its own snapshot", Duration::from_secs(60), || converged(&peers, "one", &uniform(300, 1)));

    // Refusals, with nothing changed: another vectors config, a shard or collection that does
    // not exist, a damaged checksum.
    peers[0].server.ok("PUT", "/collections/other", Some(&json!({"vectors": {"size": 4, "distance": "Dot"}})));
    let (status, v) = recover(&peers[0], "/collections/other/snapshots/recover", &snap_a, Some("snapshot"));
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("vectors config"), "{v}");
    let (status, v) = recover(&peers[0], "/collections/s/shards/7/snapshots/recover", &shard_b, None);
    assert_eq!(status, 404, "{v}");
    let (status, v) = recover(&peers[0], "/collections/nope/shards/0/snapshots/recover", &shard_b, None);
    assert_eq!(status, 404, "{v}");
    let body = json!({"location": format!("file://{}", snap_a.display()), "checksum": "0".repeat(64)});
    let (status, v) = peers[0].server.call("PUT", "/collections/s/snapshots/recover", Some(&body));
    assert_eq!(status, 400, "{v}");
    converged(&peers, "s", &uniform(600, 1)).expect("unchanged after refusals");
}

#[test]
fn snapshots_recover_into_a_cluster_sqlite() {
    snapshots_recover_into_a_cluster(BACKENDS[0]);
}

#[test]
fn snapshots_recover_into_a_cluster_rocksdb() {
    snapshots_recover_into_a_cluster(BACKENDS[1]);
}

/// A member restarted with another `--uri` (a new P2P port here) is reached there: the cluster
/// records the new URI and the peer's replicas catch up and take writes. A copy of a live
/// peer's storage started elsewhere is refused the move (the original still answers).
#[test]
fn a_peer_restarted_at_another_uri_is_reached_there() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut peers = start_cluster(root.path(), BACKENDS[1]);
    let body = json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 1, "replication_factor": 3});
    peers[0].server.ok("PUT", "/collections/u", Some(&body));
    peers[0].server.ok("PUT", "/collections/u/points?wait=true", Some(&batch(0, 100)));
    let moved = peers[2].peer_id();
    let old_uri = format!("http://127.0.0.1:{}", peers[2].p2p);
    peers[2].p2p = free_port();
    let new_uri = format!("http://127.0.0.1:{}", peers[2].p2p);
    peers[2].restart();
    let uri_of = |peer: &Peer, id: u64| peer.server.ok("GET", "/cluster", None)["peers"][id.to_string()]["uri"].clone();
    wait_for("the new URI recorded", Duration::from_secs(30), || match uri_of(&peers[0], moved) {
        u if u == json!(new_uri) => Ok(()),
        u => Err(format!("{u} (was {old_uri})")),
    });
    // Raft reaches it there: a metadata change committed after the move is applied on it, and
    // it knows its own new URI.
    let small = json!({"vectors": {"size": 2, "distance": "Dot"}});
    peers[0].server.ok("PUT", "/collections/after_move", Some(&small));
    wait_for("consensus reaches the moved peer", Duration::from_secs(30), || {
        match peers[2].server.call("GET", "/collections/after_move", None).0 {
            200 if uri_of(&peers[2], moved) == json!(new_uri) => Ok(()),
            s => Err(format!("status {s}")),
        }
    });
    peers[0].server.ok("PUT", "/collections/u/points?wait=true", Some(&batch(100, 100)));
    wait_for("the moved peer catches up", Duration::from_secs(60), || active_holding(&peers[0], &peers[2], "u", 200));
    assert_eq!(all_points(&peers[2].server, "u"), all_points(&peers[0].server, "u"));

    // A copy of peer b's storage (taken while b is stopped) started at another port while b
    // runs again at its own: the move is refused, b stays where it is.
    peers[1].server.kill9();
    let copy_dir = root.path().join("copy");
    let status = std::process::Command::new("cp").arg("-a").arg(&peers[1].dir).arg(&copy_dir).status().expect("cp");
    assert!(status.success());
    peers[1].restart();
    let b = peers[1].peer_id();
    let b_uri = uri_of(&peers[0], b);
    let mut copy = Peer::start(copy_dir, BACKENDS[1], free_port(), None);
    wait_for("the copy refused", Duration::from_secs(30), || {
        match copy.server.log_text().contains("refused this peer's new URI") {
            true => Ok(()),
            false => Err("no refusal logged yet".into()),
        }
    });
    copy.server.kill9();
    assert_eq!(uri_of(&peers[0], b), b_uri, "b keeps its URI");
    peers[0].server.ok("PUT", "/collections/u/points?wait=true", Some(&batch(200, 10)));
    wait_for("the cluster serves on", Duration::from_secs(60), || active_holding(&peers[0], &peers[1], "u", 210));
}

/// Every replica of `collection` Active as `seen_by` sees it, and `peer` reading `n` points.
fn active_holding(seen_by: &Peer, peer: &Peer, collection: &str, n: usize) -> Result<(), String> {
    all_active(seen_by, collection)?;
    match all_points(&peer.server, collection).len() {
        got if got == n => Ok(()),
        got => Err(format!("{got} points on peer {}", peer.peer_id())),
    }
}

/// Writes go on while a shard is copied into new replicas, by `stream_records`, `snapshot` and
/// `wal_delta`: each round deletes the points tagged with the round's own tag (none yet), tags
/// a group with it, and inserts (insert-only) a point at a new odd id among the copied even
/// ones. A copy read after the first two holds them; applying them to it again would delete the
/// group there. The inserted point may sort before the copy's cursor: the copy's end must not
/// delete it as a point the source lacks. Every replica ends the same, every point there.
#[test]
fn writes_during_a_copy_are_applied_once_and_kept() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    for backend in BACKENDS {
        let root = tempfile::tempdir().expect("tempdir");
        let peers = start_cluster(root.path(), backend);
        let ids: Vec<u64> = peers.iter().map(Peer::peer_id).collect();
        let body = json!({"vectors": {"size": 8, "distance": "Dot"}, "shard_number": 1, "replication_factor": 1});
        peers[0].server.ok("PUT", "/collections/f", Some(&body));
        let point = |id: u64| json!({"id": id, "vector": vector(id, 8), "payload": {"i": id, "g": id % 7}});
        for k in 0..10u64 {
            let points: Vec<Value> = (k * 2000..(k + 1) * 2000).map(|i| point(2 * i)).collect();
            peers[0].server.ok("PUT", "/collections/f/points?wait=true", Some(&json!({ "points": points })));
        }
        let source = placement(&peers[0], "f")[&0][0];
        let targets: Vec<u64> = ids.iter().copied().filter(|p| *p != source).collect();
        let phases = [(targets[0], "stream_records"), (targets[1], "snapshot"), (targets[0], "wal_delta")];
        for (phase, (target, method)) in phases.into_iter().enumerate() {
            if phase == 2 {
                // The first target's replica goes, and comes back by a delta copy.
                let drop = json!({"drop_replica": {"shard_id": 0, "peer_id": target}});
                peers[1].server.ok("POST", "/collections/f/cluster", Some(&drop));
                wait_for("replica dropped", Duration::from_secs(30), || {
                    match placement(&peers[0], "f")[&0].contains(&target) {
                        false => Ok(()),
                        true => Err(format!("{:?}", placement(&peers[0], "f"))),
                    }
                });
            }
            let stop = std::sync::Arc::new(AtomicBool::new(false));
            let done = std::sync::Arc::new(AtomicU64::new(0));
            let writer = {
                let (stop, done, port) = (stop.clone(), done.clone(), peers[0].server.port);
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let base = format!("http://127.0.0.1:{port}/collections/f/points");
                    // Each round has a tag and a new point of its own (a failed write may still
                    // have been applied), so no delete ever matches a tag already set.
                    let mut round = 0u64;
                    let ok = |r: reqwest::Result<reqwest::blocking::Response>| match r {
                        Ok(r) if r.status().is_success() => true,
                        Ok(r) => {
                            eprintln!("write refused: {} {}", r.status(), r.text().unwrap_or_default());
                            false
                        }
                        Err(e) => {
                            eprintln!("write failed: {e}");
                            false
                        }
                    };
                    while !stop.load(Ordering::SeqCst) {
                        let tag = format!("{method}-{round}");
                        let tagged = json!({"must": [{"key": "tag", "match": {"value": tag}}]});
                        let group = json!({"must": [{"key": "g", "match": {"value": round % 7}}]});
                        let deleted =
                            client.post(format!("{base}/delete?wait=true")).json(&json!({"filter": tagged})).send();
                        let set = json!({"payload": {"tag": tag}, "filter": group});
                        let tagged = client.post(format!("{base}/payload?wait=true")).json(&set).send();
                        let id = 2 * ((phase as u64 * 7919 + round * 104_729) % 20_000) + 1;
                        let new = json!({"points": [point(id)], "update_mode": "insert_only"});
                        let inserted = client.put(format!("{base}?wait=true")).json(&new).send();
                        if ok(deleted) & ok(tagged) & ok(inserted) {
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        round += 1;
                    }
                })
            };
            std::thread::sleep(Duration::from_millis(100));
            let before = done.load(Ordering::SeqCst);
            let op = json!({"replicate_shard": {"shard_id": 0, "from_peer_id": source, "to_peer_id": target, "method": method}});
            peers[1].server.ok("POST", "/collections/f/cluster", Some(&op));
            // Peer a (the writers' coordinator) sees the new replica before the copy counts
            // as done there.
            wait_for("new replica placed", Duration::from_secs(30), || {
                match placement(&peers[0], "f")[&0].contains(&target) {
                    true => Ok(()),
                    false => Err(format!("{:?}", placement(&peers[0], "f"))),
                }
            });
            wait_for("copy done", Duration::from_secs(120), || no_transfers(&peers[0], "f"));
            let during = done.load(Ordering::SeqCst) - before;
            stop.store(true, Ordering::SeqCst);
            writer.join().expect("writer");
            assert!(during >= 2, "writes went on during the {method} copy ({during} rounds, {backend})");
            wait_for("every replica active", Duration::from_secs(60), || all_active(&peers[0], "f"));
        }
        // Each peer holds a replica now and reads its own.
        let reference = all_points(&peers[0].server, "f");
        assert!((0..20_000u64).all(|i| reference.contains_key(&(2 * i))), "no copied point was deleted ({backend})");
        assert!(reference.len() > 20_000, "points were inserted during the copies ({backend})");
        for p in &peers[1..] {
            let points = all_points(&p.server, "f");
            let differ: Vec<&u64> = reference
                .keys()
                .chain(points.keys())
                .filter(|id| points.get(*id) != reference.get(*id))
                .take(5)
                .collect();
            assert!(differ.is_empty(), "peer {} differs from peer a on points {differ:?} ({backend})", p.peer_id());
        }
    }
}
