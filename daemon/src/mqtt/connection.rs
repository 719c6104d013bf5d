//! The one task that owns the broker connection: polls rumqttc's event
//! loop, feeds it queued messages while connected, and reconnects with
//! back-off (rumqttc's `poll` retries at once, with no delay of its own).
//!
//! Each session is clean (a broker restarted without persistence would not
//! have ours anyway): on every ConnAck the status goes out retained first,
//! then what was in flight when the last connection dropped, then the queue.
//! Messages are matched to their PUBACK by packet id, so an in-flight
//! message leaves our hands only once the broker has it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, LastWill,
    MqttOptions, Outgoing, QoS, TlsConfiguration, Transport,
};
use tokio::sync::Notify;

use super::{Broker, Message, MqttConfig, Shared, lock};
use crate::backoff::Backoff;

/// Messages handed to rumqttc and not yet acknowledged. Small: counts are a
/// few per minute per camera, and what is in flight is resent after a drop.
const MAX_INFLIGHT: usize = 16;

/// How long a clean disconnect may take at shutdown before giving up.
const DISCONNECT_GRACE: Duration = Duration::from_secs(2);

pub(super) fn options(config: &MqttConfig, broker: &Broker) -> Result<MqttOptions> {
    let mut o = MqttOptions::new(config.client_id(), broker.host.clone(), broker.port);
    o.set_keep_alive(Duration::from_secs(config.keepalive_s));
    o.set_clean_session(true);
    o.set_inflight(MAX_INFLIGHT as u16);
    o.set_last_will(LastWill::new(
        status_topic(&config.device),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &config.username {
        o.set_credentials(user.clone(), config.password.clone().unwrap_or_default());
    }
    if broker.tls {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config(config)?),
        )));
    }
    Ok(o)
}

/// rustls with the ring provider, trusting `ca_file` or the system's roots.
fn tls_config(config: &MqttConfig) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("mqtt.ca_file: reading {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("mqtt.ca_file: {}", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("mqtt.ca_file: {}", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    if roots.is_empty() {
        anyhow::bail!("mqtt.ca_file: no CA certificate to check the broker with");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("mqtt: TLS set-up")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn status_topic(device: &str) -> String {
    format!("wayside/{device}/status")
}

/// One message rumqttc has; `pkid` is known once it has been written.
struct InFlight {
    pkid: Option<u16>,
    /// `None` for the status, which is not requeued (the next ConnAck
    /// publishes it again).
    message: Option<Message>,
}

pub(super) async fn run(
    options: MqttOptions,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
    min: Duration,
    max: Duration,
) {
    let (client, mut events) = AsyncClient::new(options, 2 * MAX_INFLIGHT + 4);
    let status = status_topic(&shared.device);
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut backoff = Backoff::new(min, max);
    let mut connected = false;
    loop {
        if connected {
            feed(&client, &shared, &mut inflight);
        }
        let can_send = connected && inflight.len() < MAX_INFLIGHT;
        tokio::select! {
            event = events.poll() => match event {
                Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                    if ack.code != ConnectReturnCode::Success {
                        // rumqttc reports refusals as errors; kept for safety.
                        continue;
                    }
                    connected = true;
                    backoff.reset();
                    shared.connected.store(true, Ordering::Relaxed);
                    shared.stats.connects.fetch_add(1, Ordering::Relaxed);
                    *lock(&shared.last_error) = None;
                    tracing::info!("mqtt: connected");
                    // What was in flight goes again, after the status.
                    let resend: Vec<Message> =
                        inflight.drain(..).filter_map(|f| f.message).collect();
                    let dropped = lock(&shared.queue).requeue(resend.into_iter());
                    shared.stats.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
                    if client
                        .try_publish(&status, QoS::AtLeastOnce, true, "online")
                        .is_ok()
                    {
                        inflight.push_back(InFlight { pkid: None, message: None });
                    }
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(f) = inflight.iter_mut().find(|f| f.pkid.is_none()) {
                        f.pkid = Some(pkid);
                    }
                }
                Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                    if let Some(i) = inflight.iter().position(|f| f.pkid == Some(ack.pkid))
                        && inflight.remove(i).is_some_and(|f| f.message.is_some())
                    {
                        shared.stats.published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let was_connected = connected;
                    connected = false;
                    shared.connected.store(false, Ordering::Relaxed);
                    shared.stats.connect_errors.fetch_add(1, Ordering::Relaxed);
                    let text = describe(&e);
                    let delay = backoff.next_delay();
                    {
                        let mut last = lock(&shared.last_error);
                        // One line per change of fault, not one per retry.
                        if was_connected || last.as_deref() != Some(text.as_str()) {
                            tracing::warn!("mqtt: {text}; retrying in {delay:.1?} (and on)");
                        }
                        *last = Some(text);
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop.notified() => break,
                    }
                }
            },
            _ = shared.queued.notified(), if can_send => {}
            _ = stop.notified() => {
                if connected {
                    disconnect(&client, &mut events, &status).await;
                }
                break;
            }
        }
        shared
            .stats
            .inflight
            .store(inflight.len() as u64, Ordering::Relaxed);
    }
    shared.connected.store(false, Ordering::Relaxed);
}

/// Moves queued messages to rumqttc while there is room in flight.
fn feed(client: &AsyncClient, shared: &Shared, inflight: &mut VecDeque<InFlight>) {
    while inflight.len() < MAX_INFLIGHT {
        let Some(m) = lock(&shared.queue).pop() else {
            return;
        };
        // The channel holds more than MAX_INFLIGHT, so this only fails if
        // the event loop is gone; the message then waits for the next
        // connection.
        match client.try_publish(m.topic.clone(), QoS::AtLeastOnce, false, m.payload.clone()) {
            Ok(()) => inflight.push_back(InFlight {
                pkid: None,
                message: Some(m),
            }),
            Err(_) => {
                lock(&shared.queue).requeue(std::iter::once(m));
                return;
            }
        }
    }
}

/// `offline`, retained, then DISCONNECT: a clean stop, which the broker
/// does not answer with the will (so the status must be set by hand).
async fn disconnect(client: &AsyncClient, events: &mut EventLoop, status: &str) {
    let _ = client.try_publish(status, QoS::AtLeastOnce, true, "offline");
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(DISCONNECT_GRACE, async {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    tracing::info!("mqtt: disconnected (status offline)");
}

/// A log line an operator can act on.
fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => "bad username or password",
                ConnectReturnCode::NotAuthorized => "not authorised (check mqtt.username/password)",
                ConnectReturnCode::BadClientId => "client id rejected (mqtt.client_id)",
                ConnectReturnCode::ServiceUnavailable => "service unavailable",
                ConnectReturnCode::RefusedProtocolVersion => "MQTT 3.1.1 not supported",
                ConnectReturnCode::Success => "no reason given",
            };
            format!("broker refused the connection: {why}")
        }
        ConnectionError::Io(io) => format!("broker unreachable: {io}"),
        ConnectionError::NetworkTimeout => "broker unreachable: connection timed out".into(),
        ConnectionError::Tls(tls) => format!("TLS with the broker failed: {tls}"),
        other => format!("connection lost: {other}"),
    }
}
