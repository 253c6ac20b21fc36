pub mod bench;
pub mod plan;
pub mod serve;
pub mod sweeps;
