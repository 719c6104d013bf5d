//! A small process that enqueues plate records and forwards them: the
//! subject of the crash test (`tests/crash.rs` kills it with SIGKILL
//! mid-forwarding and starts it again).
//!
//! `outbox_worker DIR DATA_API_URL FROM TO [PAUSE_MS]` enqueues records
//! `p{FROM..TO}` (printing `accepted ID` once each is durable), then waits
//! until the outbox is empty, prints `drained` and shuts down gracefully.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;
use wayside_outbox::{Outbox, OutboxConfig, Record};

fn arg(args: &[String], i: usize, name: &str) -> Result<String> {
    args.get(i)
        .cloned()
        .with_context(|| format!("missing {name}; usage: DIR URL FROM TO [PAUSE_MS]"))
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = arg(&args, 0, "DIR")?;
    let url = arg(&args, 1, "URL")?;
    let from: usize = arg(&args, 2, "FROM")?.parse()?;
    let to: usize = arg(&args, 3, "TO")?.parse()?;
    let pause = Duration::from_millis(args.get(4).map_or(Ok(0), |s| s.parse())?);
    if from > to {
        bail!("FROM > TO");
    }
    let config = OutboxConfig {
        dir: dir.into(),
        retry_min_ms: 20,
        retry_max_ms: 300,
        ..OutboxConfig::default()
    };
    let (outbox, forwarder) = Outbox::open(config, &url)?;
    let mut out = std::io::stdout().lock();
    for n in from..to {
        let id = format!("p{n:05}");
        let mut image = b"\xFF\xD8\xFF\xE0crash-test".to_vec();
        image.extend_from_slice(id.as_bytes());
        image.extend(std::iter::repeat_n(0x33, 4_000));
        let body = json!({"licence_plate": format!("CR{n:05}"), "time_ms": n as u64 * 40,
                          "source": "crash-test"});
        outbox
            .enqueue(Record::plate(id.clone(), body, image))
            .await?;
        writeln!(out, "accepted {id}")?;
        out.flush()?;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    while outbox.metrics().pending > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writeln!(out, "drained {:?}", outbox.metrics())?;
    out.flush()?;
    outbox.shutdown();
    forwarder.await?;
    Ok(())
}
