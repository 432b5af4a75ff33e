#!/usr/bin/env bash
# The whole test suite in one command: installs what is missing, then runs
# formatting, lints, every test (unit, integration, doc) and the Terraform checks.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$SHARDLINE_ROOT"
ensure_nats_server
ensure_cargo_lambda
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"
# The end-to-end tests run the binary that `cargo test --workspace` builds.
export SHARDLINE_BIN="${SHARDLINE_BIN:-$CARGO_TARGET_DIR/debug/shardline}"

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "cargo test (unit, integration and doc tests)"
# twilight-gateway picks zstd over zlib when a build enables both, so the
# zlib-stream conformance crate runs in a build of its own.
cargo test --workspace --locked --no-fail-fast --exclude shardline-sim-zlib
say "cargo test -p shardline-sim-zlib (twilight-gateway over zlib-stream only)"
cargo test -p shardline-sim-zlib --locked

say "Terraform checks (fmt, validate, apply to moto_server, checkov, HCL rules)"
ensure_terraform_test_tools
terraform/tests/run.sh
