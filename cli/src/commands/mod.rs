pub mod bench;
pub mod plan;
pub mod run;
pub mod serve;
pub mod sweeps;
pub mod work;
