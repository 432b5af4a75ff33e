//! twilight-gateway over zlib-stream against the simulator.
#![allow(clippy::unwrap_used)]

#[path = "../../tests/conformance/mod.rs"]
mod conformance;

use shardline_sim::Compress;

#[tokio::test]
async fn twilight_gateway_over_zlib_stream_survives_op7() {
    let compress = conformance::twilight_survives_op7().await;
    if compress == Compress::ZstdStream {
        // Feature unification (a workspace-wide build also enables twilight's
        // `zstd`): the protocol was still checked, the codec was not.
        eprintln!("twilight was built with zstd too; run `cargo test -p shardline-sim-zlib` alone");
    } else {
        assert_eq!(compress, Compress::ZlibStream);
    }
}
