//! Holds one test: `twilight-gateway` built with its `zlib` feature (and
//! without `zstd`) against the simulator, over zlib-stream.
//!
//! twilight chooses its transport codec at compile time and prefers zstd
//! when both features are on, so this run needs its own package. Run it
//! alone to be sure of the codec: `cargo test -p shardline-sim-zlib`. In a
//! workspace-wide build cargo unifies twilight's features with the zstd one
//! of `shardline-sim`'s tests; the test then says so and checks the rest.
//!
//! # Layout
//! - `tests/twilight_zlib.rs` — the test; the run itself is
//!   `tests/sim/tests/conformance/mod.rs`, shared with the zstd test.
