#!/usr/bin/env bash
# The local stack in one command: installs what is missing, builds shardline
# and runs `shardline dev`. Extra arguments go to `shardline dev`.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$SHARDLINE_ROOT"
ensure_nats_server
say "building shardline (release)"
cargo build --release --quiet -p shardline
exec "$CARGO_TARGET_DIR/release/shardline" dev "$@"
