//! One module per subcommand (`bench` and `launch` hold several), and
//! [`common`]: the helpers several of them share.

pub mod bench;
pub mod common;
pub mod data;
pub mod export;
pub mod launch;
pub mod model;
pub mod plan;
pub mod plot;
pub mod rerun;
pub mod results;
pub mod run;
pub mod serve;
pub mod sql;
pub mod sweeps;
pub mod table;
pub mod train;
pub mod verify;
pub mod work;
pub mod workers;
