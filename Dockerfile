# syntax=docker/dockerfile:1.7
#
# The shardline image: one binary (`shardline gateway | coordinator | worker |
# bridge | ...`) on a slim Debian base, running as an unprivileged user.
#
#   docker build -t shardline:0.1.0 .
#   docker build --platform linux/arm64 -t shardline:0.1.0 .   # Graviton (cpu_architecture = "ARM64")

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

# --- Build -------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder

WORKDIR /src
COPY . .

# Registry, git checkouts and the target directory live in BuildKit caches, so
# a rebuild after a source change only recompiles what changed. The binary is
# copied out of the cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p shardline \
    && install -D -m 0755 target/release/shardline /out/shardline

# --- Run ---------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# CA roots for Discord and AWS over TLS; curl for the container health check.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 shardline \
    && useradd --system --uid 10001 --gid shardline --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin shardline

COPY --from=builder /out/shardline /usr/local/bin/shardline

USER 10001:10001

ENV SHARDLINE_LOG_FORMAT=json \
    SHARDLINE_METRICS_ADDR=0.0.0.0:9090

EXPOSE 9090

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["curl", "--fail", "--silent", "--max-time", "2", "http://127.0.0.1:9090/healthz"]

ENTRYPOINT ["/usr/local/bin/shardline"]
CMD ["gateway"]
