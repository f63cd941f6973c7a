//! Benchmark support shared by the `qd-bench` binary and the search-quality tests: deterministic
//! synthetic data and process memory readings.

pub mod data;
