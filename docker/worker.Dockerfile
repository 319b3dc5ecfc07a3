# The worker image: `worker` on the CUDA PyTorch 2.11 image, whose torch package is the libtorch it links (tch
# 0.24 binds torch 2.11.0 exactly). The same image runs on CPU-only nodes (`--device auto` falls back to cpu).
# Build from the repository root: docker build -f docker/worker.Dockerfile -t sensgrid/worker .
ARG PYTORCH_TAG=2.11.0-cuda12.8-cudnn9
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS rust

# The devel flavour has the C++ toolchain that torch-sys's wrapper compiles with; its torch package sits at the
# same path as in the runtime flavour, so the binary's rpath to torch/lib holds in the final image.
FROM pytorch/pytorch:${PYTORCH_TAG}-devel AS build
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# LIBTORCH names the image's torch package (.cargo/config.toml would point at .libtorch, which `make setup`
# makes on a developer's machine only).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    LIBTORCH="$(python -c 'import os, torch; print(os.path.dirname(torch.__file__))')" \
    cargo build --release --locked -p sensgrid-worker --bin worker \
    && cp target/release/worker /worker

FROM pytorch/pytorch:${PYTORCH_TAG}-runtime
COPY --from=build /worker /usr/local/bin/worker
# The artifact cache (`join --cache-dir`): models and eval bundles downloaded once per worker.
VOLUME /var/cache/sensgrid
# Exec form: the worker is PID 1 and gets SIGTERM itself (first: finish the job; second: hand it back).
ENTRYPOINT ["worker"]
CMD ["--help"]
