//! Service life, shared by `wayside` and `wayside-data`: how each tells
//! systemd where it is (units are `Type=notify` with `WatchdogSec`, see
//! `systemd/`), and when it should stop.
//!
//! ```text
//! bind listener ─▶ ready()   READY=1, then WATCHDOG=1 every half period
//! serve … until shutdown_signal()   SIGTERM/SIGINT ─▶ STOPPING=1
//! ```
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every notification is a no-op.
//! [`auth`] is the bearer-token check both services put in front of their
//! endpoints; [`logging`] sends their logs to the journal under systemd.

pub mod auth;
pub mod logging;

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd the service is up (call it once the listener is bound, so
/// dependants can connect), and starts the watchdog pings when the unit has
/// `WatchdogSec`. The pings come from a task on the async runtime, so a
/// runtime that stops making progress stops them, and systemd restarts it.
pub fn ready() {
    notify(NotifyState::Ready);
    if let Some(period) = sd_notify::watchdog_enabled() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period / 2);
            loop {
                tick.tick().await;
                notify(NotifyState::Watchdog);
            }
        });
        tracing::info!(period_ms = period.as_millis() as u64, "systemd watchdog on");
    }
}

/// Resolves at SIGTERM or SIGINT and tells systemd the service is stopping,
/// so the stop is not mistaken for a hang while requests and the outbox
/// finish.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    notify(NotifyState::Stopping);
    tracing::info!("shutting down: no new work, finishing what is in flight");
}

/// How long systemd gives a stop before it kills; a bound for shutdown
/// work, shorter than the unit's `TimeoutStopSec` (30 s).
pub const STOP_BUDGET: Duration = Duration::from_secs(20);

fn notify(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!("sd_notify: {e}");
    }
}
