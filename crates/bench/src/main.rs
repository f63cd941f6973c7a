//! `qd-bench`: the project's benchmarks, one command each (see docs/benchmarks.md).
//!
//! ```text
//! qd-bench hnsw   [--n 100000] [--dim 128] [--queries 1000] [--m 16] [--ef-construct 100] [--threads 0] [--out DIR]
//! qd-bench reopen [--n 1000000] [--dim 128] [--backend rocksdb] [--dir DIR]
//! qd-bench shards [--n 1000000] [--dim 128] [--backend rocksdb] [--counts 1,2,4,8] [--ef 16,32,64,128] [--queries 1000] [--ingest-only true --repeat 3] [--dir DIR]
//! ```
//! Each prints one JSON document on stdout.

mod hnsw;
mod server;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use qd_storage::BackendKind;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        eprintln!("usage: qd-bench hnsw|reopen|shards [--flag value ...]");
        return ExitCode::from(2);
    };
    let mut flags: HashMap<String, String> = HashMap::new();
    for pair in args[1..].chunks(2) {
        match pair {
            [k, v] if k.starts_with("--") => {
                flags.insert(k.trim_start_matches("--").to_string(), v.clone());
            }
            _ => {
                eprintln!("qd-bench: expected --flag value pairs, got {pair:?}");
                return ExitCode::from(2);
            }
        }
    }
    let num = |k: &str, d: usize| flags.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let backend: BackendKind = match flags.get("backend").map(|b| b.parse()).unwrap_or(Ok(BackendKind::Rocksdb)) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("qd-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let tmp = std::env::temp_dir().join(format!("qd-bench-{}", std::process::id()));
    let dir = flags.get("dir").map(PathBuf::from).unwrap_or(tmp.clone());
    let threads = num("threads", 0);
    if threads > 0 {
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
    let result = match cmd.as_str() {
        "hnsw" => Ok(hnsw::run(&hnsw::Args {
            n: num("n", 100_000),
            dim: num("dim", 128),
            queries: num("queries", 1000),
            m: num("m", 16),
            ef_construct: num("ef-construct", 100),
            threads,
            out_dir: flags.get("out").map(PathBuf::from),
        })),
        "reopen" => server::reopen(&dir, backend, num("n", 1_000_000), num("dim", 128)),
        "shards" => {
            let counts: Vec<u32> = flags
                .get("counts")
                .map(|c| c.split(',').filter_map(|x| x.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![1, 2, 4, 8]);
            let efs: Vec<usize> = flags
                .get("ef")
                .map(|c| c.split(',').filter_map(|x| x.trim().parse().ok()).collect())
                .unwrap_or_else(|| vec![16, 32, 64, 128]);
            let args = server::ShardsArgs {
                n: num("n", 1_000_000),
                dim: num("dim", 128),
                counts: &counts,
                efs: &efs,
                queries: num("queries", 1000),
                ingest_only: flags.get("ingest-only").is_some_and(|v| v == "true"),
                repeat: num("repeat", 1),
            };
            server::shards(&dir, backend, &args)
        }
        other => Err(format!("unknown benchmark {other:?}: expected hnsw, reopen or shards")),
    };
    if !flags.contains_key("dir") {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    match result {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("qd-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
