# The two commands of a fresh machine: `make main-job` (the sensitivity grid end to end) and `make test`; both
# run `make setup` first.
export LIBTORCH := $(CURDIR)/.libtorch

.PHONY: setup test lint main-job

setup:
	bash scripts/setup.sh

test: setup
	bash scripts/test.sh

main-job: setup
	bash scripts/main-job.sh

lint:
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
