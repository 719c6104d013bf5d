//! `wayside serve`: the HTTP API until SIGTERM.

use anyhow::Result;

use crate::config::Config;
use crate::http::{AppState, serve};

pub fn run(config: Config) -> Result<()> {
    let engine = crate::vision::load_engine(&config)?;
    let state = AppState::new(config, engine)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(state))
}
