//! Micro-benchmarks of the stores: `cargo bench -p sessio-benches`.
//!
//! Ids, signing and whole requests through the layer are benchmarked in the `sessio`
//! crate (`cargo bench -p sessio`); the load benchmark against other session libraries is
//! `bench/run` (see BENCHMARKS.md).
