# The two commands of a fresh machine: `make setup` (also run by `make test`) and `make test`.
export LIBTORCH := $(CURDIR)/.libtorch

.PHONY: setup test lint

setup:
	bash scripts/setup.sh

test: setup
	bash scripts/test.sh

lint:
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
