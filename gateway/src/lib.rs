//! Discord gateway shards and the identify coordinator.
//!
//! # Layout
//!
//! Filled in by the shards issue (4) and the coordinator issue (5).
