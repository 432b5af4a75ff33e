#!/usr/bin/env bash
# The whole test suite in one command: installs what is missing, then runs
# formatting, lints, every test (unit, integration, doc) and the Terraform checks.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$SHARDLINE_ROOT"
ensure_nats_server
ensure_cargo_lambda
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
say "cargo test (unit, integration and doc tests)"
cargo test --workspace --locked --no-fail-fast

say "Terraform checks (fmt, validate, apply to moto_server, checkov, HCL rules)"
ensure_terraform_test_tools
terraform/tests/run.sh
