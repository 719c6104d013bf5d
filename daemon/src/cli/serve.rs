//! `wayside serve`: the HTTP API until SIGTERM, with the outbox forwarding
//! to the data API, the cameras and MQTT beside it.

use std::sync::Arc;

use anyhow::Result;
use wayside_outbox::Outbox;

use crate::config::Config;
use crate::forward::Forwarder;
use crate::http::{AppState, serve};
use crate::live::Live;

pub fn run(config: Config) -> Result<()> {
    let engine = crate::vision::load_engine(&config, true)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut outbox_config = config.outbox.clone();
        if outbox_config.auth_token.is_none() {
            outbox_config.auth_token = config.data_api.auth_token.clone();
        }
        if outbox_config.ca_file.is_none() {
            outbox_config.ca_file = config.data_api.ca_file.clone();
        }
        let (outbox, forwarding) = Outbox::open(outbox_config, &config.data_api.url)?;
        let forwarder = Forwarder::new(outbox.clone(), tokio::runtime::Handle::current());
        let mut state = AppState::new(config, engine, forwarder.clone())?;
        let live = Arc::new(Live::start(&state.config, state.engine.clone(), forwarder)?);
        state.live = live.clone();
        let served = serve(state).await;
        live.stop().await;
        outbox.shutdown();
        if tokio::time::timeout(wayside_service::STOP_BUDGET, forwarding)
            .await
            .is_err()
        {
            tracing::warn!(
                "outbox: the request in flight did not finish; it is retried at the next start"
            );
        }
        served
    })
}
