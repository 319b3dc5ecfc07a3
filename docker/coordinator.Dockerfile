# The coordinator image: the `coordinator` binary alone on debian-slim, no libtorch (it never runs a model).
# Build from the repository root: docker build -f docker/coordinator.Dockerfile -t sensgrid/coordinator .
# (docker compose builds it as the coordinator service's image.)
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# Only the coordinator package: torch-sys is a worker dependency, so nothing here needs libtorch. The
# migrations are embedded in the binary.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked -p sensgrid-coordinator --bin coordinator \
    && cp target/release/coordinator /coordinator

FROM debian:bookworm-slim
# ca-certificates: Postgres over TLS; curl: the compose healthcheck's GET /healthz; fonts-dejavu-core: the text of
# the plots `coordinator results` draws.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /coordinator /usr/local/bin/coordinator
# `submit -c examples/configs/…` resolves the config's relative paths (models/, data/) from here; compose
# mounts the repository's examples/, models/ and data/ below it.
WORKDIR /work
EXPOSE 7070 8080
ENTRYPOINT ["coordinator"]
CMD ["--help"]
