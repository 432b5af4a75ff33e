//! The Discord gateway and REST simulator.
//!
//! # Layout
//!
//! Filled in by the simulator issue (3).
