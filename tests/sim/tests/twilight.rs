//! Conformance: `twilight-gateway` — a client library no one here wrote —
//! talks to the simulator over zstd-stream (its default transport
//! compression; the zlib-stream run lives in package `shardline-sim-zlib`
//! because twilight picks its codec by cargo feature): READY, the dispatch
//! stream, and an op 7 survived by RESUME with the missed events replayed,
//! each seq exactly once.
#![allow(clippy::unwrap_used)]

mod conformance;

#[tokio::test]
async fn twilight_gateway_over_zstd_stream_survives_op7() {
    let compress = conformance::twilight_survives_op7().await;
    assert_eq!(compress, shardline_sim::Compress::ZstdStream);
}
