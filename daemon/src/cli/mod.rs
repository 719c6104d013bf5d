//! One module per subcommand.

pub mod detect;
pub mod models;
