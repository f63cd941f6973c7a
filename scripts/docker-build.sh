#!/usr/bin/env bash
# Builds the Docker image qdrant/qdrant:latest and qdrant/qdrant:v<version> from local files only
# (no registry, no base image needed; see docs/docker.md):
#   1. `cargo build --release --bin qdrant` (a no-op when the binary is up to date);
#   2. docker/assemble-rootfs.sh: the binary, the shared libraries it links (found with ldd),
#      config/config.yaml and a minimal /etc into target/docker/context/rootfs;
#   3. `docker build` of docker/Dockerfile.local (FROM scratch + that rootfs).
#
# Usage: scripts/docker-build.sh [--no-cargo] [--image NAME]
#   --no-cargo     do not run cargo; use the binary as it is (QDRANT_BIN, default target/release/qdrant)
#   --image NAME   repository to tag (default qdrant/qdrant, or $QDRANT_IMAGE)
# Environment: QDRANT_BIN=path  use that binary (implies --no-cargo).
# Prints the image size at the end. Where a registry is available, `docker build -t qdrant/qdrant .`
# with the repository's Dockerfile builds the same image from public base images instead.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${QDRANT_IMAGE:-qdrant/qdrant}
run_cargo=1
[ -n "${QDRANT_BIN:-}" ] && run_cargo=0
bin=${QDRANT_BIN:-target/release/qdrant}
while [ "$#" -gt 0 ]; do
  case "$1" in
    --no-cargo) run_cargo=0 ;;
    --image) image=${2:?--image needs a name}; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
    *) echo "docker-build: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if ! docker info >/dev/null 2>&1; then
  echo "docker-build: no Docker engine reachable (is dockerd running, and may this user use it?)" >&2
  exit 1
fi

# The version of [workspace.package] in Cargo.toml.
version=$(awk '/^\[/{sect=$0} sect=="[workspace.package]" && $1=="version" {gsub(/"/,"",$3); print $3; exit}' Cargo.toml)
[ -n "$version" ] || { echo "docker-build: no version in [workspace.package] of Cargo.toml" >&2; exit 1; }

if [ "$run_cargo" = 1 ]; then
  scripts/install-deps.sh --no-python
  echo "== cargo build --release --bin qdrant"
  cargo build --release --bin qdrant
fi
[ -x "$bin" ] || { echo "docker-build: $bin not found; build it or drop --no-cargo" >&2; exit 1; }

ctx=target/docker/context
echo "== assembling the image root filesystem in $ctx/rootfs"
docker/assemble-rootfs.sh "$bin" config/config.yaml "$ctx/rootfs"
cp docker/Dockerfile.local "$ctx/Dockerfile"

echo "== docker build -> $image:latest, $image:v$version"
# The legacy builder and BuildKit both accept this Dockerfile; DOCKER_BUILDKIT is left as it is.
previous=$(docker image inspect -f '{{.Id}}' "$image:latest" 2>/dev/null || true)
docker build --quiet --build-arg "VERSION=$version" -t "$image:latest" -t "$image:v$version" "$ctx" >/dev/null
# Drop the image this build replaced when nothing else refers to it (no tag left, no container).
current=$(docker image inspect -f '{{.Id}}' "$image:latest")
if [ -n "$previous" ] && [ "$previous" != "$current" ] \
   && [ "$(docker image inspect -f '{{len .RepoTags}}' "$previous" 2>/dev/null)" = 0 ]; then
  docker rmi "$previous" >/dev/null 2>&1 || true
fi

size=$(docker image inspect -f '{{.Size}}' "$image:latest")
echo "docker-build: built $image:latest and $image:v$version ($((size / 1000000)) MB, $size bytes)"
