//! End-to-end tests run the `shardline` binary; see `tests/`.
