//! Records the git commit this binary is built from as `QD_BUILD_COMMIT` (reported by `GET /`
//! under `build.commit`). `QDRANT_BUILD_COMMIT` overrides it (builds without `.git`, e.g. the
//! Docker context); without either it is "unknown". Reruns only when HEAD or the branch it
//! points to moves, so an ordinary rebuild costs nothing.

use std::path::Path;
use std::process::Command;

/// One line of `git` output, or `None` when git or the repository is missing.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_string())
}

/// Ask cargo to rerun when this git-internal file changes (if it exists: a missing path would
/// make cargo rerun the script on every build).
fn watch_git_path(name: &str) -> bool {
    match git(&["rev-parse", "--git-path", name]) {
        Some(p) if Path::new(&p).exists() => {
            println!("cargo:rerun-if-changed={p}");
            true
        }
        _ => false,
    }
}

fn main() {
    println!("cargo:rerun-if-env-changed=QDRANT_BUILD_COMMIT");
    let commit = std::env::var("QDRANT_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=QD_BUILD_COMMIT={commit}");
    let mut watched = watch_git_path("HEAD");
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched |= watch_git_path(&branch);
        watched |= watch_git_path("packed-refs");
    }
    if !watched {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
