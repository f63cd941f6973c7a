# Multi-stage build from public base images, for machines that can pull from a registry:
#
#   docker build -t qdrant/qdrant .
#
# NOT exercised by CI: the CI machine has no registry, so it builds the same image with
# scripts/docker-build.sh (docker/Dockerfile.local, from local files only); see docs/docker.md.
# Both paths assemble the runtime filesystem with docker/assemble-rootfs.sh, and the final stage
# below is the same as docker/Dockerfile.local, so the two images have the same layout.
ARG RUST_IMAGE=rust:1-bookworm

FROM ${RUST_IMAGE} AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libclang-dev librocksdb-dev pkg-config binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# RocksDB is linked from Debian's librocksdb (as in .cargo/config.toml); its directory depends on the
# architecture, hence ROCKSDB_LIB_DIR here (it takes precedence over .cargo/config.toml).
RUN ROCKSDB_LIB_DIR="/usr/lib/$(gcc -print-multiarch)" \
        cargo build --release --locked --bin qdrant \
 && docker/assemble-rootfs.sh target/release/qdrant config/config.yaml /rootfs

FROM scratch
COPY --from=builder /rootfs/ /

ARG VERSION=dev
LABEL org.opencontainers.image.title="qdrant" \
      org.opencontainers.image.description="Vector search engine compatible with Qdrant's REST API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH=/qdrant:/usr/bin:/bin \
    NO_COLOR=1
WORKDIR /qdrant
# REST (and gRPC, once served).
EXPOSE 6333 6334
STOPSIGNAL SIGTERM
# `qdrant healthcheck` probes /readyz on the configured port; no shell or curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/qdrant/qdrant", "healthcheck"]
# Arguments after the image name are qdrant flags, e.g. `docker run qdrant/qdrant --storage sqlite`.
ENTRYPOINT ["/qdrant/qdrant"]
