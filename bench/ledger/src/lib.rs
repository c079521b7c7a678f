//! Benchmarks of the sidecar's ledger: what this machine allows at all, and what the sidecar makes of it.

pub mod postgres;
pub mod sidecar;
pub mod store_limit;
