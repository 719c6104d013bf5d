//! One module per subcommand.

pub mod detect;
pub mod models;
pub mod process;
pub mod serve;
