//! Where logs go: under systemd, when stderr is the journal, each event is
//! sent to journald natively, its fields (`camera`, `kind`, `id`, …) as
//! journal fields and its level as the priority, so `journalctl
//! -u wayside CAMERA=gate -p warning` works; anywhere else, plain text on
//! stderr.

use std::os::unix::fs::MetadataExt;

use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber; `RUST_LOG` filters (default `info`).
/// `identifier` is the journal's `SYSLOG_IDENTIFIER`.
pub fn init(identifier: &str) {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let journal = stderr_is_journal()
        .then(|| {
            tracing_journald::layer()
                .map(|l| l.with_syslog_identifier(identifier.to_owned()))
                .map_err(|e| format!("journald socket: {e}; logging to stderr"))
        })
        .transpose();
    match journal {
        Ok(Some(layer)) => tracing_subscriber::registry()
            .with(filter())
            .with(layer)
            .init(),
        other => {
            tracing_subscriber::registry()
                .with(filter())
                .with(fmt::layer().with_writer(std::io::stderr))
                .init();
            if let Err(e) = other {
                tracing::warn!("{e}");
            }
        }
    }
}

/// systemd sets `JOURNAL_STREAM=<device>:<inode>` of the stream it
/// connected; stderr is the journal only if it is still that stream (not
/// redirected by a wrapper script).
fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var("JOURNAL_STREAM").ok() else {
        return false;
    };
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2")
        .is_ok_and(|m| dev.parse() == Ok(m.dev()) && ino.parse() == Ok(m.ino()))
}
